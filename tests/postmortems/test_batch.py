"""`ikl generate_postmortems` run as an operator would (a real process), against a database of its own
so the incidents other tests resolve are not picked up: selection, dry run, idempotence, --force, and
exit code 1 when one incident fails while the others go on."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from app.timefmt import utcnow
from tests.conftest import ROOT
from tests.postmortems.test_generate import EVENTS


@pytest.fixture
async def own(stack, tokens):
    """Backends on a fresh database and index prefix, and the env that points a command at them."""
    from app.backends import connect
    from app.db import ensure_indexes
    from app.settings import get_settings

    tag = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(update={"mongodb_db": f"ikl_batch_{tag}", "index_prefix": f"batch{tag}"})
    bk = connect(settings)

    async def no_sync(index, doc_id):  # no worker should sync these into another database's index
        return None

    bk.notify_index = no_sync
    await ensure_indexes(bk)
    try:
        yield bk, {"IKL_MONGODB_DB": settings.mongodb_db, "IKL_INDEX_PREFIX": settings.index_prefix}
    finally:
        await bk.client.drop_database(settings.mongodb_db)
        await bk.close()


def ikl(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "generate_postmortems", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250", **env})


def row(out: subprocess.CompletedProcess, name: str) -> str:
    lines = [line for line in out.stdout.splitlines() if name in line]
    assert len(lines) == 1, out.stdout
    return lines[0]


async def make(bk, user, title, **fields):
    from app.incidents import service
    from app.incidents.models import IncidentCreate

    base = dict(title=title, severity="HIGH", status="RESOLVED", affected_services=["database"],
                affected_teams=["database.team"], root_cause="Connection pool exhausted", resolution="Raised pool size",
                detected_at="2024-01-15T10:30:00Z", timeline=EVENTS)
    return await service.create_incident(bk, data=IncidentCreate.model_validate({**base, **fields}), user=user)


async def test_generate_postmortems_command(own, tokens):
    bk, env = own
    user = tokens["admin_user"]
    now = utcnow()
    high = await make(bk, user, "Checkout database outage", resolved_at=now - timedelta(days=1),
                      data_classification="CONFIDENTIAL")
    crit = await make(bk, user, "Payments down", severity="CRITICAL", status="CLOSED", resolved_at=now - timedelta(days=2))
    low = await make(bk, user, "Slow dashboard", severity="LOW", resolved_at=now - timedelta(hours=1))
    old = await make(bk, user, "Old outage", resolved_at=now - timedelta(days=10))
    unresolved = await make(bk, user, "Still burning", status="OPEN")
    others = (low, old, unresolved)

    # dry run: lists what would be created, writes nothing (not even the bot user)
    out = ikl(env, "--dry-run", "--severity", "HIGH", "--severity", "critical")
    assert out.returncode == 0, out.stdout + out.stderr
    for inc in (high, crit):
        assert "would create" in row(out, inc["name"])
    assert not any(inc["name"] in out.stdout for inc in others)
    assert await bk.mongo.postmortems.count_documents({}) == 0
    assert await bk.mongo.users.count_documents({"username": "postmortem-bot"}) == 0
    out = ikl(env, "--dry-run", "--days", "30")  # every severity; a longer window
    assert out.returncode == 0 and all(inc["name"] in out.stdout for inc in (high, crit, low, old))
    assert unresolved["name"] not in out.stdout

    # a run: one drafted postmortem per matching incident, by the bot
    out = ikl(env, "--severity", "HIGH,CRITICAL")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "created" in row(out, high["name"]) and "created" in row(out, crit["name"])
    bot = await bk.mongo.users.find_one({"username": "postmortem-bot"})
    assert bot["role"] == "admin" and bot["clearance"] == "RESTRICTED"
    pms = {pm["incident"]: pm async for pm in bk.mongo.postmortems.find({})}
    assert set(pms) == {high["_id"], crit["_id"]}
    assert pms[high["_id"]]["title"] == "Postmortem: Checkout database outage"
    assert pms[high["_id"]]["data_classification"] == "CONFIDENTIAL" and pms[crit["_id"]]["severity"] == "CRITICAL"
    for pm in pms.values():
        assert pm["owner"] == bot["_id"] and pm["is_automated"] and pm["status"] == "DRAFT"
        assert 0 < pm["generation_confidence"] <= 1 and "Connection pool exhausted" in pm["root_cause_analysis"]
        assert f"{pm['generation_confidence']:.2f}" in row(out, next(i["name"] for i in (high, crit)
                                                                   if i["_id"] == pm["incident"]))

    # again: idempotent
    out = ikl(env, "--severity", "HIGH,CRITICAL")
    assert out.returncode == 0, out.stdout + out.stderr
    assert all("skipped (exists)" in row(out, inc["name"]) for inc in (high, crit))
    assert await bk.mongo.postmortems.count_documents({}) == 2

    # --force re-drafts (a person's section too); a published one fails, the others go on, exit code 1
    pm_high, pm_crit = pms[high["_id"]], pms[crit["_id"]]
    await bk.mongo.postmortems.update_one({"_id": pm_high["_id"]}, {"$set": {
        "executive_summary": "Written by a person", "auto_generated_sections": ["timeline"]}})
    await bk.mongo.postmortems.update_one({"_id": pm_crit["_id"]}, {"$set": {"status": "PUBLISHED"}})
    out = ikl(env, "--force", "--severity", "HIGH", "--severity", "CRITICAL")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "re-drafted" in row(out, high["name"])
    assert "failed" in row(out, crit["name"]) and "POSTMORTEM_CLOSED" in row(out, crit["name"])
    got = await bk.mongo.postmortems.find_one({"_id": pm_high["_id"]})
    assert got["executive_summary"] != "Written by a person" and "executive_summary" in got["auto_generated_sections"]
    assert await bk.mongo.postmortems.count_documents({}) == 2


def test_unknown_severity_is_refused(stack):
    out = ikl({}, "--severity", "HIGH,URGENT", "--dry-run")
    assert out.returncode == 2 and "unknown severity 'URGENT'" in out.stderr


async def test_manage_py_runs_the_same_commands_from_any_python(own):
    """`python3 manage.py generate_postmortems ...` with the system interpreter (no dependencies of
    its own) runs the command in the project's .venv."""
    from pathlib import Path

    bk, env = own
    system_python = Path(sys.base_prefix) / "bin" / "python3"
    out = subprocess.run([str(system_python), "manage.py", "generate_postmortems", "--dry-run", "--days", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "250", **env})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 incidents: nothing to do" in out.stdout


