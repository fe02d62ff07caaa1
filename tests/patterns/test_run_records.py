"""One mining run at a time, leases, duplicates counted once — on a database of their own — and the
admins' list of runs (REST and GraphQL), hidden from everyone else and beyond an admin's clearance."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from app.patterns import run_records, runs
from app.timefmt import utcnow
from tests.conftest import ROOT
from tests.incidents.test_graphql import gql
from tests.patterns.test_mining_run import CAUSES, make
from tests.postmortems.test_batch import own  # noqa: F401 - the fixture

BASE = "/api/knowledge/learning-patterns/"
RUNS = BASE + "mining_runs/"


async def pool(bk, user, n: int = 3) -> list[dict]:
    return [await make(bk, user, f"Checkout errors {i}", c, affected_services=["orders-db"])
            for i, c in enumerate(CAUSES[:n])]


def command(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "update_learning_patterns", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250", **env})


# --- one at a time ----------------------------------------------------------------------------------------

async def test_two_concurrent_starts_make_one_run(own, tokens):  # noqa: F811
    from app.backends import connect

    bk, _ = own
    await pool(bk, tokens["admin_user"])
    other = connect(bk.settings)  # another process's connections
    try:
        a, b = await asyncio.gather(runs.run(bk, min_frequency=3), runs.run(other, min_frequency=3, trigger="schedule"))
    finally:
        await other.close()
    done, busy = (a, b) if a.run_id else (b, a)
    assert done.run_id and not busy.run_id and busy.already_running["_id"] == done.run_id
    assert busy.rows == []  # the second did nothing
    recorded = await bk.mongo.pattern_mining_runs.find().to_list(None)
    assert [(r["_id"], r["status"]) for r in recorded] == [(done.run_id, "COMPLETED")]
    assert "active" not in recorded[0] and recorded[0]["counts"]["created"] == len(done.rows) >= 1
    assert await bk.mongo.learning_patterns.count_documents({}) == len(done.rows)  # not mined twice


async def test_requests_while_one_runs_get_that_one_and_a_worker_claims_it_once(own, tokens, monkeypatch):  # noqa: F811
    bk, _ = own
    admin, editor = tokens["admin_user"], tokens["editor_user"]
    await pool(bk, admin)
    sent = []

    async def enqueue(actor_name, *args):
        sent.append((actor_name, args))

    monkeypatch.setattr(bk, "enqueue", enqueue)
    from app.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        await runs.request(bk, days=30, min_frequency=3, user=editor)
    got = await asyncio.gather(*(runs.request(bk, days=30, min_frequency=3, user=admin) for _ in range(5)))
    assert sum(created for _, created in got) == 1 and len({doc["_id"] for doc, _ in got}) == 1
    run_id = got[0][0]["_id"]
    assert got[0][0]["status"] == "PENDING" and sent == [("mine_learning_patterns", (30, 3, run_id))]

    busy = await runs.run(bk, min_frequency=3, trigger="schedule")  # the schedule meanwhile: nothing
    assert busy.already_running["_id"] == run_id and busy.run_id is None
    out = command(own[1], "--min-frequency", "3", "--wait", "0")  # the command, not waiting: says so, exits 75
    assert out.returncode == runs.BUSY_EXIT_CODE == 75, out.stdout + out.stderr
    assert "already running" in out.stderr and run_id in out.stderr
    out = command(own[1], "--min-frequency", "3", "--wait", "1.5")  # waited, still running: the same
    assert out.returncode == 75 and "waited 1.5 s" in out.stderr and run_id in out.stderr, out.stdout + out.stderr
    assert "waiting for it to end" in out.stdout
    dry = command(own[1], "--min-frequency", "3", "--dry-run")  # writes nothing: never blocked
    assert dry.returncode == 0 and "would create" in dry.stdout, dry.stdout + dry.stderr

    done = await runs.run(bk, days=30, min_frequency=3, trigger="requested", run_id=run_id)  # the worker
    assert done.run_id == run_id and done.rows
    again = await runs.run(bk, days=30, min_frequency=3, trigger="requested", run_id=run_id)  # redelivered
    assert again.skipped and again.rows == []
    doc = await bk.mongo.pattern_mining_runs.find_one({"_id": run_id})
    assert doc["status"] == "COMPLETED" and doc["trigger"] == "requested" and doc["requested_by"] == admin.id
    assert doc["claimed_at"] and doc["processing_time"] >= 0 and doc["incidents"] == 3
    assert await bk.mongo.pattern_mining_runs.count_documents({}) == 1


async def test_a_run_whose_worker_died_blocks_only_until_its_lease_runs_out(own, tokens):  # noqa: F811
    bk, env = own
    await pool(bk, tokens["admin_user"])
    dead, created = await run_records.begin(bk, trigger="schedule", days=30, min_frequency=3)
    assert created
    assert (await runs.run(bk, min_frequency=3)).already_running["_id"] == dead["_id"]  # alive: it blocks
    assert await runs.due(bk) is True and (await run_records.running(bk))["_id"] == dead["_id"]  # not expired

    # its worker was killed: nobody renews the lease
    await bk.mongo.pattern_mining_runs.update_one({"_id": dead["_id"]},
                                                  {"$set": {"leased_until": utcnow() - timedelta(seconds=1)}})
    out = command(env, "--min-frequency", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    old = await bk.mongo.pattern_mining_runs.find_one({"_id": dead["_id"]})
    assert old["status"] == "FAILED" and "abandoned" in old["error_message"] and "running" not in old
    new = await bk.mongo.pattern_mining_runs.find_one({"_id": {"$ne": dead["_id"]}})
    assert new["status"] == "COMPLETED" and new["trigger"] == "command"

    # the workers' periodic check fails a dead run even when nobody starts another
    dead2, _ = await run_records.begin(bk, trigger="schedule", days=30, min_frequency=3)
    await bk.mongo.pattern_mining_runs.update_one({"_id": dead2["_id"]},
                                                  {"$set": {"leased_until": utcnow() - timedelta(seconds=1)}})
    await runs.due(bk)
    assert (await bk.mongo.pattern_mining_runs.find_one({"_id": dead2["_id"]}))["status"] == "FAILED"
    assert await run_records.running(bk) is None


async def test_a_run_taken_as_dead_stops_and_writes_nothing(own, tokens, monkeypatch):  # noqa: F811
    """Its lease ran out while it was still going (a long pause) and another run took over: it must not
    write patterns beside the new run, nor its outcome over it."""
    bk, _ = own
    await pool(bk, tokens["admin_user"])
    real = run_records.classify
    replacement = {}

    async def classify_then_lose_the_lease(bk_, record, incidents):
        await real(bk_, record, incidents)
        await bk.mongo.pattern_mining_runs.update_one({"_id": record["_id"]},
                                                      {"$set": {"leased_until": utcnow() - timedelta(seconds=1)}})
        replacement["run"], _ = await run_records.begin(bk, trigger="schedule", days=30, min_frequency=3)

    monkeypatch.setattr(run_records, "classify", classify_then_lose_the_lease)
    with pytest.raises(run_records.LeaseLost):
        await runs.run(bk, min_frequency=3)
    assert await bk.mongo.learning_patterns.count_documents({}) == 0
    docs = {d["_id"]: d for d in await bk.mongo.pattern_mining_runs.find().to_list(None)}
    new = docs.pop(replacement["run"]["_id"])
    (old,) = docs.values()
    assert old["status"] == "FAILED" and "abandoned" in old["error_message"]
    assert new["status"] == "RUNNING" and new["active"] is True  # untouched by the old one's ending


async def test_a_failing_run_is_recorded_and_frees_the_slot(own, tokens, monkeypatch):  # noqa: F811
    bk, _ = own
    await pool(bk, tokens["admin_user"])

    def broken(*a, **k):
        raise RuntimeError("the clustering blew up")

    monkeypatch.setattr(runs.mining, "mine", broken)
    with pytest.raises(RuntimeError):
        await runs.run(bk, min_frequency=3)
    failed = await bk.mongo.pattern_mining_runs.find_one({})
    assert failed["status"] == "FAILED" and "the clustering blew up" in failed["error_message"]
    assert await run_records.running(bk) is None
    monkeypatch.undo()
    assert (await runs.run(bk, min_frequency=3)).run_id  # the next one runs


async def test_a_duplicate_incident_counts_once(own, tokens):  # noqa: F811
    bk, _ = own
    incs = await pool(bk, tokens["admin_user"], n=3)
    twin = await make(bk, tokens["admin_user"], "Checkout errors again", CAUSES[3], affected_services=["orders-db"])
    # closed as a duplicate of the first (the field the incidents domain sets)
    await bk.mongo.incidents.update_one({"_id": twin["_id"]}, {"$set": {"duplicate_of": incs[0]["_id"]}})
    report = await runs.run(bk, min_frequency=3)
    assert report.duplicates_skipped == 1 and report.incidents == 4 and report.eligible == 3
    (pattern,) = await bk.mongo.learning_patterns.find({"pattern_type": "ROOT_CAUSE"}).to_list(None)
    assert twin["_id"] not in pattern["source_incidents"] and pattern["frequency"] == 3
    record = await bk.mongo.pattern_mining_runs.find_one({"_id": report.run_id})
    assert record["duplicates_skipped"] == 1
    assert pattern["_id"] in {p["pattern_id"] for p in record["patterns"] if p["pattern_type"] == "ROOT_CAUSE"}


async def test_the_runs_list_and_the_running_lookup_use_indexes(own):  # noqa: F811
    from app.listing import parse_list_params
    from app.users.models import Classification

    bk, _ = own
    now = utcnow()
    await bk.mongo.pattern_mining_runs.insert_many([
        {"_id": f"r{i}", "status": ["COMPLETED", "FAILED"][i % 2], "trigger": "schedule",
         "data_classification": ["INTERNAL", "RESTRICTED"][i % 2], "started_at": now - timedelta(hours=i),
         "completed_at": now - timedelta(hours=i)} for i in range(300)])
    visible = {"data_classification": {"$in": Classification.INTERNAL.visible()}}
    for params in ({}, {"status": "FAILED"}, {"ordering": "-completed_at"}):
        q = parse_list_params(run_records.LIST_SPEC, params)
        flt = {"$and": [visible, q.filter]} if q.filter else visible
        plan = await bk.mongo.pattern_mining_runs.find(flt, hint=q.hint).sort(q.sort).limit(20).explain()
        stages = str(plan["queryPlanner"]["winningPlan"])
        assert "IXSCAN" in stages and "COLLSCAN" not in stages, (params, stages)
        assert plan["executionStats"]["totalDocsExamined"] <= 60, (params, plan["executionStats"])
    plan = await bk.mongo.pattern_mining_runs.find({"active": True}).explain()
    assert "one_active_run" in str(plan["queryPlanner"]["winningPlan"])


# --- the admins' list -------------------------------------------------------------------------------------

async def _admin_with(bk, clearance) -> dict:
    from app.users.models import Role, UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=f"admin-{uuid.uuid4().hex[:6]}", role=Role.ADMIN,
                                                 clearance=clearance))
    return {"Authorization": f"Token {await issue_token(bk, user=user)}"}


async def _seed_runs(bk, admin_user) -> list[dict]:
    """Three finished runs an hour apart (newest last here), one RESTRICTED, one FAILED."""
    base = utcnow() + timedelta(days=3650)  # later than any other test's runs: first in the default order
    tag = uuid.uuid4().hex[:6]
    docs = []
    for i, (status, level) in enumerate((("COMPLETED", "INTERNAL"), ("FAILED", "INTERNAL"),
                                         ("COMPLETED", "RESTRICTED"))):
        started = base + timedelta(hours=i)
        docs.append({"_id": f"run-{tag}-{i}", "status": status, "trigger": "schedule", "days": 30, "min_frequency": 3,
                     "requested_by": admin_user.id, "data_classification": level, "started_at": started,
                     "claimed_at": started, "completed_at": started + timedelta(hours=10 - 4 * i),
                     "processing_time": 600.0, "incidents": 200, "eligible": 160, "duplicates_skipped": 40,
                     "counts": {"created": 2, "updated": 1, "unchanged": 0},
                     "patterns": [{"pattern_id": "p1", "action": "created", "pattern_type": "ROOT_CAUSE",
                                   "name": "connection pool exhausted", "frequency": 5, "confidence_score": 0.5}],
                     "error_message": "RuntimeError: boom" if status == "FAILED" else None})
    await bk.mongo.pattern_mining_runs.insert_many(docs)
    return docs


async def test_admins_list_runs_newest_first_others_get_403(client, bk, admin, editor, viewer, tokens):
    from app.users.models import Classification

    docs = await _seed_runs(bk, tokens["admin_user"])
    r = await client.get(RUNS, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [x["id"] for x in body["results"][:3]] == [d["_id"] for d in reversed(docs)]  # newest first
    first = body["results"][0]
    assert first["counts"] == {"created": 2, "updated": 1, "unchanged": 0} and first["duplicates_skipped"] == 40
    assert first["started_at"].endswith("Z") and first["requested_by_username"] == tokens["admin_user"].username
    r = await client.get(RUNS, headers=admin, params={"status": "FAILED", "page_size": 100})
    assert docs[1]["_id"] in {x["id"] for x in r.json()["results"]}
    assert {x["status"] for x in r.json()["results"]} == {"FAILED"}
    r = await client.get(RUNS, headers=admin, params={"ordering": "completed_at", "page_size": 100})
    mine = [x["id"] for x in r.json()["results"] if x["id"] in {d["_id"] for d in docs}]
    assert mine == [docs[2]["_id"], docs[1]["_id"], docs[0]["_id"]]  # the last started finished first
    for bad in ({"status": "DONE"}, {"ordering": "incidents"}, {"page_size": "0"}):
        assert (await client.get(RUNS, headers=admin, params=bad)).status_code == 400, bad
    r = await client.get(f"{RUNS}{docs[1]['_id']}/", headers=admin)
    assert r.status_code == 200 and r.json()["error_message"] == "RuntimeError: boom"
    assert r.json()["patterns"][0]["name"] == "connection pool exhausted"
    assert (await client.get(f"{RUNS}nope/", headers=admin)).json()["code"] == "MINING_RUN_NOT_FOUND"

    # not admins: 403 (a run's counts would tell how many hidden incidents exist)
    for who in (editor, viewer):
        for url in (RUNS, f"{RUNS}{docs[0]['_id']}/"):
            r = await client.get(url, headers=who)
            assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED", (url, r.text)
    # an admin below RESTRICTED does not see a run that looked at RESTRICTED incidents: 404 like a missing one
    low = await _admin_with(bk, Classification.INTERNAL)
    seen = {x["id"] for x in (await client.get(RUNS, headers=low, params={"page_size": 100})).json()["results"]}
    assert docs[0]["_id"] in seen and docs[2]["_id"] not in seen
    assert (await client.get(f"{RUNS}{docs[2]['_id']}/", headers=low)).json()["code"] == "MINING_RUN_NOT_FOUND"


async def test_the_runs_routes_do_not_collide_with_a_pattern_id(client, bk, admin, viewer, tokens):
    docs = await _seed_runs(bk, tokens["admin_user"])
    r = await client.post(BASE, headers=admin, json={"name": uuid.uuid4().hex, "pattern_type": "ROOT_CAUSE"})
    pattern = r.json()
    assert (await client.get(f"{BASE}{pattern['id']}/", headers=viewer)).json()["id"] == pattern["id"]
    for method in ("post", "put", "patch", "delete"):  # never taken for the pattern "mining_runs"
        kw = {} if method == "delete" else {"json": {"name": "x"}}
        r = await getattr(client, method)(RUNS, headers=admin, **kw)
        assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED", (method, r.text)
        r = await getattr(client, method)(f"{RUNS}{docs[0]['_id']}/", headers=admin, **kw)
        assert r.status_code == 405, (method, r.text)
    assert (await bk.mongo.pattern_mining_runs.find_one({"_id": docs[0]["_id"]})) is not None
    assert (await client.get(f"{BASE}mining_runs/", headers=viewer)).status_code == 403  # not a pattern's 404


RUNS_Q = """query($status: [PatternMiningRunStatus!], $ordering: String) {
  patternMiningRuns(status: $status, ordering: $ordering, pageSize: 10) { totalCount results {
    id status trigger days minFrequency incidents duplicatesSkipped counts startedAt completedAt errorMessage
    dataClassification requestedBy { username } patterns { patternId action name frequency } } } }"""


async def test_runs_through_graphql(client, bk, admin, editor, tokens):
    docs = await _seed_runs(bk, tokens["admin_user"])
    data = (await gql(client, admin, RUNS_Q, status=["FAILED"]))["data"]["patternMiningRuns"]
    got = next(x for x in data["results"] if x["id"] == docs[1]["_id"])
    assert got["status"] == "FAILED" and got["errorMessage"] == "RuntimeError: boom" and got["trigger"] == "SCHEDULE"
    assert got["requestedBy"]["username"] == tokens["admin_user"].username and got["patterns"][0]["patternId"] == "p1"
    one = """query($id: ID!) { patternMiningRun(id: $id) { id counts dataClassification } }"""
    assert (await gql(client, admin, one, id=docs[2]["_id"]))["data"]["patternMiningRun"]["dataClassification"] == \
        "RESTRICTED"
    for query, args in ((RUNS_Q, {}), (one, {"id": docs[0]["_id"]})):
        out = await gql(client, editor, query, **args)
        assert out["data"] is None and out["errors"][0]["extensions"]["code"] == "PERMISSION_DENIED", out
    out = await gql(client, admin, one, id="nope")
    assert out["errors"][0]["extensions"]["code"] == "MINING_RUN_NOT_FOUND"


async def test_start_mining_twice_returns_the_running_run(client, bk, admin):
    start = """mutation { startPatternMining(days: 30, minFrequency: 3) { __typename
      ... on MiningStarted { message created run { id status trigger days } } ... on UserError { code } } }"""
    first = (await gql(client, admin, start))["data"]["startPatternMining"]
    assert first["__typename"] == "MiningStarted" and first["run"]["status"] in ("PENDING", "RUNNING"), first
    second = (await gql(client, admin, start))["data"]["startPatternMining"]
    assert second["created"] is False and second["run"]["id"] == first["run"]["id"]
    assert second["message"] == "A learning pattern mining run is already running"
    assert await bk.mongo.pattern_mining_runs.count_documents({"active": True}) == 1
    out = await gql(client, admin, RUNS_Q, status=["PENDING", "RUNNING"])
    assert [x["id"] for x in out["data"]["patternMiningRuns"]["results"]] == [first["run"]["id"]]
