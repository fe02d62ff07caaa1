"""Postmortem generation jobs on the real stack: the documented request and response, a real Dramatiq
worker doing the work, the log's life (PENDING → PROCESSING → COMPLETED / REVIEW_REQUIRED / FAILED),
idempotence, a killed worker's lease taken over by the sweep, the automatic trigger on resolution,
classification, and the SSE stream read by a real HTTP client from a real server."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx

from app.postmortems import generations
from app.timefmt import utcnow
from tests.conftest import eventually, unique
from tests.postmortems.test_generate import EVENTS
from tests.incidents.test_graphql import gql
from tests.postmortems.test_rest import BASE as PM_BASE, INCIDENTS, create_pm, new_incident

BASE = "/api/knowledge/postmortem-generations/"
START = BASE + "generate_postmortem/"
DETAIL_KEYS = {"id", "incident", "incident_title", "status", "generation_trigger", "include_timeline", "include_logs",
               "force", "generated_postmortem", "postmortem_created", "generated_sections", "kept_sections",
               "evidence", "confidence_score", "unsupported_facts", "error_message", "review_reason", "errors",
               "attempts", "model_version", "requested_by_username", "data_classification", "draft",
               "created_at", "started_at", "completed_at", "updated_at", "processing_time"}


async def incident(client, headers, **over):
    return await new_incident(client, headers, severity="MEDIUM", status="RESOLVED", affected_services=["database"],
                              affected_teams=["database.team"], root_cause="Connection pool exhausted",
                              resolution="Raised pool size", detected_at="2024-01-15T10:30:00Z",
                              resolved_at="2024-01-15T12:00:00Z", timeline=EVENTS, **over)


async def finished(client, headers, gen_id: str) -> dict:
    async def check():
        r = await client.get(f"{BASE}{gen_id}/", headers=headers)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["status"] not in generations.ACTIVE else None
    return await eventually(check, timeout=30)


async def run_or_wait(bk, gen_id: str) -> dict:
    """Run a generation as a worker does and return the finished record. The session's worker (started by an
    earlier test) may have claimed it first from the queue it was sent to: then `run` returns None and this waits
    for that worker to finish it."""
    if (done := await generations.run(bk, gen_id)) is not None:
        return done

    async def check():
        doc = await bk.mongo.postmortem_generations.find_one({"_id": gen_id})
        return doc if doc and doc["status"] not in generations.ACTIVE else None
    return await eventually(check, timeout=30)


async def test_documented_request_runs_on_a_worker(client, editor, viewer, worker, bk):
    inc = await incident(client, editor)
    r = await client.post(START, headers=editor, json={"incident_id": inc["id"], "include_timeline": True,
                                                       "include_logs": True, "generation_trigger": "manual"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["message"] == "Postmortem generation initiated" and body["generation_id"]
    gen = await finished(client, editor, body["generation_id"])
    assert set(gen) == DETAIL_KEYS
    assert gen["status"] == "COMPLETED" and gen["generation_trigger"] == "manual" and gen["attempts"] == 1
    assert gen["incident"] == inc["id"] and gen["incident_title"] == inc["title"]
    assert gen["started_at"] <= gen["completed_at"] and 0 <= gen["processing_time"] < 30
    assert gen["postmortem_created"] is True and gen["requested_by_username"]
    assert gen["generated_sections"] == ["executive_summary", "timeline", "root_cause_analysis", "impact_assessment",
                                         "lessons_learned", "action_items"]
    assert gen["evidence"]["timeline_events"] == len(EVENTS) and gen["evidence"]["sections"]
    pm = (await client.get(f"{PM_BASE}{gen['generated_postmortem']}/", headers=editor)).json()
    assert pm["incident"] == inc["id"] and pm["is_automated"] and pm["generation_confidence"] == gen["confidence_score"]
    assert pm["owner_username"] == gen["requested_by_username"] and pm["completion_percentage"] == 100.0

    # list: filters and ordering as documented; a viewer reads too
    r = await client.get(BASE, headers=viewer, params={"incident": inc["id"], "status": "COMPLETED",
                                                       "generation_trigger": "manual", "ordering": "-processing_time"})
    assert r.status_code == 200 and [g["id"] for g in r.json()["results"]] == [gen["id"]]
    for params in ({"status": "DONE"}, {"ordering": "title"}, {"generation_trigger": "sometimes"}):
        assert (await client.get(BASE, headers=viewer, params=params)).status_code == 400
    for ordering in ("started_at", "-completed_at", "processing_time"):
        assert (await client.get(BASE, headers=viewer, params={"ordering": ordering})).status_code == 200

    # again: the same postmortem is drafted again (one per incident), nothing created
    r = await client.post(START, headers=editor, json={"incident_id": inc["id"]})
    again = await finished(client, editor, r.json()["generation_id"])
    assert again["generated_postmortem"] == gen["generated_postmortem"] and again["postmortem_created"] is False
    assert await bk.mongo.postmortems.count_documents({"incident": inc["id"]}) == 1


async def test_start_is_checked_before_anything_is_recorded(client, editor, viewer, bk):
    inc = await incident(client, editor)
    before = await bk.mongo.postmortem_generations.count_documents({})
    assert (await client.post(START, headers=viewer, json={"incident_id": inc["id"]})).status_code == 403
    r = await client.post(START, headers=editor, json={"incident_id": "no-such-incident"})
    assert r.status_code == 400 and r.json()["code"] == "INCIDENT_NOT_FOUND"
    for bad in ({}, {"incident_id": inc["id"], "generation_trigger": "whenever"},
                {"incident_id": inc["id"], "generation_trigger": "incident_resolved"},
                {"incident_id": inc["id"], "include_logs": "maybe"}, {"incident_id": inc["id"], "extra": 1}):
        r = await client.post(START, headers=editor, json=bad)
        assert r.status_code == 400 and set(r.json()) == {"error", "details", "code"}, (bad, r.text)
    assert (await client.post(START, json={"incident_id": inc["id"]})).status_code == 401
    assert await bk.mongo.postmortem_generations.count_documents({}) == before


async def test_a_second_request_while_one_runs_gets_the_same_generation(client, editor, tokens, bk):
    inc = await incident(client, editor)
    pending, created = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"],
                                                 trigger="manual")
    assert created
    r = await client.post(START, headers=editor, json={"incident_id": inc["id"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Postmortem generation already in progress", "generation_id": pending["_id"],
                        "status": "PENDING"}
    done = await run_or_wait(bk, pending["_id"])
    assert done["status"] == "COMPLETED"
    assert await generations.run(bk, pending["_id"]) is None  # a duplicated message does nothing
    assert await bk.mongo.postmortems.count_documents({"incident": inc["id"]}) == 1


async def test_drafting_by_hand_while_a_generation_runs_names_it_before_any_work(client, editor, tokens, bk):
    inc = await incident(client, editor)
    pm = await create_pm(client, editor, inc, executive_summary="")
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")
    before = await bk.mongo.postmortems.find_one({"_id": pm["id"]})
    wait = bk.settings.postmortem_generation_wait_seconds
    bk.settings.postmortem_generation_wait_seconds = 0.3  # no worker runs it here: waited for, still running
    try:
        r = await client.post(f"{PM_BASE}{pm['id']}/generate_automated/", headers=editor)
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "GENERATION_IN_PROGRESS"
        assert r.json()["details"] == {"generation_id": gen["_id"], "status": "PENDING"}
        assert await bk.mongo.postmortems.find_one({"_id": pm["id"]}) == before  # nothing drafted nor written
        # GraphQL answers the same typed error
        body = await gql(client, editor, "mutation($id: ID!) { generatePostmortemDraft(id: $id) { "
                                         "... on UserError { code details } } }", id=pm["id"])
        assert body["data"]["generatePostmortemDraft"]["code"] == "GENERATION_IN_PROGRESS", body
    finally:
        bk.settings.postmortem_generation_wait_seconds = wait
    # once it has finished, drafting by hand works again
    assert (await run_or_wait(bk, gen["_id"]))["status"] in ("COMPLETED", "REVIEW_REQUIRED")
    r = await client.post(f"{PM_BASE}{pm['id']}/generate_automated/", headers=editor, json={"force": True})
    assert r.status_code == 200, r.text


async def test_drafting_by_hand_right_after_a_resolution_waits_for_its_generation(client, editor, tokens, bk):
    """Resolve, then draft by hand at once (the automatic generation still queued): the request waits for the
    generation to finish, then drafts the postmortem it asked for — a 200 with the draft's confidence, not a 409."""
    inc = await incident(client, editor)
    pm = await create_pm(client, editor, inc, executive_summary="")
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")

    async def worker():
        await asyncio.sleep(0.3)
        return await generations.run(bk, gen["_id"])

    r, ran = await asyncio.gather(client.post(f"{PM_BASE}{pm['id']}/generate_automated/", headers=editor), worker())
    assert ran["status"] in ("COMPLETED", "REVIEW_REQUIRED") and ran["postmortem"] == pm["id"]
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "Postmortem generated successfully"
    drafted = await bk.mongo.postmortems.find_one({"_id": pm["id"]})
    assert r.json()["confidence_score"] == drafted["generation_confidence"] is not None
    assert drafted["executive_summary"]


