"""GraphQL over WebSocket (graphql-transport-ws) at /graphql, read by a real client (`websockets`) from a
real server (uvicorn): the same checks as HTTP, the protocol's close codes, a generation followed to
its end, and what a hostile or careless client gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import timedelta

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app import live
from app.postmortems import generations
from app.timefmt import utcnow
from tests.conftest import unique

PROTOCOL = "graphql-transport-ws"
INCIDENTS = "/api/v1/incidents/"
START = "/api/knowledge/postmortem-generations/generate_postmortem/"
UPDATES = "subscription Updates($id: ID!) { postmortemGenerationUpdates(id: $id) { id status attempts } }"
FINAL = ("COMPLETED", "REVIEW_REQUIRED")
ORDER = ["PENDING", "PROCESSING", "COMPLETED", "REVIEW_REQUIRED"]


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/graphql"


@contextlib.asynccontextmanager
async def opened(base: str, *, subprotocols=(PROTOCOL,), headers=None):
    async with connect(ws_url(base), subprotocols=list(subprotocols) or None, additional_headers=headers,
                       open_timeout=10, max_size=None) as ws:
        yield ws


@contextlib.asynccontextmanager
async def session(base: str, auth: dict[str, str]):
    """A connection acknowledged with the token in connection_init."""
    async with opened(base) as ws:
        await send(ws, {"type": "connection_init", "payload": auth})
        assert await recv(ws) == {"type": "connection_ack"}
        yield ws


async def send(ws, message) -> None:
    await ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))


async def recv(ws, timeout: float = 15.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def closed(ws, timeout: float = 10.0) -> tuple[int, str]:
    """Read until the server closes: its close code and reason (nothing else may arrive first)."""
    extra = []
    try:
        while True:
            extra.append(await asyncio.wait_for(ws.recv(), timeout))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "the connection dropped without a close frame"
        assert not extra, extra
        return exc.rcvd.code, exc.rcvd.reason


async def quiet(ws, seconds: float) -> list[dict]:
    """Whatever arrives within `seconds`."""
    got = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                got.append(json.loads(await ws.recv()))
    return got


def subscribe(op_id: str, query: str, variables=None, operation_name=None) -> dict:
    payload = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    if operation_name is not None:
        payload["operationName"] = operation_name
    return {"type": "subscribe", "id": op_id, "payload": payload}


async def new_incident(base: str, headers: dict, **over) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.post(INCIDENTS, headers=headers, json={"title": unique("ws"), "severity": "HIGH",
                                                              "root_cause": "Connection pool exhausted", **over})
        assert r.status_code == 201, r.text
        return r.json()


async def start_generation(base: str, headers: dict, incident_id: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.post(START, headers=headers, json={"incident_id": incident_id})
        assert r.status_code == 202, r.text
        return r.json()["generation_id"]


@contextlib.asynccontextmanager
async def held_generation(bk, base: str, headers: dict, user):
    """A generation that stays PROCESSING while the test runs (no worker or sweep takes it), FAILED after."""
    inc = await new_incident(base, headers)
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=user, trigger="manual")
    await bk.mongo.postmortem_generations.update_one(
        {"_id": gen["_id"]}, {"$set": {"status": "PROCESSING", "leased_until": utcnow() + timedelta(hours=1)}})
    try:
        yield gen["_id"]
    finally:
        await bk.mongo.postmortem_generations.update_one(
            {"_id": gen["_id"]}, {"$set": {"status": "FAILED", "active": False, "error_message": "test over"}})
        await live.announce(bk, generations.TOPIC, gen["_id"])


@pytest.fixture
async def fresh_user(bk):
    """An editor of its own: the per-user live stream cap (10 per process) is not shared with other tests."""
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=unique("ws-editor"), role=Role.EDITOR,
                                                 clearance=Classification.CONFIDENTIAL))
    return user, {"Authorization": f"Token {await issue_token(bk, user=user)}"}


# --- the happy path ------------------------------------------------------------------------------

async def test_a_generation_is_followed_to_its_end(live_api, editor, worker):
    inc = await new_incident(live_api, editor)
    gen_id = await start_generation(live_api, editor, inc["id"])
    async with session(live_api, editor) as ws:
        await send(ws, subscribe("g1", UPDATES, {"id": gen_id}, "Updates"))
        seen = []
        while True:
            msg = await recv(ws, timeout=60)
            if msg["type"] == "complete":
                assert msg == {"type": "complete", "id": "g1"}
                break
            assert msg["type"] == "next" and msg["id"] == "g1", msg
            assert "errors" not in msg["payload"], msg
            item = msg["payload"]["data"]["postmortemGenerationUpdates"]
            assert item["id"] == gen_id
            seen.append(item["status"])
        assert seen and seen[-1] in FINAL, seen
        assert len(seen) == len(set(seen)), seen  # each state once
        assert [ORDER.index(s) for s in seen] == sorted(ORDER.index(s) for s in seen), seen

        # the connection goes on: a finished generation is its state, then complete, at once
        await send(ws, subscribe("g2", UPDATES, {"id": gen_id}))
        msg = await recv(ws)
        assert msg["type"] == "next" and msg["payload"]["data"]["postmortemGenerationUpdates"]["status"] == seen[-1]
        assert await recv(ws) == {"type": "complete", "id": "g2"}
        # ping is answered
        await send(ws, {"type": "ping", "payload": {"n": 1}})
        assert await recv(ws) == {"type": "pong", "payload": {"n": 1}}


async def test_queries_and_mutations_run_once_with_the_same_checks(live_api, editor, viewer, bk):
    title = unique("ws-mutation")
    async with session(live_api, editor) as ws:
        await send(ws, subscribe("q", "{ __typename }"))
        assert await recv(ws) == {"type": "next", "id": "q", "payload": {"data": {"__typename": "Query"}}}
        assert await recv(ws) == {"type": "complete", "id": "q"}
        await send(ws, subscribe("m", f'mutation {{ createIncident(input: {{title: "{title}"}}) {{ __typename }} }}'))
        msg = await recv(ws)
        assert msg["type"] == "next" and msg["id"] == "m" and "errors" not in msg["payload"], msg
        assert await recv(ws) == {"type": "complete", "id": "m"}
    assert await bk.mongo.incidents.count_documents({"title": title}) == 1
    # the viewer's mutation is refused by the resolver, as over HTTP (a typed error or an error entry)
    async with session(live_api, viewer) as ws:
        await send(ws, subscribe("m", f'mutation {{ createIncident(input: {{title: "{title}"}}) {{ __typename }} }}'))
        msg = await recv(ws)
        assert msg["type"] == "next", msg
        assert await recv(ws) == {"type": "complete", "id": "m"}
    assert await bk.mongo.incidents.count_documents({"title": title}) == 1


# --- authentication and the protocol's close codes -----------------------------------------------

async def test_connection_init_carries_the_token_in_any_documented_form(live_api, viewer):
    key = viewer["Authorization"].split(" ", 1)[1]
    for payload in ({"Authorization": f"Token {key}"}, {"authorization": f"Token {key}"}, {"token": key},
                    {"token": f"Token {key}"}):
        async with opened(live_api) as ws:
            await send(ws, {"type": "connection_init", "payload": payload})
            assert await recv(ws) == {"type": "connection_ack"}, payload
            assert ws.subprotocol == PROTOCOL
    # or on the upgrade request itself
    async with opened(live_api, headers=viewer) as ws:
        await send(ws, {"type": "connection_init"})
        assert await recv(ws) == {"type": "connection_ack"}


async def test_no_user_no_connection(live_api):
    for payload in (None, {}, {"Authorization": "Token not-a-real-key"}, {"Authorization": "Bearer x"},
                    {"token": 42}):
        async with opened(live_api) as ws:
            await send(ws, {"type": "connection_init", **({"payload": payload} if payload is not None else {})})
            assert await closed(ws) == (4403, "Forbidden"), payload
    # the header of the upgrade is checked the same way
    async with opened(live_api, headers={"Authorization": "Token nope"}) as ws:
        await send(ws, {"type": "connection_init"})
        assert await closed(ws) == (4403, "Forbidden")


async def test_protocol_violations_close_the_connection(live_api, viewer):
    for subprotocols in (["graphql-ws"], ()):  # the legacy protocol, or none at all
        async with opened(live_api, subprotocols=subprotocols) as ws:
            assert ws.subprotocol is None
            assert await closed(ws) == (4406, "Subprotocol not acceptable")
    async with opened(live_api) as ws:  # subscribe before connection_init
        await send(ws, subscribe("1", "{ __typename }"))
        assert await closed(ws) == (4401, "Unauthorized")
    async with session(live_api, viewer) as ws:  # a second connection_init
        await send(ws, {"type": "connection_init", "payload": viewer})
        assert await closed(ws) == (4429, "Too many initialisation requests")
    async with opened(live_api) as ws:  # no connection_init in time
        assert await asyncio.wait_for(closed(ws), 10) == (4408, "Connection initialisation timeout")


@pytest.mark.parametrize("message", [
    "not json", b"\x00\x01", "[]", "null", '{"type": 1}', '{"type": "subscribe"}',
    '{"type": "subscribe", "id": "", "payload": {"query": "{ __typename }"}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": 1}}',
    '{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }", "variables": []}}',
    '{"type": "complete"}', '{"type": "next", "id": "1", "payload": {}}', '{"type": "connection_ack"}',
    '{"type": "whatever"}', '{"type": "ping", "payload": NaN}', '{"type": "ping", "type": "ping"}',
])
async def test_garbage_closes_4400(live_api, viewer, message):
    async with session(live_api, viewer) as ws:
        await send(ws, message)
        code, _ = await closed(ws)
        assert code == 4400


async def test_an_oversized_message_closes_4400(live_api, viewer, bk):
    big = json.dumps(subscribe("1", '{ incidents(search: "' + "x" * (bk.settings.max_body_bytes + 10)
                               + '") { totalCount } }'))
    async with session(live_api, viewer) as ws:
        await send(ws, big)
        code, reason = await closed(ws)
        assert code == 4400 and "larger than" in reason


# --- the checks HTTP makes -----------------------------------------------------------------------

async def test_refused_documents_are_error_messages_and_nothing_runs(live_api, editor, bk):
    title = unique("ws-refused")
    many = "mutation { " + " ".join(f'm{i}: createIncident(input: {{title: "{title}"}}) {{ __typename }}'
                                    for i in range(31)) + " }"
    deep = 'subscription { postmortemGenerationUpdates(id: "x") { ' + "incident { similar { " * 5 + "id" \
        + " } }" * 5 + " } }"
    aliased = "subscription { " + " ".join(f'a{i}: postmortemGenerationUpdates(id: "x") {{ status }}'
                                           for i in range(31)) + " }"
    cases = [(many, {"TOO_MANY_ALIASES", "TOO_MANY_ROOT_FIELDS"}), (deep, {"QUERY_TOO_DEEP"}),
             (aliased, {"TOO_MANY_ALIASES", "TOO_MANY_ROOT_FIELDS"}),
             ("{ incidents { ", {"GRAPHQL_PARSE_FAILED"}), ("{ noSuchField }", {"GRAPHQL_VALIDATION_FAILED"}),
             ("   ", {"MISSING_QUERY"}), ("query A { __typename } query B { __typename }", {"GRAPHQL_VALIDATION_FAILED"})]
    async with session(live_api, editor) as ws:
        for i, (doc, codes) in enumerate(cases):
            await send(ws, subscribe(f"r{i}", doc))
            msg = await recv(ws)
            assert msg["type"] == "error" and msg["id"] == f"r{i}", msg
            assert msg["payload"] and msg["payload"][0]["extensions"]["code"] in codes, msg
            assert msg["payload"][0]["message"]
        await send(ws, subscribe("bad-vars", UPDATES, {"id": 1.5}))  # validation of the variables: an execution error
        msg = await recv(ws)
        assert msg["type"] in ("error", "next"), msg
        # the connection is still there, and the same id can be used again once answered
        await send(ws, subscribe("r0", "{ __typename }"))
        assert (await recv(ws))["type"] == "next"
        assert await recv(ws) == {"type": "complete", "id": "r0"}
    assert await bk.mongo.incidents.count_documents({"title": title}) == 0


async def test_a_hidden_generation_is_not_found_exactly_like_an_unknown_one(live_api, editor, viewer):
    secret = await new_incident(live_api, editor, data_classification="CONFIDENTIAL")
    gen_id = await start_generation(live_api, editor, secret["id"])
    unknown = str(uuid.uuid4())
    async with session(live_api, viewer) as ws:
        answers = {}
        for op_id, target in (("hidden", gen_id), ("unknown", unknown)):
            await send(ws, subscribe(op_id, UPDATES, {"id": target}))
            msg = await recv(ws)
            assert msg["type"] == "error" and msg["id"] == op_id, msg
            answers[op_id] = json.dumps(msg["payload"]).replace(target, "<id>")
        assert answers["hidden"] == answers["unknown"]
        payload = json.loads(answers["hidden"])
        assert payload[0]["extensions"]["code"] == "GENERATION_NOT_FOUND"
        assert payload[0]["message"] == "Postmortem generation '<id>' not found"
        assert await quiet(ws, 0.5) == []  # no complete after an error
    async with session(live_api, editor) as ws:  # its owner, cleared for it, follows it
        await send(ws, subscribe("mine", UPDATES, {"id": gen_id}))
        msg = await recv(ws)
        assert msg["type"] == "next" and msg["payload"]["data"]["postmortemGenerationUpdates"]["id"] == gen_id


# --- operations on one connection ----------------------------------------------------------------

async def test_operations_per_connection_are_limited_and_complete_stops_one(live_api, bk, fresh_user):
    user, auth = fresh_user
    async with held_generation(bk, live_api, auth, user) as gen_id:
        async with session(live_api, auth) as ws:
            for i in range(10):
                await send(ws, subscribe(f"s{i}", UPDATES, {"id": gen_id}))
            firsts = [await recv(ws) for _ in range(10)]
            assert sorted(m["id"] for m in firsts) == sorted(f"s{i}" for i in range(10))
            assert all(m["type"] == "next" and m["payload"]["data"]["postmortemGenerationUpdates"]["status"]
                       == "PROCESSING" for m in firsts), firsts
            await send(ws, subscribe("s10", UPDATES, {"id": gen_id}))
            msg = await recv(ws)
            assert msg["type"] == "error" and msg["id"] == "s10"
            assert msg["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"

            # complete from the client: that one stops (nothing sent back), its place is free again
            await send(ws, {"type": "complete", "id": "s0"})
            await send(ws, {"type": "complete", "id": "never-started"})  # ignored
            assert await quiet(ws, 0.5) == []
            await send(ws, subscribe("s10", UPDATES, {"id": gen_id}))
            assert (await recv(ws))["id"] == "s10"

            # a change reaches every running subscription but the completed one
            await bk.mongo.postmortem_generations.update_one({"_id": gen_id}, {"$set": {"attempts": 2}})
            await live.announce(bk, generations.TOPIC, gen_id)
            updates = [await recv(ws) for _ in range(10)]
            assert sorted(m["id"] for m in updates) == sorted(f"s{i}" for i in range(1, 11)), updates
            assert {m["payload"]["data"]["postmortemGenerationUpdates"]["attempts"] for m in updates} == {2}
            assert await quiet(ws, 0.5) == []

            # an id in use: the protocol's 4409
            await send(ws, subscribe("s3", UPDATES, {"id": gen_id}))
            assert await closed(ws) == (4409, "Subscriber for s3 already exists")

        # the close ended all ten server-side: a new connection of the same user may open ten live
        # streams again (past the per-user cap of ten they would be TOO_MANY_STREAMS)
        async with session(live_api, auth) as ws:
            for i in range(10):
                await send(ws, subscribe(f"t{i}", UPDATES, {"id": gen_id}))
            again = [await recv(ws) for _ in range(10)]
            assert all(m["type"] == "next" for m in again), again


# --- over HTTP -----------------------------------------------------------------------------------

async def test_a_subscription_over_http_is_refused_naming_the_websocket_protocol(client, viewer):
    query = 'subscription { postmortemGenerationUpdates(id: "x") { status } }'
    for r in (await client.post("/graphql", headers=viewer, json={"query": query}),
              await client.get("/graphql", headers=viewer, params={"query": query})):
        assert r.status_code == 400, r.text
        error = r.json()["errors"][0]
        assert error["extensions"]["code"] == "SUBSCRIPTION_NEEDS_WEBSOCKET"
        assert PROTOCOL in error["message"] and error["extensions"]["details"] == {"protocol": PROTOCOL}
    r = await client.post("/graphql", json={"query": query})  # no user: still a 401 first
    assert r.status_code == 401


async def _fresh_editor(bk) -> tuple[object, dict[str, str]]:
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=unique("ws-revoked"), role=Role.EDITOR,
                                                 clearance=Classification.INTERNAL))
    return user, {"Authorization": f"Token {await issue_token(bk, user=user)}"}


async def test_a_deactivated_user_can_no_longer_write_on_an_open_socket(live_api, bk, admin):
    """Deactivated straight in the database (no API call, no cache invalidation), 2 s before the next
    operation (well inside the token cache's 10 s): it finds out and the connection closes 4403 before
    anything is written."""
    user, auth = await _fresh_editor(bk)
    title = unique("ws after deactivation")
    async with session(live_api, auth) as ws:
        await bk.mongo.users.update_one({"username": user.username}, {"$set": {"is_active": False}})
        await asyncio.sleep(2)
        await send(ws, {"id": "1", "type": "subscribe", "payload": {
            "query": f'mutation {{ createIncident(input: {{title: "{title}", severity: LOW}}) {{ __typename }} }}'}})
        code, _ = await closed(ws)
    assert code == 4403
    assert await bk.mongo.incidents.count_documents({"title": title}) == 0


async def test_an_idle_socket_closes_when_its_token_is_deleted(stack, bk):
    from tests.conftest import serve_api

    user, auth = await _fresh_editor(bk)
    async with serve_api(stack, IKL_GRAPHQL_WS_RECHECK_SECONDS="0.5") as base:
        async with session(base, auth) as ws:
            await bk.mongo.tokens.delete_many({"user_id": user.id})
            code, _ = await closed(ws, timeout=10)
    assert code == 4403


async def test_connections_are_capped_per_user_and_per_address(stack, bk):
    from tests.conftest import serve_api

    (_, one), (_, two) = await _fresh_editor(bk), await _fresh_editor(bk)
    async with serve_api(stack, IKL_GRAPHQL_WS_MAX_PER_USER="2", IKL_GRAPHQL_WS_MAX_PER_ADDRESS="3") as base:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(2):
                await held.enter_async_context(session(base, one))
            async with opened(base) as ws:  # a third for the same user
                await send(ws, {"type": "connection_init", "payload": one})
                assert (await closed(ws))[0] == 1008
            await held.enter_async_context(session(base, two))  # another user, the address's third
            async with opened(base) as ws:  # the address's fourth: refused before any work
                assert (await closed(ws))[0] == 1008
        async with session(base, one) as ws:  # all closed: counted out again
            await send(ws, {"type": "ping"})
            assert (await recv(ws))["type"] == "pong"


async def test_a_token_revoked_a_moment_ago_opens_no_socket(live_api, bk):
    """The token was just used over HTTP (so the process caches it for 10 s), then revoked straight in the
    database: `connection_init` asks the database, not the cache, and the socket closes 4403 unacknowledged."""
    async with httpx.AsyncClient(base_url=live_api, timeout=30) as http:
        for revoke in ("deactivate", "delete"):
            user, auth = await _fresh_editor(bk)
            assert (await http.get(INCIDENTS, headers=auth, params={"page_size": 1})).status_code == 200
            if revoke == "deactivate":
                await bk.mongo.users.update_one({"username": user.username}, {"$set": {"is_active": False}})
            else:
                await bk.mongo.tokens.delete_many({"user_id": user.id})
            async with opened(live_api) as ws:
                await send(ws, {"type": "connection_init", "payload": auth})
                assert await closed(ws) == (4403, "Forbidden"), revoke


async def test_a_running_subscription_ends_when_its_user_is_deactivated(stack, bk):
    """No operation sent after the deactivation: the periodic re-check closes the socket 4403 and ends the
    subscription it was running."""
    from tests.conftest import serve_api

    user, auth = await _fresh_editor(bk)
    async with serve_api(stack, IKL_GRAPHQL_WS_RECHECK_SECONDS="0.5") as base:
        async with held_generation(bk, base, auth, user) as gen_id:
            async with session(base, auth) as ws:
                await send(ws, subscribe("g", UPDATES, {"id": gen_id}, "Updates"))
                first = await recv(ws)
                assert first["type"] == "next" and first["payload"]["data"]["postmortemGenerationUpdates"]["status"] \
                    == "PROCESSING", first
                await bk.mongo.users.update_one({"username": user.username}, {"$set": {"is_active": False}})
                code, _ = await closed(ws, timeout=10)
    assert code == 4403


async def test_sockets_dropped_without_a_close_are_counted_out(stack, bk):
    """Connections that vanish (TCP aborted, no close frame) give their per-user and per-address counts back."""
    from tests.conftest import serve_api

    _, auth = await _fresh_editor(bk)
    async with serve_api(stack, IKL_GRAPHQL_WS_MAX_PER_USER="2", IKL_GRAPHQL_WS_MAX_PER_ADDRESS="2") as base:
        for _ in range(2):  # twice the cap, dropped in turn
            dropped = []
            for _ in range(2):
                ws = await connect(ws_url(base), subprotocols=[PROTOCOL], open_timeout=10)
                await send(ws, {"type": "connection_init", "payload": auth})
                assert await recv(ws) == {"type": "connection_ack"}
                dropped.append(ws)
            for ws in dropped:
                ws.transport.abort()

            async def one_more() -> bool:  # False while the dropped ones are still counted (closed 1008)
                async with opened(base) as ws:
                    try:
                        await send(ws, {"type": "connection_init", "payload": auth})
                        return await recv(ws) == {"type": "connection_ack"}
                    except ConnectionClosed as exc:
                        assert exc.rcvd is not None and exc.rcvd.code == 1008, exc
                        return False

            async with asyncio.timeout(15):
                while not await one_more():
                    await asyncio.sleep(0.2)


async def test_a_failed_accept_gives_its_slot_back(bk):
    """A client gone before the server's accept: the address's count is given back all the same."""
    from starlette.websockets import WebSocket

    from schema import ws as ws_module

    before = dict(ws_module.SOCKETS.open)

    async def receive():
        return {"type": "websocket.connect"}

    async def send_(message):
        if message["type"] == "websocket.accept":
            raise OSError("the client is gone")

    scope = {"type": "websocket", "path": "/graphql", "headers": [], "subprotocols": [PROTOCOL],
             "client": ("203.0.113.77", 40000), "query_string": b""}
    for _ in range(3):
        with pytest.raises(OSError):
            await ws_module.Connection(WebSocket(scope, receive, send_), bk).run()
    assert dict(ws_module.SOCKETS.open) == before
