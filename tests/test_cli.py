"""Management commands, run as an operator would: a real process against the test stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from tests.conftest import ROOT


def ikl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


async def test_create_user_prints_a_working_token(client, stack):
    name = f"ops-{uuid.uuid4().hex[:6]}"
    out = ikl("create_user", name, "--role", "editor", "--clearance", "CONFIDENTIAL", "--team", "sre")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert len(token) == 40
    r = await client.post("/api/v1/incidents/", headers={"Authorization": f"Token {token}"}, json={"title": "via cli"})
    assert r.status_code == 201 and r.json()["reporter"] == name
    again = ikl("create_user", name)
    assert again.returncode == 1 and "already exists" in again.stdout
    second = ikl("create_token", name)
    assert second.returncode == 0 and second.stdout.strip() != token


async def test_reindex_and_drain_outbox_commands(client, editor, bk, stack):
    from indexers import registry
    from indexers.base import alias_targets

    before = {name: await alias_targets(bk, d) for name, d in registry().items()}
    out = ikl("reindex", "all")
    assert out.returncode == 0, out.stderr
    assert "incidents:" in out.stdout and "articles:" in out.stdout
    for name, d in registry().items():
        after = await alias_targets(bk, d)
        assert len(after) == 1 and after != before[name]
    assert ikl("reindex", "nope").returncode == 2
    out = ikl("drain_outbox")
    assert out.returncode == 0 and "pending 0" in out.stdout
