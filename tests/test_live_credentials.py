"""An open SSE stream does not outlive its credentials: its token and user are re-checked against the
database (not the 10 s token cache) every `live_recheck_seconds`, and a deleted token or a user deactivated
straight in the database ends the stream; valid credentials keep it open."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import serve_api
from tests.postmortems.test_generations import _events
from tests.test_graphql_ws import _fresh_editor, held_generation

BASE = "/api/knowledge/postmortem-generations/"


async def _deactivate(bk, user) -> None:
    await bk.mongo.users.update_one({"username": user.username}, {"$set": {"is_active": False}})


async def _delete_tokens(bk, user) -> None:
    await bk.mongo.tokens.delete_many({"user_id": user.id})


async def test_an_open_sse_stream_ends_when_its_credentials_do(stack, bk):
    async with serve_api(stack, IKL_LIVE_KEEPALIVE_SECONDS="1", IKL_LIVE_RECHECK_SECONDS="0.5") as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            # valid credentials: the stream stays open across many re-checks (keep-alives only)
            user, auth = await _fresh_editor(bk)
            async with held_generation(bk, base, auth, user) as gen_id:
                async with http.stream("GET", f"{BASE}{gen_id}/events/", headers=auth) as resp:
                    assert resp.status_code == 200
                    seen = []
                    async for event, data in _events(resp):
                        seen.append(event)
                        if seen.count("comment") == 3:
                            break
                    assert seen[0] == "generation" and "end" not in seen, seen

            # the user deactivated, or the token deleted, straight in the database: the stream ends
            for revoke in (_deactivate, _delete_tokens):
                user, auth = await _fresh_editor(bk)
                async with held_generation(bk, base, auth, user) as gen_id:
                    async with http.stream("GET", f"{BASE}{gen_id}/events/", headers=auth) as resp:
                        assert resp.status_code == 200
                        events = _events(resp)
                        event, data = await anext(events)
                        assert event == "generation" and data["status"] == "PROCESSING"
                        await revoke(bk, user)
                        async with asyncio.timeout(10):  # today: keep-alives until live_stream_max_seconds
                            rest = [(e, d) async for e, d in events]
                    assert rest and rest[-1] == ("end", {"id": gen_id, "status": "PROCESSING"}), (revoke, rest)
                    assert {e for e, _ in rest[:-1]} <= {"comment"}, rest