async def test_a_killed_workers_generation_is_taken_over_by_the_sweep(client, editor, tokens, bk):
    inc = await incident(client, editor)
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")
    # a worker claimed it and died: PROCESSING with a lease that has expired
    await bk.mongo.postmortem_generations.update_one({"_id": gen["_id"]}, {"$set": {
        "status": "PROCESSING", "attempts": 1, "lease": "dead-worker", "started_at": utcnow() - timedelta(minutes=5),
        "leased_until": utcnow() - timedelta(seconds=1)}})
    assert await generations.sweep(bk) >= 1
    doc = await bk.mongo.postmortem_generations.find_one({"_id": gen["_id"]})
    assert doc["status"] == "COMPLETED" and doc["attempts"] == 2 and "lease" not in doc and "active" not in doc
    # a lease still held is left alone; a PENDING one whose message was lost is picked up once it is stale
    held, _ = await generations.create(bk, incident={"_id": (await incident(client, editor))["id"]},
                                       user=tokens["editor_user"], trigger="manual")
    await bk.mongo.postmortem_generations.update_one({"_id": held["_id"]}, {"$set": {
        "status": "PROCESSING", "lease": "alive", "started_at": utcnow(), "leased_until": utcnow() + timedelta(minutes=1)}})
    lost, _ = await generations.create(bk, incident={"_id": (await incident(client, editor))["id"]},
                                       user=tokens["editor_user"], trigger="manual")
    await bk.mongo.postmortem_generations.update_one({"_id": lost["_id"]},
                                                     {"$set": {"updated_at": utcnow() - timedelta(minutes=1)}})
    await generations.sweep(bk)
    assert (await bk.mongo.postmortem_generations.find_one({"_id": held["_id"]}))["status"] == "PROCESSING"
    assert (await bk.mongo.postmortem_generations.find_one({"_id": lost["_id"]}))["status"] == "COMPLETED"


