"""Mining runs on a database of their own: patterns from resolved incidents, re-runs update in place
(never multiply), a validated pattern changes only with a trace, dry runs write nothing, the command."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from app.patterns import runs
from app.timefmt import utcnow
from tests.conftest import ROOT
from tests.postmortems.test_batch import own  # noqa: F401 - the fixture

CAUSES = ["Connection pool exhausted on the orders database under peak load",
          "Database connection pool exhausted at peak traffic on orders",
          "Orders database ran out of pooled connections during the peak",
          "The orders DB connection pool was exhausted by peak traffic"]
OTHER = ["TLS certificate expired on the edge load balancer", "Edge certificate expired: renewal job failed",
         "Expired TLS certificate on the load balancer broke HTTPS"]


async def make(bk, user, title, cause, **fields):
    from app.incidents import service
    from app.incidents.models import IncidentCreate

    now = utcnow()
    return await service.create_incident(bk, user=user, data=IncidentCreate.model_validate({
        "title": title, "severity": "HIGH", "status": "RESOLVED", "category": fields.pop("category", "Database"),
        "root_cause": cause, "resolution": fields.pop("resolution", "Raised the pool size and restarted the service"),
        "detected_at": (now - timedelta(hours=3)).isoformat(), "resolved_at": (now - timedelta(hours=1)).isoformat(),
        **fields}))


async def test_mining_creates_then_updates_in_place_with_a_trace(own, tokens):  # noqa: F811
    bk, env = own
    user = tokens["admin_user"]
    pool = [await make(bk, user, f"Checkout errors {i}", c, affected_services=["orders-db"])
            for i, c in enumerate(CAUSES[:3])]
    for i, c in enumerate(OTHER):
        await make(bk, user, f"HTTPS down {i}", c, category="Security", resolution="Renewed the edge certificate",
                   affected_services=["edge"])

    dry = await runs.run(bk, min_frequency=3, dry_run=True)
    assert dry.rows and all(r.action == runs.WOULD_CREATE for r in dry.rows)
    assert await bk.mongo.learning_patterns.count_documents({}) == 0

    first = await runs.run(bk, min_frequency=3)
    causes = await bk.mongo.learning_patterns.find({"pattern_type": "ROOT_CAUSE"}).to_list(None)
    members = sorted(sorted(p["source_incidents"]) for p in causes)
    assert sorted(i["_id"] for i in pool) in members  # the pool incidents form one pattern
    pool_pattern = next(p for p in causes if set(p["source_incidents"]) == {i["_id"] for i in pool})
    assert pool_pattern["origin"] == "mined" and pool_pattern["frequency"] == 3
    words = " ".join(CAUSES + ["Checkout errors", "Raised the pool size and restarted the service"]).lower()
    assert all(w in words for w in pool_pattern["name"].lower().replace(",", " ").split())
    assert first.run_id and await bk.mongo.pattern_mining_runs.count_documents({}) == 1

    again = await runs.run(bk, min_frequency=3)  # the same data: the same patterns, nothing multiplied
    assert {r.action for r in again.rows} == {runs.UNCHANGED}
    assert await bk.mongo.learning_patterns.count_documents({}) == len(first.rows)

    await bk.mongo.learning_patterns.update_one({"_id": pool_pattern["_id"]}, {"$set": {"is_validated": True}})
    fourth = await make(bk, user, "Checkout errors 4", CAUSES[3], affected_services=["orders-db"])
    later = await runs.run(bk, min_frequency=3)
    updated = await bk.mongo.learning_patterns.find_one({"_id": pool_pattern["_id"]})
    assert fourth["_id"] in updated["source_incidents"] and updated["frequency"] == 4
    assert updated["history"][-1]["action"] == "mining run"
    assert len(updated["history"][-1]["before"]["source_incidents"]) == 3
    assert any(r.action == runs.UPDATED and r.pattern_id == pool_pattern["_id"] for r in later.rows)
    assert await bk.mongo.learning_patterns.count_documents({}) == len(first.rows)

    # its recommendations were rated: the success rate blends in how often they helped
    import uuid as _uuid
    await bk.mongo.recommendations.insert_many([
        {"_id": str(_uuid.uuid4()), "incident": str(_uuid.uuid4()), "recommendation_type": "LEARNING_PATTERN",
         "target": pool_pattern["_id"], "effectiveness_rating": rating} for rating in (1, 1, 2)])
    await runs.run(bk, min_frequency=3)
    rated = await bk.mongo.learning_patterns.find_one({"_id": pool_pattern["_id"]})
    assert rated["success_rate"] == runs.blended_success(updated["success_rate"], 0.0, 3) < updated["success_rate"]

    # the command, as an operator runs it
    out = subprocess.run([sys.executable, "-m", "app.cli", "update_learning_patterns", "--days", "30",
                          "--min-frequency", "3", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                         timeout=180, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250", **env})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "unchanged" in out.stdout and "patterns:" in out.stdout


async def test_only_one_worker_claims_a_scheduled_run(own):  # noqa: F811
    bk, _ = own
    assert await runs.due(bk) is True
    assert await runs.due(bk) is False  # claimed until the interval passes
    await bk.mongo.pattern_mining_schedule.update_one({"_id": "schedule"}, {"$set": {"next_at": utcnow()}})
    assert await runs.due(bk) is True
