"""A database that stops answering: every path gives a clean 503 within a bounded time."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import httpx
import pytest

from tests.conftest import unique


@contextlib.asynccontextmanager
async def app_with(**overrides):
    from app.main import create_app
    from app.settings import Settings

    settings = Settings(environment="test", outbox_sweep_interval=0, mongodb_db="ikl_test", index_prefix="test",
                        **overrides)
    application = create_app(settings)
    async with application.router.lifespan_context(application), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application, raise_app_exceptions=False), base_url="http://f") as c:
        yield c


FROZEN_AT_MOST = 60.0  # seconds: a test that waits longer has failed; its server is woken regardless


@contextlib.contextmanager
def stopped(proc):
    """The process frozen (SIGSTOP), as a hung server or a long GC pause looks to its clients. A thread wakes
    it after FROZEN_AT_MOST seconds whatever this process is doing: a call here that waits on the frozen server
    without a deadline would otherwise wait forever, since only this process would ever wake it."""
    os.kill(proc.pid, signal.SIGSTOP)
    watchdog = threading.Timer(FROZEN_AT_MOST, os.kill, (proc.pid, signal.SIGCONT))
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        os.kill(proc.pid, signal.SIGCONT)


@pytest.fixture
async def fresh_token(bk):
    """A valid token no process has cached yet: authenticating it needs MongoDB."""
    from app.users.models import UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=unique("fault")))
    return {"Authorization": f"Token {await issue_token(bk, user=user)}"}


async def test_a_frozen_database_gives_503_on_every_path(stack, fresh_token, viewer):
    async with app_with(mongodb_timeout_ms=700) as c:
        assert (await c.get("/api/v1/incidents/", headers=viewer)).status_code == 200  # the viewer's token is cached
        with stopped(stack.procs["mongod"]):
            started = time.monotonic()
            r = await c.get("/api/v1/incidents/", headers=fresh_token)  # the token lookup in the middleware
            assert time.monotonic() - started < 5  # a retried read and a reconnect, each within the timeout
            assert r.status_code == 503 and r.json()["code"] == "DATABASE_UNAVAILABLE", r.text
            r = await c.post("/graphql", headers=fresh_token, json={"query": "{ __typename }"})
            assert r.status_code == 503 and r.json()["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"
            r = await c.get("/api/v1/incidents/", headers=viewer)  # a handler's query
            assert r.status_code == 503 and r.json()["code"] == "DATABASE_UNAVAILABLE", r.text
            r = await c.post("/graphql", headers=viewer, json={"query": "{ incidents { totalCount } }"})
            assert r.status_code == 200 and r.json()["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"
            assert time.monotonic() - started < 20
        assert (await c.get("/api/v1/incidents/", headers=fresh_token)).status_code == 200


async def test_every_request_has_a_deadline(stack, fresh_token):
    async with app_with(mongodb_timeout_ms=20_000, request_timeout_seconds=0.5) as c:
        with stopped(stack.procs["mongod"]):
            started = time.monotonic()
            r = await c.get("/api/v1/incidents/", headers=fresh_token)
            assert r.status_code == 503 and r.json()["code"] == "REQUEST_TIMEOUT", r.text
            r = await c.post("/graphql", headers=fresh_token, json={"query": "{ __typename }"})
            assert r.status_code == 503 and r.json()["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"
            assert time.monotonic() - started < 5


async def test_a_lost_search_index_is_503_not_500(client, viewer, bk):
    """The search server lost the index (an in-memory server restarted): searches answer 503 until the
    sweep rebuilds it from MongoDB."""
    from indexers import registry
    from indexers.base import alias_targets, ensure_index

    definition = registry()["articles"]
    targets = await alias_targets(bk, definition)
    await bk.search.indices.delete(index=",".join(targets))
    try:
        r = await client.post("/api/knowledge/knowledge-articles/search/", headers=viewer, json={"query": "database"})
        assert r.status_code == 503 and r.json()["code"] == "SEARCH_UNAVAILABLE", r.text
        r = await client.post("/graphql", headers=viewer, json={
            "query": '{ searchKnowledgeBase(input: {query: "database"}) { totalCount } }'})
        assert r.json()["errors"][0]["extensions"]["code"] == "SEARCH_UNAVAILABLE"
    finally:
        await ensure_index(bk, definition)
    r = await client.post("/api/knowledge/knowledge-articles/search/", headers=viewer, json={"query": "database"})
    assert r.status_code == 200


async def test_writes_fail_fast_while_the_database_is_frozen(stack, viewer, editor):
    """One deadline for the database: a write (a transaction, retried by the driver) and a read each give
    their 503 within IKL_MONGODB_TIMEOUT_MS, not after the driver's retries have each waited their own."""
    async with app_with(mongodb_timeout_ms=1500) as c:
        assert (await c.get("/api/v1/incidents/", headers=editor)).status_code == 200  # token cached
        with stopped(stack.procs["mongod"]):
            took = []
            for _ in range(3):
                started = time.monotonic()
                r = await c.post("/api/v1/incidents/", headers=editor, json={"title": unique("frozen"), "severity": "LOW"})
                took.append(time.monotonic() - started)
                assert r.status_code == 503 and r.json()["code"] == "DATABASE_UNAVAILABLE", r.text
            started = time.monotonic()
            r = await c.get("/api/v1/incidents/", headers=viewer)
            took.append(time.monotonic() - started)
            assert r.status_code == 503 and r.json()["code"] == "DATABASE_UNAVAILABLE", r.text
        assert max(took) < 1.5 + 0.5, took


async def test_closing_the_backends_never_hangs_on_one_client(stack, monkeypatch, caplog):
    """A client whose close never returns (PyMongo's async close once deadlocked in CI after a frozen server woke)
    is given up after CLOSE_SECONDS, and the others are still closed: a process's stop does not hang."""
    import asyncio

    from app import backends
    from app.settings import Settings

    bk = backends.connect(Settings(environment="test", mongodb_db="ikl_test", index_prefix="test"))
    await bk.mongo.command("ping")
    closed = []

    async def never():
        await asyncio.Event().wait()

    async def search_closed():
        closed.append("search")

    monkeypatch.setattr(backends, "CLOSE_SECONDS", 0.2)
    real_close = bk.client.close
    monkeypatch.setattr(bk.client, "close", never)
    monkeypatch.setattr(bk.search, "close", search_closed)
    try:
        started = time.monotonic()
        await bk.close()
        assert time.monotonic() - started < 2
        assert closed == ["search"]
        assert any(r.message.startswith("closing a client timed out") and r.client == "mongodb"
                   for r in caplog.records)
    finally:
        await real_close()
