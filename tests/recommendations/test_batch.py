"""`ikl generate_recommendations` run as an operator would (a real process) against a database of its own:
the documented options and defaults, dry run, idempotence, --force, an unknown status refused."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

from app.timefmt import utcnow
from tests.conftest import ROOT
from tests.postmortems.test_batch import own, row  # noqa: F401 - the fixture and the table helper


def ikl(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "generate_recommendations", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250", **env})


async def test_generate_recommendations_command(own, tokens):  # noqa: F811
    from app.incidents import service
    from app.incidents.models import IncidentCreate

    bk, env = own
    user = tokens["admin_user"]

    async def make(title, **fields):
        return await service.create_incident(bk, user=user, data=IncidentCreate.model_validate(
            {"title": title, "severity": "HIGH", "affected_services": ["api"], **fields}))

    high = await make("API errors")
    low = await make("Slow page", severity="LOW")
    done = await make("Fixed already", status="RESOLVED")
    old = await make("Old one")
    await bk.mongo.incidents.update_one({"_id": old["_id"]}, {"$set": {"created_at": utcnow() - timedelta(days=3)}})

    out = ikl(env, "--dry-run")  # defaults: 1 day, OPEN, every severity
    assert out.returncode == 0, out.stdout + out.stderr
    assert "would generate" in row(out, high["name"]) and "would generate" in row(out, low["name"])
    assert done["name"] not in out.stdout and old["name"] not in out.stdout
    assert await bk.mongo.recommendations.count_documents({}) == 0

    out = ikl(env, "--days", "1", "--status", "OPEN", "--severity", "HIGH", "--max-recommendations", "5")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "generated" in row(out, high["name"]) and low["name"] not in out.stdout
    out = ikl(env, "--days", "7", "--severity", "high,low")
    assert "generated" in row(out, low["name"]) and "generated" in row(out, old["name"])
    assert "skipped (exists)" in row(out, high["name"]) or "generated" in row(out, high["name"])
    out = ikl(env, "--force", "--severity", "HIGH", "--status", "OPEN,RESOLVED")
    assert out.returncode == 0 and "generated" in row(out, done["name"])
    bad = ikl(env, "--status", "SLEEPING")
    assert bad.returncode == 2 and "unknown status 'SLEEPING'" in bad.stderr + bad.stdout
