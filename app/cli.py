"""Management commands: `ikl <command>` (or `python -m app.cli <command>`).

Names keep underscores (`create_user`, `reindex`, ...) like the documented management commands."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.settings import get_settings
from app.users.models import Classification, Role, UserCreate

cli = typer.Typer(help="Incident knowledge & learning service — management commands.", no_args_is_help=True,
                  add_completion=False)
console = Console()
ROOT = Path(__file__).resolve().parent.parent


def _run(coro_fn):
    """Run an async command body with its own connections."""
    from app.backends import connect

    async def main():
        bk = connect(get_settings())
        try:
            return await coro_fn(bk)
        finally:
            await bk.close()

    return asyncio.run(main())


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


@cli.command("create_user")
def create_user(username: str, email: Optional[str] = typer.Option(None), team: str = "",
                role: Role = typer.Option(Role.VIEWER, case_sensitive=False),
                clearance: Classification = typer.Option(Classification.INTERNAL, case_sensitive=False)) -> None:
    """Create a user and print an API token for it (shown once)."""
    from app.errors import ServiceError
    from app.users import service

    async def body(bk):
        user = await service.create_user(bk, data=UserCreate(username=username, email=email, team=team, role=role,
                                                             clearance=clearance))
        return await service.issue_token(bk, user=user)

    try:
        token = _run(body)
    except ServiceError as exc:
        console.print(f"[red]{exc.error}[/red]")
        raise typer.Exit(1) from None
    console.print(f"created {username} ({role.value}, clearance {clearance.value})")
    print(token)


@cli.command("create_token")
def create_token(username: str) -> None:
    """Issue a new API token for an existing user."""
    from app.errors import ServiceError
    from app.users import service

    async def body(bk):
        return await service.issue_token(bk, user=await service.get_user_by_username(bk, username=username))

    try:
        print(_run(body))
    except ServiceError as exc:
        console.print(f"[red]{exc.error}[/red]")
        raise typer.Exit(1) from None


@cli.command("reindex")
def reindex(index: str = typer.Argument("all", help="index name, or 'all'")) -> None:
    """Rebuild a search index from MongoDB into a new versioned index and swap the alias."""
    from indexers import registry
    from indexers.base import reindex as do_reindex

    defs = registry()
    names = list(defs) if index == "all" else [index]
    unknown = [n for n in names if n not in defs]
    if unknown:
        console.print(f"[red]unknown index {unknown[0]!r}; known: {', '.join(defs)}[/red]")
        raise typer.Exit(2)

    async def body(bk):
        from app.db import ensure_indexes

        await ensure_indexes(bk)
        with _progress() as progress:
            for name in names:
                task = progress.add_task(f"reindex {name}", total=None)
                stats = await do_reindex(bk, defs[name], progress=lambda done, total, t=task:
                                         progress.update(t, completed=done, total=total))
                console.print(f"{name}: {stats['documents']} documents -> {stats['index']} "
                              f"(replaced {', '.join(stats['replaced']) or 'nothing'}; {stats['seconds']}s)")

    _run(body)


@cli.command("drain_outbox")
def drain_outbox() -> None:
    """Sync every pending index-outbox entry now (failed ones included) and report what is left."""
    from app.indexing import outbox

    async def body(bk):
        total = {"synced": 0, "failed": 0}
        while True:
            res = await outbox.drain(bk, due_only=False)
            total = {k: total[k] + res[k] for k in total}
            if res["synced"] == 0 or res["failed"]:
                break
        return total, await outbox.pending(bk)

    total, left = _run(body)
    console.print(f"synced {total['synced']}, failed {total['failed']}; pending {left['pending']} "
                  f"({left['failing']} failing)")
    if left["failing"]:
        raise typer.Exit(1)


@cli.command("seed_demo")
def seed_demo(dataset: Optional[Path] = typer.Option(None, help="JSONL of incidents (default: shared dataset)")) -> None:
    """Load demo incidents and knowledge-base articles (each only into an empty collection)."""
    n_incidents, n_articles = _run(lambda bk: _seed(bk, dataset))
    console.print(f"seeded {n_incidents} incidents and {n_articles} articles (existing data is never re-seeded)")


async def _seed(bk, dataset: Optional[Path]) -> tuple[int, int]:
    from app import demo
    from app.db import ensure_indexes
    from app.users import service

    await ensure_indexes(bk)
    user = await service.ensure_user(bk, data=UserCreate(username="demo-importer", role=Role.ADMIN,
                                                         clearance=Classification.RESTRICTED))
    rows = demo.load_rows(dataset)
    with _progress() as progress:
        task = progress.add_task("seeding incidents", total=len(rows))
        n_incidents = await demo.seed_incidents(bk, user=user, rows=rows,
                                                progress=lambda n: progress.update(task, completed=n))
        task = progress.add_task("seeding articles", total=len(rows))
        n_articles = await demo.seed_articles(bk, user=user, rows=rows,
                                              progress=lambda n: progress.update(task, completed=n))
    return n_incidents, n_articles


@cli.command("devserver")
def devserver(port: int = 8000, data_dir: Path = typer.Option(ROOT / ".data", help="where the local stack keeps data"),
              seed: bool = True) -> None:
    """Start the local stack (unless MONGODB_URL/OPENSEARCH_URL/BROKER_URL point elsewhere), seed demo
    data, run the API and a worker, print the GraphiQL URL and a token. Ctrl-C stops everything."""
    from app.stack import LocalStack

    stack = LocalStack(root=data_dir)
    started: list[str] = []
    procs: list[subprocess.Popen] = []
    # Ctrl-C and TERM stop everything, even when started from a shell that ignores SIGINT (a `&` job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if "MONGODB_URL" not in os.environ:
            console.print("starting MongoDB (replica set) ...")
            stack.start_mongo()
            os.environ["MONGODB_URL"] = stack.mongodb_url
            started.append("mongodb")
        if "BROKER_URL" not in os.environ:
            console.print("starting Valkey ...")
            stack.start_valkey()
            os.environ["BROKER_URL"] = stack.broker_url
            started.append("valkey")
        if "OPENSEARCH_URL" not in os.environ:
            console.print("starting the OpenSearch-compatible server (osmem) ...")
            stack.start_search()
            os.environ["OPENSEARCH_URL"] = stack.opensearch_url
            started.append("osmem")
        get_settings.cache_clear()

        async def prepare(bk):
            from app.main import prepare as prepare_backends
            from app.users import service

            if seed:
                await _seed(bk, None)
            await prepare_backends(bk)  # rebuilds indices missing from the search server
            admin = await service.ensure_user(bk, data=UserCreate(username="admin", role=Role.ADMIN,
                                                                  clearance=Classification.RESTRICTED))
            return await service.issue_token(bk, user=admin)

        token = _run(prepare)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs += [
            subprocess.Popen([sys.executable, "-m", "dramatiq", "app.worker", "--processes", "1", "--threads", "4"],
                             cwd=ROOT, env=env),
            subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
                              "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"],
                             cwd=ROOT, env=env),
        ]
        time.sleep(1.0)
        console.print(f"\n[bold]GraphiQL:[/bold] http://127.0.0.1:{port}/graphql")
        console.print(f"[bold]REST:[/bold]     http://127.0.0.1:{port}/api/v1/incidents/  "
                      f"http://127.0.0.1:{port}/api/knowledge/knowledge-articles/")
        console.print(f"[bold]Token:[/bold]    {token}   (header  Authorization: Token {token})")
        console.print(f"local stack: {', '.join(started) or 'none (external servers)'}; data in {data_dir}")
        console.print("Ctrl-C stops everything.\n")
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        console.print("[red]a child process exited; stopping[/red]")
    except KeyboardInterrupt:
        console.print("\nstopping ...")
    finally:
        # A second Ctrl-C (or the terminal's copy of a forwarded one) must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        stack.stop()


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