async def test_duplicates_are_skipped_names_are_never_cut_and_counts_read_right(own, tokens):
    bk, env = own
    user = tokens["admin_user"]
    now = utcnow()
    canonical = await make(bk, user, "Checkout database outage", resolved_at=now - timedelta(days=1))
    twin = await make(bk, user, "Checkout database outage again", resolved_at=now - timedelta(hours=2))
    await bk.mongo.incidents.update_one({"_id": twin["_id"]}, {"$set": {"status": "CLOSED",
                                                                        "duplicate_of": canonical["_id"]}})
    # a terminal 60 columns wide: the other columns wrap, the incident names stay whole
    narrow = ikl({**env, "COLUMNS": "60"}, "--dry-run")
    assert narrow.returncode == 0, narrow.stdout + narrow.stderr
    assert row(narrow, canonical["name"]) and row(narrow, twin["name"])
    out = ikl(env, "--dry-run")

    def first_cell(name: str) -> str:
        return next(line for line in out.stdout.splitlines() if line.startswith(f"│ {name} "))

    assert "would create" in first_cell(canonical["name"])
    assert "skipped (duplicate)" in first_cell(twin["name"])
    assert f"duplicate of {canonical['name']}" in first_cell(twin["name"])
    assert "2 incidents:" in out.stdout
    out = ikl(env, "--dry-run", "--days", "0")
    assert "0 incidents: nothing to do" in out.stdout
    await bk.mongo.incidents.delete_one({"_id": twin["_id"]})
    out = ikl(env)
    assert out.returncode == 0 and "1 incident: 1 created" in out.stdout, out.stdout
    assert await bk.mongo.postmortems.count_documents({"incident": twin["_id"]}) == 0