async def test_a_generation_that_keeps_dying_fails_with_the_reason_and_can_be_retried(client, editor, viewer,
                                                                                      tokens, bk):
    inc = await incident(client, editor)
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")
    limit = bk.settings.postmortem_generation_max_attempts
    await bk.mongo.postmortem_generations.update_one({"_id": gen["_id"]}, {"$set": {
        "status": "PROCESSING", "attempts": limit, "lease": "dead", "last_error": "AutoReconnect: primary stepped down",
        "started_at": utcnow(), "leased_until": utcnow() - timedelta(seconds=1)}})
    doc = await generations.run(bk, gen["_id"])
    assert doc["status"] == "FAILED" and f"Gave up after {limit} attempts" in doc["error_message"]
    assert "primary stepped down" in doc["error_message"]
    r = await client.get(f"{BASE}{gen['_id']}/", headers=editor)
    assert r.json()["status"] == "FAILED" and r.json()["error_message"] == doc["error_message"]

    assert (await client.post(f"{BASE}{gen['_id']}/retry/", headers=viewer)).status_code == 403
    r = await client.post(f"{BASE}{gen['_id']}/retry/", headers=editor)
    assert r.status_code == 202 and r.json()["status"] == "PENDING", r.text
    done = await run_or_wait(bk, gen["_id"])  # the service call a worker makes (or the session's worker made)
    assert done["status"] == "COMPLETED" and done["attempts"] == 1
    assert done["errors"][0]["error"] == doc["error_message"]
    r = await client.post(f"{BASE}{gen['_id']}/retry/", headers=editor)
    assert r.status_code == 409 and r.json()["code"] == "INVALID_TRANSITION"


