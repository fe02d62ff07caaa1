"""Recommendations the service makes by itself: on opening a HIGH incident (through the worker), and a
debounced refresh when an open incident learns more; the API's own sweep never runs these jobs."""

from __future__ import annotations

from datetime import timedelta

from app.indexing import outbox
from app.timefmt import utcnow
from tests.conftest import eventually, unique
from tests.recommendations.test_rest import INCIDENTS, sync


async def test_opening_a_high_incident_generates_through_the_worker(client, editor, bk, worker):
    service = unique("wallet")
    for i in range(2):
        r = await client.post(INCIDENTS, headers=editor, json={
            "title": f"{service} checkout errors {i}", "severity": "HIGH", "status": "RESOLVED", "category": "Payments",
            "affected_services": [service], "resolution": "Rolled back the release"})
        assert r.status_code == 201
    await sync(bk)
    r = await client.post(INCIDENTS, headers=editor, json={"title": f"{service} checkout errors", "severity": "HIGH",
                                                            "category": "Payments", "affected_services": [service]})
    inc = r.json()

    async def made():
        return await bk.mongo.recommendations.count_documents({"incident": inc["id"]})
    assert await eventually(made, timeout=30)
    bot = await bk.mongo.users.find_one({"username": "recommendation-bot"})
    recs = await bk.mongo.recommendations.find({"incident": inc["id"]}).to_list(None)
    assert all(rec["created_by"] == bot["_id"] for rec in recs) and len(recs) <= bk.settings.recommendation_auto_max

    async def job_gone():  # removed right after the job ran
        return not await bk.mongo.outbox.count_documents({"index": "recommendations", "doc_id": inc["id"]})
    await eventually(job_gone)

    # a MEDIUM one is left alone
    low = (await client.post(INCIDENTS, headers=editor, json={"title": unique("quiet"), "severity": "MEDIUM"})).json()
    assert not await bk.mongo.outbox.count_documents({"index": "recommendations", "doc_id": low["id"]})


async def test_learning_more_refreshes_after_a_debounce_and_only_workers_run_it(client, editor, bk):
    inc = (await client.post(INCIDENTS, headers=editor, json={"title": unique("learns"), "severity": "MEDIUM"})).json()
    r = await client.post(f"{INCIDENTS}{inc['name']}/events/", headers=editor, json={"events": [
        {"type": "Analysis", "source": "analyst", "message": "Connection pool exhausted"}]})
    assert r.status_code in (200, 201), r.text
    entry = await bk.mongo.outbox.find_one({"index": "recommendations", "doc_id": inc["id"]})
    debounce = bk.settings.recommendation_refresh_debounce_seconds
    assert entry and entry["next_attempt_at"] > utcnow() + timedelta(seconds=debounce - 5)
    r = await client.patch(f"{INCIDENTS}{inc['name']}/", headers=editor, json={"root_cause": "Pool too small"})
    assert r.status_code == 200
    again = await bk.mongo.outbox.find_one({"index": "recommendations", "doc_id": inc["id"]})
    assert again["_id"] == entry["_id"] and again["seq"] == entry["seq"] + 1  # coalesced, pushed back
    # the API's sweep (and a flush of the search indices) leave the job for the workers
    await outbox.drain(bk, due_only=False)
    await outbox.flush(bk)
    assert await bk.mongo.outbox.count_documents({"index": "recommendations", "doc_id": inc["id"]}) == 1
    await outbox.drain(bk, index="recommendations", doc_id=inc["id"], due_only=False, jobs=True)
    assert not await bk.mongo.outbox.count_documents({"index": "recommendations", "doc_id": inc["id"]})


async def test_a_caller_without_jobs_naming_a_job_kind_takes_nothing(bk):
    """Not even the index entries beside it (the kind filter once fell back to 'every non-job entry')."""
    await outbox.record(bk, "incidents", unique("entry"), delay=3600)  # due later: only an explicit drain takes it
    res = await outbox.drain(bk, index="recommendations", due_only=False)
    assert res == {"synced": 0, "failed": 0}
    assert await bk.mongo.outbox.count_documents({"index": "incidents", "next_attempt_at": {"$gt": utcnow()}}) >= 1
    await bk.mongo.outbox.delete_many({"index": "incidents", "next_attempt_at": {"$gt": utcnow()}})
