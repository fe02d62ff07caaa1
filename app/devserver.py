"""The local development server (`dev.py run`, the `ikl devserver` command): start the local stack,
seed demo data, run the API and a worker under a Supervisor, publish the URLs in the stack file and
print them with a token; Ctrl-C, TERM or HUP stops everything. The command's options live in app/cli.py."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from app.cli import ROOT, _fail, _run, _seed, console
from app.settings import get_settings
from app.users.models import Classification, Role, UserCreate


def serve(port: int, data_dir: Path, seed: bool) -> None:
    """Run the development server until it is interrupted (see the `devserver` command)."""
    from app import discovery
    from app.stack import LocalStack, Supervisor

    data_dir = data_dir.resolve()
    stack_file = data_dir / discovery.FILE_NAME
    if (running := discovery.read(stack_file)) is not None:
        _fail(f"error: a local stack is already running from {data_dir} (devserver pid {running['pid']}, "
              f"API {running.get('api_url')}); stop it first, or use another --data-dir")
    # The API's socket is bound here, first, and handed to every API process the Supervisor starts: the
    # port announced is the real one (`--port 0` picks a free one) and a restarted API keeps it.
    listener = _listen(port)
    stack = LocalStack(root=data_dir)
    api_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    local: list[str] = []

    def publish() -> None:
        s = get_settings()
        discovery.write(stack_file, urls={f: getattr(s, f) for f in discovery.SERVERS}, api_url=api_url,
                        local=local, pids={"devserver": os.getpid(), **sup.pids()})

    sup = Supervisor(log=_log_line)

    def start_search():
        proc = stack.start_search()
        if "osmem" in sup.children:  # a restart: the new server is empty until the indices are rebuilt
            _rebuild_search_indices()
        return proc

    # Ctrl-C, TERM and HUP (the terminal closed) stop everything, even when started from a shell that
    # ignores SIGINT (a `&` job). The children run in their own sessions: only this process stops them.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        for name, var, label, start, url in (
                ("mongod", "MONGODB_URL", "MongoDB (replica set)", stack.start_mongo, lambda: stack.mongodb_url),
                ("valkey", "BROKER_URL", "Valkey", stack.start_valkey, lambda: stack.broker_url),
                ("osmem", "OPENSEARCH_URL", "the OpenSearch-compatible server (osmem)", start_search,
                 lambda: stack.opensearch_url)):
            if discovery.env_var(var) is None:
                console.print(f"starting {label} ...")
                try:
                    sup.add(name, start)
                except RuntimeError as exc:  # it exited or never got ready
                    _fail(f"error: {exc} (see {data_dir / 'logs' / (name + '.log')})")
                os.environ[var] = url()
                local.append(name)
        get_settings.cache_clear()
        publish()
        sup.on_start = publish  # pids change with every restart

        async def prepare(bk):
            from app.main import prepare as prepare_backends
            from app.users import service

            if seed:
                await _seed(bk, None)
            await prepare_backends(bk)  # rebuilds indices missing from the search server
            admin = await service.ensure_user(bk, data=UserCreate(username="admin", role=Role.ADMIN,
                                                                  clearance=Classification.RESTRICTED))
            return await service.issue_token(bk, user=admin)

        token = _run(prepare, needs=("mongodb", "search", "broker"))
        # X-Forwarded-For is believed from nobody unless the operator names a proxy (see docs/architecture.md, security).
        env = {"FORWARDED_ALLOW_IPS": "", **os.environ, "PYTHONPATH": str(ROOT)}
        sup.add("worker", lambda: _child([sys.executable, "-m", "dramatiq", "app.worker", "--processes", "1",
                                          "--threads", "4"], env))
        sup.add("api", lambda: _child([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                                       "--fd", str(listener.fileno()), "--loop", "uvloop", "--http",
                                       "httptools", "--no-access-log"], env, pass_fds=(listener.fileno(),)))
        if not _wait_for_api(sup, api_url):
            console.print(f"[yellow]the API did not answer {api_url}/healthz within 60 s; still trying[/yellow]")
        _banner(api_url, token, local, data_dir, stack_file)
        while True:
            sup.poll()
            time.sleep(0.25)
    except KeyboardInterrupt:
        _ignore_signals()  # before anything else: the terminal's copy of a forwarded Ctrl-C comes right after
        console.print("\nstopping ...")
    finally:
        # A second Ctrl-C (or the terminal's copy of a forwarded one) must not cut the clean-up short.
        _ignore_signals()
        discovery.remove(stack_file)
        sup.stop(["api", "worker"])
        sup.stop()
        stack.stop()
        listener.close()


def _listen(port: int) -> socket.socket:
    """The API's listening socket on 127.0.0.1:`port` (0: a free port), or a clear error if it is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        _fail(f"error: port {port} is taken; choose another with --port")
    sock.listen(2048)
    return sock


