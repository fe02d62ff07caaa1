"""Versioned migrations (app/migrations.py), on databases of their own: a database written by an earlier
version is brought to this one once, each step recorded; processes starting together run a step once; a
failed step says why and is tried again at the next start."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pymongo import ASCENDING, IndexModel

from app import migrations
from app.db import ensure_indexes
from app.timefmt import utcnow


@pytest.fixture
async def blank(stack):
    """Backends on an empty database (no index, no migration recorded yet)."""
    from app.backends import connect
    from app.settings import get_settings

    settings = get_settings().model_copy(update={"mongodb_db": f"ikl_migrate_{uuid.uuid4().hex[:8]}"})
    bk = connect(settings)
    try:
        yield bk
    finally:
        await bk.client.drop_database(settings.mongodb_db)
        await bk.close()


async def _as_an_earlier_version_wrote_it(bk) -> None:
    db = bk.mongo
    now = utcnow()
    await db.incidents.insert_one({"_id": "i1", "name": "old-incident", "title": "Before classification",
                                   "created_at": now})
    await db.pattern_mining_runs.create_indexes([IndexModel([("running", ASCENDING)], unique=True,
                                                            partialFilterExpression={"running": True},
                                                            name="one_running_run")])
    await db.pattern_mining_runs.insert_many([
        {"_id": "r1", "started_at": now},  # before runs had a status and a classification
        {"_id": "r2", "status": "RUNNING", "running": True, "data_classification": "INTERNAL", "started_at": now}])
    await db.webhook_deliveries.create_indexes([IndexModel([("next_attempt_at", ASCENDING)],
                                                           partialFilterExpression={"queued": True},
                                                           name="queued_due")])
    await db.webhook_deliveries.insert_many([{"_id": "d1", "status": "pending", "queued": True, "next_attempt_at": now},
                                             {"_id": "d2", "status": "delivered", "next_attempt_at": now}])


async def test_an_earlier_versions_database_is_migrated_once(blank):
    bk = blank
    await _as_an_earlier_version_wrote_it(bk)
    await ensure_indexes(bk)

    db = bk.mongo
    assert (await db.incidents.find_one({"_id": "i1"}))["data_classification"] == "INTERNAL"
    r1, r2 = await db.pattern_mining_runs.find().sort("_id").to_list(None)
    assert (r1["status"], r1["data_classification"], "active" in r1) == ("COMPLETED", "RESTRICTED", False)
    assert r2["active"] is True and "running" not in r2 and r2["data_classification"] == "INTERNAL"
    run_indexes = await db.pattern_mining_runs.index_information()
    assert "one_running_run" not in run_indexes and run_indexes["one_active_run"]["unique"]
    d1 = await db.webhook_deliveries.find_one({"_id": "d1"})
    assert d1["active"] is True and "queued" not in d1
    assert "queued_due" not in await db.webhook_deliveries.index_information()

    records = {r["_id"]: r async for r in db.migrations.find()}
    assert list(records) == [s.name for s in migrations.STEPS]
    assert all(r["status"] == migrations.DONE and "active" not in r and "lease" not in r for r in records.values())
    assert [records[s.name]["changed"] for s in migrations.STEPS] == [1, 1, 1, 1, 1]

    # recorded: a later start changes nothing, even a document that would have matched
    await db.incidents.insert_one({"_id": "i2", "name": "written-since", "title": "No classification"})
    assert await migrations.migrate(bk) == []
    await ensure_indexes(bk)
    assert "data_classification" not in await db.incidents.find_one({"_id": "i2"})


async def test_a_new_database_records_every_step_and_changes_nothing(blank):
    assert await migrations.migrate(blank) == [s.name for s in migrations.STEPS]
    assert [r["changed"] async for r in blank.mongo.migrations.find()] == [0] * len(migrations.STEPS)


async def test_processes_starting_together_run_each_step_once(blank):
    from app.backends import connect

    calls = []

    async def slow(bk) -> int:
        calls.append(1)
        await asyncio.sleep(0.5)
        return 3

    steps = (migrations.Step("t-slow", "a slow step", slow),)
    others = [connect(blank.settings) for _ in range(2)]
    try:
        ran = await asyncio.gather(migrations.migrate(blank, steps=steps),
                                   *(migrations.migrate(o, steps=steps, poll_seconds=0.05) for o in others))
    finally:
        for o in others:
            await o.close()
    assert len(calls) == 1 and sorted(ran) == [[], [], ["t-slow"]]
    record = await blank.mongo.migrations.find_one({"_id": "t-slow"})
    assert record["status"] == migrations.DONE and record["changed"] == 3 and record["processing_time"] >= 0.5


async def test_a_failed_step_says_why_stops_the_rest_and_runs_again_at_the_next_start(blank):
    attempts = []

    async def flaky(bk) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("disk full")
        return 0

    async def after(bk) -> int:
        return 0

    steps = (migrations.Step("t-flaky", "fails once", flaky), migrations.Step("t-after", "then this", after))
    with pytest.raises(RuntimeError):
        await migrations.migrate(blank, steps=steps)
    failed = await blank.mongo.migrations.find_one({"_id": "t-flaky"})
    assert failed["status"] == migrations.FAILED and failed["error_message"] == "disk full" and "lease" not in failed
    assert await blank.mongo.migrations.find_one({"_id": "t-after"}) is None  # the order holds

    assert await migrations.migrate(blank, steps=steps) == ["t-flaky", "t-after"]
    assert (await blank.mongo.migrations.find_one({"_id": "t-flaky"}))["status"] == migrations.DONE
