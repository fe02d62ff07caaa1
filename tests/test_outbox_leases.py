"""The outbox's entries are leased jobs (app/leases.py): a job slower than its lease is renewed while it
runs and runs once, however many drains try to take it meanwhile; only the holder of an entry's lease
removes it or records its failure."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from app.indexing import outbox


def short_leases(bk, seconds: float):
    return dataclasses.replace(bk, settings=bk.settings.model_copy(update={"outbox_lease_seconds": seconds}))


async def test_a_job_slower_than_its_lease_runs_once(bk, monkeypatch):
    fast = short_leases(bk, 0.6)
    doc_id = f"lease-{uuid.uuid4().hex}"
    runs: list[str] = []

    async def slow(bk_, ids):
        if doc_id in ids:
            runs.append(doc_id)
            await asyncio.sleep(1.6)  # past two lease lengths: without renewals another drain takes it

    monkeypatch.setitem(outbox._HANDLERS, "embeddings", slow)
    # due in an hour: the workers' own sweep (due entries only) leaves it to these drains
    await outbox.record(fast, "embeddings", doc_id, delay=3600)
    first = asyncio.create_task(outbox.drain(fast, index="embeddings", doc_id=doc_id, due_only=False, jobs=True))
    others = []
    for _ in range(4):  # while it runs, other drains keep trying to take the entry
        await asyncio.sleep(0.35)
        others.append(await outbox.drain(fast, index="embeddings", doc_id=doc_id, due_only=False, jobs=True))
    assert await first == {"synced": 1, "failed": 0}
    assert runs == [doc_id]
    assert all(o == {"synced": 0, "failed": 0} for o in others)
    assert await bk.mongo.outbox.count_documents({"doc_id": doc_id}) == 0


async def test_only_the_holder_removes_or_fails_an_entry(bk):
    doc_id = f"lease-{uuid.uuid4().hex}"
    await outbox.record(bk, "embeddings", doc_id, delay=3600)
    held = await outbox._claim(bk, {"index": "embeddings", "doc_id": doc_id}, due_only=False)
    assert held and held["lease"] and held["status"] == "running"
    # taken over (its holder froze past the lease): the old holder's release and failure write nothing
    stale = {**held, "lease": str(uuid.uuid4())}
    assert not await outbox.ENTRIES.release(bk, stale, status="pending")
    await outbox._fail(bk, [stale], RuntimeError("late"))
    doc = await bk.mongo.outbox.find_one({"doc_id": doc_id})
    assert doc["lease"] == held["lease"] and doc.get("attempts", 0) == 0 and "last_error" not in doc
    # the holder's failure is recorded and the entry given back with a retry time
    await outbox._fail(bk, [held], RuntimeError("search server down"))
    doc = await bk.mongo.outbox.find_one({"doc_id": doc_id})
    assert doc["attempts"] == 1 and doc["status"] == "failed" and "lease" not in doc and "leased_until" not in doc
    assert "search server down" in doc["last_error"]
    await bk.mongo.outbox.delete_one({"doc_id": doc_id})
