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
    assert again.returncode == 1 and "already exists" in again.stderr
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


SERVER_VARS = {f"{p}{v}" for p in ("", "IKL_") for v in ("MONGODB_URL", "OPENSEARCH_URL", "BROKER_URL")}


def ikl_env(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`ikl` in a shell that names no server unless `env` does."""
    base = {k: v for k, v in os.environ.items() if k.upper() not in SERVER_VARS}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(ROOT), **env}, timeout=120)


async def test_a_command_finds_the_running_stack_through_its_stack_file(bk, stack, tmp_path):
    from app import discovery

    path = tmp_path / "stack.json"  # as `dev.py run` writes it; this process plays the devserver
    discovery.write(path, urls={"mongodb_url": stack.mongodb_url, "opensearch_url": stack.opensearch_url,
                                "broker_url": stack.broker_url}, api_url="http://127.0.0.1:1", local=[], pids={})
    name = f"alice-{uuid.uuid4().hex[:6]}"
    out = ikl_env("create_user", name, "--role", "editor", IKL_STACK_FILE=str(path))
    assert out.returncode == 0, out.stderr
    assert (await bk.mongo.users.find_one({"username": name}))["role"] == "editor"


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "Traceback" not in out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_a_command_that_cannot_reach_mongodb_says_so_in_one_line(stack, tmp_path):
    from app.stack import free_port

    url = f"mongodb://ops:secret@127.0.0.1:{free_port()}/?directConnection=true"  # nothing listens there
    out = ikl_env("create_user", "nobody", MONGODB_URL=url, IKL_MONGODB_TIMEOUT_MS="500",
                  IKL_STACK_FILE=str(tmp_path / "none.json"))
    assert one_line_error(out) == (f"error: cannot reach MongoDB at {url.replace(':secret@', ':***@')} "
                                   f"(set by MONGODB_URL)")


def test_a_command_that_cannot_reach_the_search_server_says_so_in_one_line(stack):
    from app.stack import free_port

    url = f"http://127.0.0.1:{free_port()}"
    out = ikl_env("reindex", "all", MONGODB_URL=stack.mongodb_url, OPENSEARCH_URL=url, BROKER_URL=stack.broker_url)
    assert one_line_error(out) == f"error: cannot reach the search server at {url} (set by OPENSEARCH_URL)"
    assert "reindex" not in out.stdout  # it stopped before touching anything


def test_devserver_that_cannot_reach_the_broker_says_so_in_one_line(stack, tmp_path):
    from app.stack import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    out = ikl_env("devserver", "--no-seed", "--port", str(free_port()), "--data-dir", str(tmp_path),
                  MONGODB_URL=stack.mongodb_url, OPENSEARCH_URL=stack.opensearch_url, BROKER_URL=url)
    assert one_line_error(out) == f"error: cannot reach the broker (Valkey) at {url} (set by BROKER_URL)"
    assert not (tmp_path / "stack.json").exists()
