"""`dev.py run` (the `devserver` command): it keeps its children running and publishes where its
stack listens. Real processes: a devserver with its own servers in a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from app import discovery
from app.stack import Backoff
from tests.conftest import ROOT, stop

SERVER_VARS = {f"{p}{v}" for p in ("", "IKL_") for v in ("MONGODB_URL", "OPENSEARCH_URL", "BROKER_URL")}


def env_without_servers(**extra: str) -> dict[str, str]:
    """The test process's environment with no server named: what an operator's shell looks like."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SERVER_VARS and k != "IKL_STACK_FILE"}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def wait_for(check, what: str, timeout: float = 60.0, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"{what} not within {timeout:.0f}s\n{tail}")


def alive(pid: int) -> bool:
    return discovery.process_identity(pid) is not None


def group_members(pgid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            out.append(int(stat.parent.name))
    return out


def healthz(api_url: str) -> int:
    with urllib.request.urlopen(f"{api_url}/healthz", timeout=2) as r:
        return r.status


def test_backoff_doubles_to_30s_and_starts_over_after_a_stable_run():
    b = Backoff(first=1.0, cap=30.0, stable=30.0)
    assert [b.after_exit(2.0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert b.after_exit(45.0) == 1  # it had stayed up: start over
    assert b.after_exit(0.5) == 2


def test_a_stack_file_counts_only_while_its_devserver_lives(tmp_path, monkeypatch):
    path = tmp_path / "stack.json"
    urls = {"mongodb_url": "mongodb://127.0.0.1:1/", "opensearch_url": "http://127.0.0.1:2",
            "broker_url": "redis://127.0.0.1:3/0"}
    discovery.write(path, urls=urls, api_url="http://127.0.0.1:4", local=["mongod"], pids={})
    assert discovery.read(path)["mongodb_url"] == urls["mongodb_url"]  # this process wrote it and lives

    doc = json.loads(path.read_text())
    gone = subprocess.Popen(["true"])
    gone.wait()
    path.write_text(json.dumps({**doc, "pid": gone.pid}))
    assert discovery.read(path) is None  # its process is gone
    path.write_text(json.dumps({**doc, "pid_identity": "1"}))
    assert discovery.read(path) is None  # the pid now belongs to another process
    path.write_text("{not json")
    assert discovery.read(path) is None

    discovery.write(path, urls=urls, api_url="http://127.0.0.1:4", local=[], pids={})
    monkeypatch.setenv("IKL_STACK_FILE", str(path))
    for var in SERVER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("broker_url", "redis://elsewhere:6379/0")  # the environment wins, in any case
    assert discovery.settings_overrides() == {"MONGODB_URL": urls["mongodb_url"],
                                              "OPENSEARCH_URL": urls["opensearch_url"]}
    discovery.remove(path)
    assert not path.exists() and discovery.settings_overrides() == {}


def test_devserver_restarts_what_exits_and_stops_everything(tmp_path):
    """Started with `--port 0`: the port it announces is the one the API listens on, and it keeps it."""
    data = tmp_path / "data"
    log = tmp_path / "devserver.log"
    with open(log, "wb") as out:
        dev = subprocess.Popen([sys.executable, "-m", "app.cli", "devserver", "--port", "0", "--no-seed",
                                "--data-dir", str(data)], cwd=ROOT, env=env_without_servers(),
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stack_file = data / "stack.json"
    try:
        doc = wait_for(lambda: "api" in (d := json.loads(stack_file.read_text()))["pids"] and d,
                       "the stack file", timeout=120, log=log)
        api = doc["api_url"]
        assert api.startswith("http://127.0.0.1:") and int(api.rsplit(":", 1)[1]) > 0
        assert doc["local"] == ["mongod", "valkey", "osmem"]
        assert doc["pids"]["devserver"] == dev.pid
        wait_for(lambda: healthz(api) == 200, "the API", log=log)
        banner = wait_for(lambda: "Ctrl-C stops everything" in (t := log.read_text()) and t, "the banner", log=log)
        for url in (doc["mongodb_url"], doc["opensearch_url"], doc["broker_url"], api):
            assert url in banner
        seen = {pid for pid in doc["pids"].values()}

        # The worker dies: the API keeps serving, the worker comes back, nothing of the old one is left.
        old_worker = doc["pids"]["worker"]
        old_group = group_members(old_worker)
        assert len(old_group) >= 2  # dramatiq's main process and its worker process
        os.kill(old_worker, signal.SIGKILL)
        assert healthz(api) == 200

        # Meanwhile an operator's command finds the stack through the file alone.
        name = f"ops-{uuid.uuid4().hex[:6]}"
        out = subprocess.run([sys.executable, "-m", "app.cli", "create_user", name, "--role", "editor"], cwd=ROOT,
                             env=env_without_servers(IKL_STACK_FILE=str(stack_file)), capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        from pymongo import MongoClient

        with MongoClient(doc["mongodb_url"], serverSelectionTimeoutMS=5000) as mc:
            db = mc[os.environ.get("IKL_MONGODB_DB", "incident_knowledge")]
            assert db.users.find_one({"username": name})["role"] == "editor"

        doc = wait_for(lambda: (d := json.loads(stack_file.read_text()))["pids"]["worker"] != old_worker and d,
                       "a new worker", timeout=30, log=log)
        assert alive(doc["pids"]["worker"])
        wait_for(lambda: not any(alive(p) for p in old_group), "the old worker's processes to go", log=log)
        assert f"worker (pid {old_worker}) was killed by SIGKILL" in log.read_text()

        # The API dies: it comes back on the same port.
        old_api = doc["pids"]["api"]
        os.kill(old_api, signal.SIGKILL)
        doc = wait_for(lambda: (d := json.loads(stack_file.read_text()))["pids"]["api"] != old_api and d,
                       "a new API", timeout=30, log=log)
        wait_for(lambda: healthz(api) == 200, "the API back", timeout=30, log=log)
        assert json.loads(stack_file.read_text())["api_url"] == api

        # The search server dies: it comes back on the same port, its indices rebuilt from MongoDB.
        old_search = doc["pids"]["osmem"]
        os.kill(old_search, signal.SIGKILL)
        doc = wait_for(lambda: (d := json.loads(stack_file.read_text()))["pids"]["osmem"] != old_search and d,
                       "a new search server", timeout=30, log=log)
        prefix = os.environ.get("IKL_INDEX_PREFIX", "ikl")
        for index in ("incidents", "articles"):
            urllib.request.urlopen(f"{doc['opensearch_url']}/_alias/{prefix}-{index}", timeout=5).close()
        seen |= set(doc["pids"].values()) | set(group_members(doc["pids"]["worker"]))
        assert "search indices rebuilt from MongoDB" in log.read_text()

        # TERM stops everything, and the stack file goes with it.
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert not stack_file.exists()
        assert [p for p in seen | set(old_group) if alive(p)] == []
    finally:
        if dev.poll() is None:  # a failed test still stops the stack it started
            stop(dev, signal.SIGTERM, timeout=60)


def test_a_second_devserver_on_the_same_data_refuses_to_start(tmp_path):
    path = tmp_path / "stack.json"
    urls = {"mongodb_url": "mongodb://127.0.0.1:1/", "opensearch_url": "http://127.0.0.1:2",
            "broker_url": "redis://127.0.0.1:3/0"}
    discovery.write(path, urls=urls, api_url="http://127.0.0.1:4", local=[], pids={})  # "running": we live
    out = subprocess.run([sys.executable, "-m", "app.cli", "devserver", "--data-dir", str(tmp_path)], cwd=ROOT,
                         env=env_without_servers(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: a local stack is already running from {tmp_path} (devserver pid {os.getpid()}, "
        f"API http://127.0.0.1:4); stop it first, or use another --data-dir"]