async def test_a_failure_keeps_its_reason(client, editor, bk, tokens):
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user

    inc = await incident(client, editor)
    gone = await create_user(bk, data=UserCreate(username=unique("leaver"), role=Role.EDITOR,
                                                 clearance=Classification.CONFIDENTIAL))
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=gone, trigger="manual")
    await bk.mongo.users.update_one({"_id": gone.id}, {"$set": {"is_active": False}})
    doc = await generations.run(bk, gen["_id"])
    assert doc["status"] == "FAILED" and "REQUESTER_GONE" in doc["error_message"]
    assert doc["completed_at"] and doc["processing_time"] is not None
    assert await bk.mongo.postmortems.count_documents({"incident": inc["id"]}) == 0


async def test_low_confidence_and_unsupported_facts_need_review(client, editor, bk, tokens):
    inc = await incident(client, editor)
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")
    threshold = bk.settings.postmortem_review_threshold
    bk.settings.postmortem_review_threshold = 0.999
    try:
        doc = await generations.run(bk, gen["_id"])
    finally:
        bk.settings.postmortem_review_threshold = threshold
    assert doc["status"] == "REVIEW_REQUIRED" and "below the review threshold" in doc["review_reason"]
    pm = await bk.mongo.postmortems.find_one({"_id": doc["postmortem"]})
    assert pm["status"] == "DRAFT" and pm["is_automated"]  # written, never published by itself

    # a draft naming a fact the data lacks
    # is not written; the log keeps the draft and the facts for a reviewer
    from app.postmortems import drafting, generator

    real_check = generator.check
    generator.check = lambda *args, **kwargs: ["99 minutes"]  # the check is the unit under test elsewhere
    try:
        gen2, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"],
                                           trigger="manual")
        before = await bk.mongo.postmortems.find_one({"_id": doc["postmortem"]})
        doc2 = await generations.run(bk, gen2["_id"])
    finally:
        generator.check = real_check
    assert drafting.generator.check is real_check
    assert doc2["status"] == "REVIEW_REQUIRED" and doc2["unsupported_facts"] == ["99 minutes"]
    assert doc2["draft"]["executive_summary"] and doc2["generated_sections"] == []
    assert await bk.mongo.postmortems.find_one({"_id": doc["postmortem"]}) == before


