"""What every benchmark needs: a throw-away local stack and the API under uvicorn (one worker,
uvloop, httptools), started and stopped around the run; `processes` runs several API processes and
Dramatiq workers on that stack, as `dev.py run --api-processes N --workers M` does (the same commands)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.devserver import api_command, shared_metrics, worker_command  # noqa: E402
from app.stack import LocalStack, free_port  # noqa: E402


@contextlib.contextmanager
def local_stack(db_name: str, **settings: str) -> Iterator[LocalStack]:
    """A stack in a temporary folder; its URLs and `settings` (IKL_* values) go into os.environ."""
    root = Path(tempfile.mkdtemp(prefix="ikl-bench-"))
    stack = LocalStack(root=root).start()
    os.environ.update(stack.env())
    os.environ.update({"IKL_MONGODB_DB": db_name, "IKL_ENVIRONMENT": "production", "IKL_LOG_LEVEL": "WARNING",
                       **settings})
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def api_server(ready_timeout: float = 60) -> Iterator[str]:
    """The API in its own process; yields its base URL once /readyz answers (at most `ready_timeout`
    seconds: a start over a large database builds its indexes and search index first)."""
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port),
                            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
                           cwd=ROOT, env={"FORWARDED_ALLOW_IPS": "", **os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, api, time.time() + ready_timeout)
        yield base
    finally:
        api.terminate()
        api.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = 100.0  # os.sysconf("SC_CLK_TCK") on Linux
    return (int(fields[11]) + int(fields[12])) / ticks


def api_pid(port: int) -> int:
    """The process of the API `api_server` started on `port`."""
    out = subprocess.run(["pgrep", "-f", f"uvicorn app.main:create_app.*--port {port}"], capture_output=True,
                         text=True).stdout.split()
    return int(out[0])


@dataclass
class Processes:
    """What `processes` started: `url` is the port every API process accepts on (the kernel spreads new
    connections over them), `urls[i]` reaches API process i alone (with one process, the same as `url`)."""

    url: str
    urls: list[str]
    api: list[subprocess.Popen] = field(default_factory=list)
    workers: list[subprocess.Popen] = field(default_factory=list)


def wait_ready(base: str, proc: subprocess.Popen, deadline: float, path: str = "/readyz") -> None:
    """Until `base + path` answers; a RuntimeError once `deadline` (epoch seconds) passes or `proc` has exited."""
    while True:
        try:
            urllib.request.urlopen(f"{base}{path}", timeout=1).close()
            return
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the process serving {base} did not become ready") from None
            time.sleep(0.2)


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


def _stop(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()  # dramatiq's main process stops its worker process itself
    deadline = time.time() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group (each leads its own)
        proc.wait()


@contextlib.contextmanager
def processes(api: int = 1, workers: int = 0, *, threads: int = 4, ready_timeout: float = 120,
              log_dir: Path | None = None, log_level: str = "warning") -> Iterator[Processes]:
    """`api` API processes (app/devserver.py `api_command`: uvicorn, uvloop, httptools) sharing one listening
    socket, each also on a port of its own when there are several, and `workers` Dramatiq workers
    (`worker_command`, `threads` threads each), on the stack os.environ names; stopped on exit. The first API
    process starts alone (it builds missing indexes and search indices), the others once it is ready.
    Output goes to `log_dir` (api-1.log, worker-1.log, ...) when given, else to this terminal. Several API
    processes share their request figures (`shared_metrics`, in a temporary folder): /metrics from any of
    them counts all of them, as under `dev.py run --api-processes N`."""
    metrics = Path(tempfile.mkdtemp(prefix="ikl-bench-metrics-"))
    env = {"FORWARDED_ALLOW_IPS": "", **os.environ, "PYTHONPATH": str(ROOT), **shared_metrics(metrics, api)}
    shared = _listen()
    own = [_listen() for _ in range(api)] if api > 1 else []
    url = f"http://127.0.0.1:{shared.getsockname()[1]}"
    out = Processes(url=url, urls=[f"http://127.0.0.1:{s.getsockname()[1]}" for s in own] or [url])
    logs: list = []

    def spawn(args: list[str], name: str, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
        target = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            target = open(log_dir / f"{name}.log", "ab")
            logs.append(target)
        return subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=target,
                                stderr=subprocess.STDOUT if target else None, pass_fds=pass_fds,
                                start_new_session=True)

    try:
        deadline = time.time() + ready_timeout
        for i in range(api):
            fds = (shared.fileno(), *([own[i].fileno()] if own else []))
            out.api.append(spawn(api_command(fds, log_level=log_level), f"api-{i + 1}", fds))
            if i == 0:
                wait_ready(out.urls[0], out.api[0], deadline)
        for i, base in enumerate(out.urls):
            wait_ready(base, out.api[i], deadline)
        for i in range(workers):
            out.workers.append(spawn(worker_command(threads), f"worker-{i + 1}"))
        yield out
    finally:
        _stop(out.api + out.workers)
        for sock in (shared, *own):
            sock.close()
        for f in logs:
            f.close()
        shutil.rmtree(metrics, ignore_errors=True)
