"""The local development server (`dev.py run`, the `ikl devserver` command): start the local stack,
seed demo data, run the API and a worker under a Supervisor, publish the URLs in the stack file and
print them with a token; Ctrl-C, TERM or HUP stops everything. The command's options live in app/cli.py;
`dev.py run --api-processes N --workers M` sets how many API and worker processes it runs (passed here as
IKL_DEV_API_PROCESSES and IKL_DEV_WORKERS; default 1 and 1).

Several API processes share the one listening socket this process binds (as `uvicorn --workers` does: the
kernel hands each new connection to one of them), so the announced URL is the same for any N. With N > 1
each API process also listens on a port of its own ("API 1:", "API 2:" in the banner): a test or a bench
that must reach one process in particular uses it. `python -m app.devserver --api FD [FD ...]` is the
API process itself (uvicorn with uvloop and httptools, serving every socket it was handed); the bench
harness (bench/harness.py) starts the same commands (`api_command`, `worker_command`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from app.cli import ROOT, _fail, _run, _seed, console
from app.settings import get_settings
from app.users.models import Classification, Role, UserCreate


API_PROCESSES_VAR, WORKERS_VAR = "IKL_DEV_API_PROCESSES", "IKL_DEV_WORKERS"
MAX_PROCESSES = 32
WORKER_THREADS = 4


def process_counts(environ: dict[str, str] | None = None) -> tuple[int, int]:
    """(API processes, workers) asked for through IKL_DEV_API_PROCESSES / IKL_DEV_WORKERS (default 1, 1);
    a value that is not a number in range is a one-line error."""
    environ = os.environ if environ is None else environ
    counts = []
    for var, least in ((API_PROCESSES_VAR, 1), (WORKERS_VAR, 0)):
        raw = environ.get(var, "").strip() or "1"
        if not (raw.isascii() and raw.isdigit()) or not least <= int(raw) <= MAX_PROCESSES:
            _fail(f"error: {var}={raw!r}: a whole number from {least} to {MAX_PROCESSES} is needed")
        counts.append(int(raw))
    return counts[0], counts[1]


def child_name(kind: str, i: int) -> str:
    """The Supervisor's (and stack.json's) name of the i-th (0-based) API or worker: api, api-2, ..."""
    return kind if i == 0 else f"{kind}-{i + 1}"


def api_command(fds: tuple[int, ...] | list[int], *, log_level: str | None = None) -> list[str]:
    """The command of one API process serving the listening sockets `fds` (inherited: pass_fds)."""
    return [sys.executable, "-m", "app.devserver", "--api", *map(str, fds),
            *(["--log-level", log_level] if log_level else [])]


def worker_command(threads: int = WORKER_THREADS) -> list[str]:
    """The command of one worker: Dramatiq's supervisor (JSON logs: app/workerproc.py) with its one worker
    process of `threads` threads."""
    return [sys.executable, "-m", "app.workerproc", "--processes", "1", "--threads", str(threads)]


def serve_api(fds: list[int], log_level: str | None = None) -> None:
    """Be one API process: uvicorn (uvloop, httptools, no access log) on the inherited sockets `fds`."""
    import uvicorn

    config = uvicorn.Config("app.main:create_app", factory=True, loop="uvloop", http="httptools", access_log=False,
                            log_level=log_level)
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd) for fd in fds])


def shared_metrics(data_dir: Path, api_processes: int) -> dict[str, str]:
    """With several API processes, a folder (emptied now) where each writes its request figures, so that
    /metrics from any of them adds up all of them (app/http/observability.py)."""
    if api_processes < 2:
        return {}
    folder = data_dir / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return {"PROMETHEUS_MULTIPROC_DIR": str(folder)}


def serve(port: int, data_dir: Path, seed: bool, api_processes: int = 1, workers: int = 1) -> None:
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
    # With several API processes, each also gets a port of its own (free ones), to reach one in particular.
    own = [_listen(0) for _ in range(api_processes)] if api_processes > 1 else []
    stack = LocalStack(root=data_dir)
    api_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    own_urls = [f"http://127.0.0.1:{sock.getsockname()[1]}" for sock in own]
    apis = [child_name("api", i) for i in range(api_processes)]
    workers_named = [child_name("worker", i) for i in range(workers)]
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
        for name in workers_named:
            sup.add(name, lambda: _child(worker_command(), env))
        api_env = {**env, **shared_metrics(data_dir, api_processes)}
        for i, name in enumerate(apis):
            fds = (listener.fileno(), *([own[i].fileno()] if own else []))
            sup.add(name, lambda fds=fds: _child(api_command(fds), api_env, pass_fds=fds))
        for url in (api_url, *own_urls):
            if not _wait_for_api(sup, url):
                console.print(f"[yellow]the API did not answer {url}/healthz within 60 s; still trying[/yellow]")
        _banner(api_url, token, local, data_dir, stack_file, own_urls=own_urls, workers=workers)
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
        sup.stop([*apis, *workers_named])
        sup.stop()
        stack.stop()
        for sock in (listener, *own):
            sock.close()


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


def _banner(api_url: str, token: str, local: list[str], data_dir: Path, stack_file: Path, *,
            own_urls: tuple[str, ...] | list[str] = (), workers: int = 1) -> None:
    from app.discovery import redact
    from app.discovery import stack_file as default_stack_file

    s = get_settings()
    where = {"mongod": f"local, data in {data_dir / 'mongo'}", "valkey": "local Valkey",
             "osmem": "local osmem, in memory"}
    given = {"mongod": "MONGODB_URL", "valkey": "BROKER_URL", "osmem": "OPENSEARCH_URL"}
    where.update({name: f"set by {var}" for name, var in given.items() if name not in local})
    shared = f"; {len(own_urls)} API processes share this port" if own_urls else ""
    lines = [
        ("API", f"{api_url}   (health: {api_url}/healthz{shared})"),
        *((f"API {i}", f"{url}   (API process {i} alone)") for i, url in enumerate(own_urls, 1)),
        ("GraphiQL", f"{api_url}/graphql"),
        ("REST", f"{api_url}/api/v1/incidents/  {api_url}/api/knowledge/knowledge-articles/"),
        ("Token", f"{token}   (header  Authorization: Token {token})"),
        ("MongoDB", f"{redact(s.mongodb_url)}   ({where['mongod']})"),
        ("Search", f"{redact(s.opensearch_url)}   ({where['osmem']})"),
        ("Broker", f"{redact(s.broker_url)}   ({where['valkey']})"),
        ("Workers", f"{workers} (Dramatiq, {WORKER_THREADS} threads each)" if workers else "none (--workers 0)"),
    ]
    console.print()
    for label, value in lines:
        console.print(f"[bold]{label + ':':<10}[/bold]{value}", highlight=False, soft_wrap=True)
    if stack_file == default_stack_file().resolve():
        found = f"These URLs are in {stack_file}: `ikl <command>` in another terminal uses them."
    else:
        found = f"These URLs are in {stack_file}: `export IKL_STACK_FILE={stack_file}` for `ikl` to use them."
    console.print(f"\n{found}\nA worker, API process or local server that exits is restarted. Ctrl-C stops "
                  "everything.\n",
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

    if sys.argv[1:2] == ["--api"]:  # one API process (api_command): its inherited sockets, maybe a log level
        args = sys.argv[2:]
        level = None
        if "--log-level" in args:
            at = args.index("--log-level")
            args, level = args[:at], args[at + 1]
        serve_api([int(a) for a in args], level)
        sys.exit(0)
    try:
        serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", *process_counts())
    except typer.Exit as exc:  # a one-line failure (app/cli.py `_fail`): its exit code, no traceback
        sys.exit(exc.exit_code)