def _child(args: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """The API or the worker: output to this terminal, in a session of its own (see Supervisor)."""
    return subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                            pass_fds=pass_fds)


def _rebuild_search_indices() -> None:
    """After the local search server came back empty: rebuild its indices from MongoDB now."""
    from app.backends import connect
    from app.main import prepare

    async def rebuild():
        bk = connect(get_settings(), jobs=True)
        try:
            await prepare(bk)
        finally:
            await bk.close()

    try:
        asyncio.run(rebuild())
        _log_line("search indices rebuilt from MongoDB")
    except Exception as exc:  # noqa: BLE001 - index sync rebuilds them on the next write
        _log_line(f"search indices not rebuilt ({' '.join(str(exc).split())[:200]})")


def _wait_for_api(sup, api_url: str, timeout: float = 60.0) -> bool:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sup.poll()
        try:
            with urllib.request.urlopen(f"{api_url}/healthz", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _banner(api_url: str, token: str, local: list[str], data_dir: Path, stack_file: Path) -> None:
    from app.discovery import redact
    from app.discovery import stack_file as default_stack_file

    s = get_settings()
    where = {"mongod": f"local, data in {data_dir / 'mongo'}", "valkey": "local Valkey",
             "osmem": "local osmem, in memory"}
    given = {"mongod": "MONGODB_URL", "valkey": "BROKER_URL", "osmem": "OPENSEARCH_URL"}
    where.update({name: f"set by {var}" for name, var in given.items() if name not in local})
    lines = [
        ("API", f"{api_url}   (health: {api_url}/healthz)"),
        ("GraphiQL", f"{api_url}/graphql"),
        ("REST", f"{api_url}/api/v1/incidents/  {api_url}/api/knowledge/knowledge-articles/"),
        ("Token", f"{token}   (header  Authorization: Token {token})"),
        ("MongoDB", f"{redact(s.mongodb_url)}   ({where['mongod']})"),
        ("Search", f"{redact(s.opensearch_url)}   ({where['osmem']})"),
        ("Broker", f"{redact(s.broker_url)}   ({where['valkey']})"),
    ]
    console.print()
    for label, value in lines:
        console.print(f"[bold]{label + ':':<10}[/bold]{value}", highlight=False, soft_wrap=True)
    if stack_file == default_stack_file().resolve():
        found = f"These URLs are in {stack_file}: `ikl <command>` in another terminal uses them."
    else:
        found = f"These URLs are in {stack_file}: `export IKL_STACK_FILE={stack_file}` for `ikl` to use them."
    console.print(f"\n{found}\nA worker, API or local server that exits is restarted. Ctrl-C stops everything.\n",
                  highlight=False, soft_wrap=True)
    from app.demo import fallback_note

    if note := fallback_note():  # seeded from the built-in rows: say so, and how to get the full demo
        console.print(f"[yellow]{note}[/yellow]\n", highlight=False, soft_wrap=True)


def _log_line(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} devserver: {message}", flush=True)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":  # `ikl devserver` (app/cli.py) becomes this: port, data dir, seed (1 or 0)
    import typer

    try:
        serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1")
    except typer.Exit as exc:  # a one-line failure (app/cli.py `_fail`): its exit code, no traceback
        sys.exit(exc.exit_code)