async def test_resolving_a_high_incident_starts_one_generation(client, editor, bk):
    high = await new_incident(client, editor, severity="HIGH", root_cause="Disk full", timeline=EVENTS)
    low = await new_incident(client, editor, severity="LOW")
    for inc in (high, low):
        r = await client.post(f"{INCIDENTS}{inc['name']}/resolve/", headers=editor, json={"resolution": "Freed space"})
        assert r.status_code == 200, r.text
    gens = await bk.mongo.postmortem_generations.find({"incident": high["id"]}).to_list(None)
    assert len(gens) == 1 and gens[0]["generation_trigger"] == "incident_resolved"
    assert gens[0]["requested_by"] == (await bk.mongo.users.find_one({"username": "postmortem-bot"}))["_id"]
    assert await bk.mongo.postmortem_generations.count_documents({"incident": low["id"]}) == 0
    # reopened and resolved again (through an update this time): still one automatic generation
    r = await client.patch(f"{INCIDENTS}{high['name']}/", headers=editor, json={"status": "OPEN"})
    assert r.status_code == 200, r.text
    r = await client.patch(f"{INCIDENTS}{high['name']}/", headers=editor, json={"status": "RESOLVED"})
    assert r.status_code == 200, r.text
    assert await bk.mongo.postmortem_generations.count_documents({"incident": high["id"]}) == 1
    # an update that resolves a CRITICAL incident triggers as well
    crit = await new_incident(client, editor, severity="CRITICAL")
    await client.patch(f"{INCIDENTS}{crit['name']}/", headers=editor, json={"status": "RESOLVED"})
    gen = await bk.mongo.postmortem_generations.find_one({"incident": crit["id"]})
    assert gen["generation_trigger"] == "incident_resolved"
    # a generation started by hand and still running: the resolution goes through, no second one
    busy = await new_incident(client, editor, severity="HIGH")
    running, _ = await generations.create(bk, incident={"_id": busy["id"]}, user=(await generations.bot_user(bk)),
                                          trigger="manual")
    r = await client.post(f"{INCIDENTS}{busy['name']}/resolve/", headers=editor, json={"resolution": "Done"})
    assert r.status_code == 200, r.text
    assert [g["_id"] async for g in bk.mongo.postmortem_generations.find({"incident": busy["id"]})] == [running["_id"]]


async def test_hidden_generations_are_missing(client, editor, viewer, bk, tokens):
    secret = await incident(client, editor, data_classification="CONFIDENTIAL")
    r = await client.post(START, headers=editor, json={"incident_id": secret["id"]})
    gen_id = r.json()["generation_id"]
    assert (await client.get(f"{BASE}{gen_id}/", headers=editor)).status_code == 200
    for path in (f"{BASE}{gen_id}/", f"{BASE}{gen_id}/events/", f"{BASE}does-not-exist/"):
        r = await client.get(path, headers=viewer)
        assert r.status_code == 404 and r.json()["code"] == "GENERATION_NOT_FOUND", path
    listed = (await client.get(BASE, headers=viewer, params={"incident": secret["id"]})).json()
    assert listed["count"] == 0 and listed["results"] == []
    assert (await client.post(f"{BASE}{gen_id}/retry/", headers=viewer)).status_code in (403, 404)


async def _events(response: httpx.Response):
    """(event, data) pairs of an SSE stream, comments included as ("comment", text)."""
    event, data = None, []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and event:
            yield event, json.loads("\n".join(data))
            event, data = None, []


async def test_sse_stream_follows_a_generation_to_its_end(live_api, editor, viewer, worker):
    async with httpx.AsyncClient(base_url=live_api, timeout=30) as http:
        inc = (await http.post(INCIDENTS, headers=editor, json={"title": unique("SSE"), "severity": "MEDIUM",
                                                                 "timeline": EVENTS, "root_cause": "Pool"})).json()
        # a stream opened before the work starts: the PENDING state at once, then each change
        r = await http.post(START, headers=editor, json={"incident_id": inc["id"]})
        gen_id = r.json()["generation_id"]
        seen = []
        async with http.stream("GET", f"{BASE}{gen_id}/events/", headers=editor) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            async for event, data in _events(resp):
                if event == "generation":
                    assert data["id"] == gen_id
                    seen.append(data["status"])
                elif event == "end":
                    assert data == {"id": gen_id, "status": seen[-1]}
                    break
        assert seen[-1] in ("COMPLETED", "REVIEW_REQUIRED") and seen == sorted(set(seen), key=seen.index)
        order = ["PENDING", "PROCESSING", "COMPLETED", "REVIEW_REQUIRED"]
        assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)

        # a finished generation: its state, then the end, at once
        async with http.stream("GET", f"{BASE}{gen_id}/events/", headers=editor) as resp:
            events = [e async for e in _events(resp)]
        assert [e for e, _ in events] == ["generation", "end"]

        # no token, a hidden one: the REST error format, no stream
        r = await http.get(f"{BASE}{gen_id}/events/")
        assert r.status_code == 401 and r.json()["code"]
        secret = (await http.post(INCIDENTS, headers=editor, json={"title": unique("SSE secret"),
                                                                   "data_classification": "CONFIDENTIAL"})).json()
        hidden = (await http.post(START, headers=editor, json={"incident_id": secret["id"]})).json()["generation_id"]
        r = await http.get(f"{BASE}{hidden}/events/", headers=viewer)
        assert r.status_code == 404 and r.json()["code"] == "GENERATION_NOT_FOUND"


