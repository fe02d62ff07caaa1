"""The whole suite runs against a real local stack (MongoDB replica set, Valkey, osmem) started once
on free ports in a temporary folder, and stopped afterwards."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from app.stack import LocalStack
from app import domains  # noqa: F401,E402 - every domain's hooks and job handlers, as in the entry points

ROOT = Path(__file__).resolve().parent.parent
OIDC_ISSUER, OIDC_AUDIENCE = "https://sso.test.invalid", "ikl-test"  # the suite's SSO provider


def _terminated(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    # a TERM (a CI job's timeout, `timeout`, dev.py passing one on) unwinds the run as Ctrl-C does, so the session's
    # stack is stopped: by default Python dies at once, and MongoDB and Valkey were left running
    signal.signal(signal.SIGTERM, _terminated)


HUNG_AFTER = 300.0  # seconds: the slowest test takes about 65 (`--durations`); one past this is hung: the run stops
_LOOP: list = []  # the session's event loop, once started


@pytest.fixture(scope="session", autouse=True)
async def _session_loop():
    import asyncio

    _LOOP.append(asyncio.get_running_loop())
    yield
    _LOOP.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item):
    """A test still running after HUNG_AFTER seconds (setup and teardown included) is hung: the run prints where
    every thread and every task of the event loop is, then stops as a TERM stops it (its stack is cleaned up).
    Without this a hang lasts until the CI job's own limit, and says nothing of where it was."""
    watchdog = threading.Timer(HUNG_AFTER, _hung, (item,))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


def _hung(item) -> None:
    import asyncio
    import io
    import traceback

    out = io.StringIO()
    print(f"\n{item.nodeid} still running after {HUNG_AFTER:.0f} s: it is hung. Threads:", file=out)
    for ident, frame in sys._current_frames().items():
        print(f"--- thread {ident}", file=out)
        traceback.print_stack(frame, file=out)
    for loop in _LOOP:
        for task in list(asyncio.all_tasks(loop)):
            print(f"--- task {task.get_name()}", file=out)
            awaiting = task.get_coro()
            while awaiting is not None:  # the whole chain of awaits, not only the task's own coroutine
                if (frame := getattr(awaiting, "cr_frame", None) or getattr(awaiting, "gi_frame", None)) is not None:
                    code = frame.f_code
                    print(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}", file=out)
                awaiting = getattr(awaiting, "cr_await", None) or getattr(awaiting, "gi_yieldfrom", None)
    plugins = item.config.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():  # to the run's output, as pdb writes
        plugins.get_plugin("terminalreporter").write(out.getvalue(), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="session")
def stack():
    root = Path(tempfile.mkdtemp(prefix="ikl-test-"))
    s = LocalStack(root=root).start()
    os.environ.update(s.env())
    os.environ.update({"IKL_MONGODB_DB": "ikl_test", "IKL_INDEX_PREFIX": "test", "IKL_OUTBOX_SWEEP_INTERVAL": "0.5",
                       "IKL_OUTBOX_MAX_BACKOFF": "1", "IKL_ENVIRONMENT": "test", "IKL_LOG_LEVEL": "WARNING",
                       # the suite makes thousands of requests per user; tests/test_ratelimit.py lowers these
                       "IKL_RATE_LIMIT_READ": "1000000", "IKL_RATE_LIMIT_WRITE": "1000000",
                       "IKL_RATE_LIMIT_SEARCH": "1000000",
                       # webhooks may reach the test receivers on this machine (tests/test_webhooks.py), and
                       # retry fast
                       "IKL_WEBHOOK_ALLOW_LOOPBACK": "true", "IKL_WEBHOOK_FIRST_RETRY_SECONDS": "1",
                       "IKL_WEBHOOK_SWEEP_SECONDS": "0.2",
                       # an SSO provider whose keys tests/test_auth_sso.py writes to this file
                       "IKL_OIDC_PROVIDERS": json.dumps([{"name": "test-sso", "issuer": OIDC_ISSUER,
                                                          "audience": OIDC_AUDIENCE,
                                                          "jwks_file": str(root / "oidc_jwks.json")}])})
    from app.settings import get_settings

    get_settings.cache_clear()
    yield s
    s.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def app(stack):
    from app.main import create_app

    application = create_app()
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def bk(app):
    return app.state.backends