async def test_sse_stream_sends_keepalives_and_outlives_the_request_deadline(live_api, editor, tokens, bk):
    """A PENDING generation nobody runs: the stream stays open past keep-alives (1 s in the test server)."""
    async with httpx.AsyncClient(base_url=live_api, timeout=30) as http:
        inc = (await http.post(INCIDENTS, headers=editor, json={"title": unique("SSE idle")})).json()
        gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"],
                                          trigger="manual")
        got = []
        async with http.stream("GET", f"{BASE}{gen['_id']}/events/", headers=editor) as resp:
            async for event, data in _events(resp):
                got.append(event)
                if got.count("comment") == 2:
                    # now the work happens elsewhere: the stream reports it
                    await generations.run(bk, gen["_id"])
                if event == "end":
                    break
        assert got[0] == "generation" and got.count("comment") >= 2 and got[-1] == "end"
        await asyncio.sleep(0)


async def test_open_streams_per_user_are_capped_before_a_stream_starts(live_api, bk, tokens):
    """Past `live_max_streams_per_user` (10) a stream is refused with a plain 429; closing one frees it."""
    import contextlib

    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=unique("watcher"), role=Role.EDITOR,
                                                 clearance=Classification.CONFIDENTIAL))
    headers = {"Authorization": f"Token {await issue_token(bk, user=user)}"}
    async with httpx.AsyncClient(base_url=live_api, timeout=30) as http:
        inc = (await http.post(INCIDENTS, headers=headers, json={"title": unique("watched")})).json()
        gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=user, trigger="manual")
        await bk.mongo.postmortem_generations.update_one({"_id": gen["_id"]}, {"$set": {  # held by a live worker
            "status": "PROCESSING", "lease": "held", "started_at": utcnow(), "leased_until": utcnow() + timedelta(minutes=5)}})
        path = f"{BASE}{gen['_id']}/events/"
        async with contextlib.AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(http.stream("GET", path, headers=headers)) for _ in range(10)]
            assert all(s.status_code == 200 for s in streams)
            r = await http.get(path, headers=headers)
            assert r.status_code == 429 and r.json()["code"] == "TOO_MANY_STREAMS", r.text
            await streams[0].aclose()
            await asyncio.sleep(0.3)
            async with http.stream("GET", path, headers=headers) as again:
                assert again.status_code == 200
        await bk.mongo.postmortem_generations.update_one({"_id": gen["_id"]}, {"$set": {"status": "FAILED"},
                                                                               "$unset": {"active": ""}})


async def test_a_log_is_as_secret_as_the_postmortem_it_drafted(client, editor, viewer, tokens, bk):
    from tests.postmortems.test_rest import create_pm

    inc = await incident(client, editor)  # INTERNAL
    pm = await create_pm(client, editor, inc, data_classification="CONFIDENTIAL")
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")
    assert (await client.get(f"{BASE}{gen['_id']}/", headers=viewer)).status_code == 200  # pending: the incident's
    done = await run_or_wait(bk, gen["_id"])
    assert done["postmortem"] == pm["id"] and done["data_classification"] == "CONFIDENTIAL"
    assert (await client.get(f"{BASE}{gen['_id']}/", headers=viewer)).status_code == 404