_CONTRACTS: list = []


@pytest.fixture(scope="session")
def contract(app):
    """The published OpenAPI document, as a checker of responses (tests/contract.py)."""
    from app.http import openapi
    from app.main import RESOURCES
    from app.settings import get_settings
    from tests.contract import Contract

    _CONTRACTS.append(Contract(openapi.build(RESOURCES, get_settings())))
    return _CONTRACTS[-1]


def pytest_terminal_summary(terminalreporter):
    """How much of the document the run's responses covered: operations with a checked success."""
    for contract in _CONTRACTS:
        missing, total = contract.coverage()
        terminalreporter.write_line(f"contract: {total - len(missing)} of {total} operations answered a checked 2xx"
                                    + (f"; none for {', '.join(missing[:8])}" if missing else ""))


@pytest.fixture(scope="session")
async def client(app, contract):
    """The API in process. Every REST response it receives must keep the published contract: a status the
    operation does not document, or a body its schema refuses, fails the test that received it."""

    async def keeps_the_contract(response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return  # a stream: its events are checked by its own tests
        await response.aread()
        problems = contract.violations(response.request.method, response.request.url.path, response.status_code,
                                       response.headers.get("content-type", ""), response.content)
        if problems:
            raise AssertionError("the response breaks the published contract (GET /openapi.json):\n  "
                                 + "\n  ".join(problems))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://testserver", event_hooks={"response": [keeps_the_contract]}) as c:
        yield c


@pytest.fixture(scope="session")
async def tokens(bk):
    """A token for each role (admin has RESTRICTED clearance, viewer INTERNAL)."""
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user, issue_token

    out = {}
    for role, clearance in ((Role.ADMIN, Classification.RESTRICTED), (Role.EDITOR, Classification.CONFIDENTIAL),
                            (Role.VIEWER, Classification.INTERNAL)):
        user = await create_user(bk, data=UserCreate(username=f"{role.value}-{uuid.uuid4().hex[:6]}", role=role,
                                                     clearance=clearance))
        out[role.value] = {"Authorization": f"Token {await issue_token(bk, user=user)}"}
        out[role.value + "_user"] = user
    return out


@pytest.fixture(scope="session")
def admin(tokens):
    return tokens["admin"]


@pytest.fixture(scope="session")
def editor(tokens):
    return tokens["editor"]


@pytest.fixture(scope="session")
def viewer(tokens):
    return tokens["viewer"]


@pytest.fixture(scope="session")
def worker(stack):
    """A real Dramatiq worker process consuming from the test broker."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(stack.root / "logs" / "worker.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "app.workerproc", "--processes", "1", "--threads", "2"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1.5)
    assert proc.poll() is None, (stack.root / "logs" / "worker.log").read_text()[-2000:]
    yield proc
    stop(proc, signal.SIGTERM, timeout=15)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Ask a process to stop with `sig`; killed when it has not within `timeout` seconds (and reaped)."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# The TEST-NET addresses, each handed out once in a session (then round again, long after a minute's count of
# failures has expired): drawn at random, two tests failing authentication in the same minute from the same
# address shared its failed-authentication count, and the stricter one's first request was a 429.
_ADDRESSES = itertools.cycle([f"{net}.{host}" for net in ("203.0.113", "198.51.100", "192.0.2")
                              for host in range(1, 255)])


def fresh_address() -> str:
    """An address no other client of this test session is using (the failed-authentication limit counts per
    address)."""
    return next(_ADDRESSES)


async def eventually(check, timeout: float = 15.0, interval: float = 0.2):
    """Poll an async check until it returns something truthy."""
    import asyncio

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


@contextlib.asynccontextmanager
async def serve_api(stack, **env: str):
    """The API served by a real uvicorn process on a free port, with `env` added; yields its base URL."""
    import asyncio

    from app.stack import free_port

    port = free_port()
    log = open(stack.root / "logs" / f"api-{port}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port),
                             "--log-level", "warning"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"{base}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (stack.root / "logs" / f"api-{port}.log").read_text()[-2000:]
                await asyncio.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
async def live_api(stack):
    """The API in a real server (for streams: SSE, WebSockets), keep-alives every second; its base URL."""
    async with serve_api(stack, IKL_LIVE_KEEPALIVE_SECONDS="1") as base:
        yield base
