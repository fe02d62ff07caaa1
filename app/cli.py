"""Management commands: `ikl <command>` (or `python -m app.cli <command>`).

Names keep underscores (`create_user`, `reindex`, ...) like the documented management commands."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.logs import configure_logging
from app.cli_tables import console, counted, never_cut, summary
from app.settings import get_settings, settings_page
from app.users.models import Classification, Role, UserCreate

cli = typer.Typer(help="Incident knowledge & learning service — management commands.", no_args_is_help=True,
                  add_completion=False)
ROOT = Path(__file__).resolve().parent.parent


# server -> (what an operator calls it, the variable that names it, the settings field)
SERVERS = {
    "mongodb": ("MongoDB", "MONGODB_URL", "mongodb_url"),
    "search": ("the search server", "OPENSEARCH_URL", "opensearch_url"),
    "broker": ("the broker (Valkey)", "BROKER_URL", "broker_url"),
}
UNREACHABLE = 3  # exit code of a command that cannot reach a server it needs


def _run(coro_fn, needs: tuple[str, ...] = ("mongodb",)):
    """Run an async command body with its own connections, after checking that the servers it
    `needs` answer. A server that cannot be reached, then or later, ends the command with one line
    naming it and the URL tried (exit code 3), not a traceback."""
    from app import domains  # noqa: F401 - every domain's hooks and job handlers registered
    from app.backends import connect
    configure_logging("WARNING")  # the services' warnings in the JSON format on stderr; output stays on stdout

    async def main():
        bk = connect(get_settings(), jobs=True)
        try:
            for server in needs:
                try:
                    await _ping(bk, server)
                except Exception as exc:
                    from pymongo.errors import ConfigurationError

                    if _unreachable_server(exc) is None and not isinstance(exc, ConfigurationError):
                        raise _BadAnswer(server, exc) from exc  # it answered, but not as it should
                    raise
            return await coro_fn(bk)
        finally:
            await bk.close()

    try:
        return asyncio.run(main())
    except _BadAnswer as exc:
        label, _, field = SERVERS[exc.server]
        detail = " ".join(f"{type(exc.error).__name__}: {exc.error}".split())[:300]
        _fail(f"error: {label} at {_shown_url(field)} did not answer as expected ({detail})", UNREACHABLE)
    except Exception as exc:
        from pymongo.errors import ConfigurationError

        if isinstance(exc, ConfigurationError):  # a malformed URL, or a mongodb+srv name that does not resolve
            _fail(f"error: cannot use MongoDB at {_shown_url('mongodb_url')} ({' '.join(str(exc).split())[:300]})",
                  UNREACHABLE)
        if (server := _unreachable_server(exc)) is None:
            raise
        _fail(_unreachable_message(server), UNREACHABLE)


class _BadAnswer(Exception):
    def __init__(self, server: str, error: Exception):
        super().__init__(server)
        self.server, self.error = server, error


def _shown_url(field: str) -> str:
    from app.discovery import redact

    return redact(getattr(get_settings(), field))


async def _ping(bk, server: str) -> None:
    await {"mongodb": lambda: bk.client.admin.command("ping"), "search": bk.search.info,
           "broker": bk.redis.ping}[server]()


def _unreachable_server(exc: BaseException | None) -> str | None:
    """Which server an exception (or one it was raised from) says is out of reach, if any."""
    try:
        from dramatiq.errors import BrokerConnectionError
    except ImportError:  # dramatiq < 2.2
        from dramatiq.errors import ConnectionError as BrokerConnectionError
    from opensearchpy.exceptions import ConnectionError as SearchConnectionError
    from pymongo.errors import ConnectionFailure
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ConnectionFailure):
            return "mongodb"
        if isinstance(exc, SearchConnectionError):
            return "search"
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, BrokerConnectionError)):
            return "broker"
        exc = exc.__cause__ or exc.__context__
    return None


def _unreachable_message(server: str) -> str:
    from app import discovery

    label, var, field = SERVERS[server]
    url = getattr(get_settings(), field)
    if name := discovery.env_var(var):
        source = f"set by {name}"
    elif (doc := discovery.read()) is not None and doc.get(field) == url:
        source = f"from {discovery.stack_file()}, written by `python3 dev.py run` (pid {doc['pid']})"
    else:
        source = f"the default; is `python3 dev.py run` up, or {var} set?"
    return f"error: cannot reach {label} at {_shown_url(field)} ({source})"


def _fail(message: str, code: int = 1):
    """One line on stderr, and the exit code (no traceback)."""
    print(message, file=sys.stderr, flush=True)
    raise typer.Exit(code)


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
        _fail(f"error: {exc.error}")
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
        _fail(f"error: {exc.error}")


@cli.command("set_password")
def set_password(username: str) -> None:
    """Set a user's password (for session sign-in: POST /api/auth/login/) and end every session they have.
    The password is read from stdin when it is not a terminal (its first line), else asked for twice."""
    from app.errors import ServiceError
    from app.users import passwords, service, signin

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        passwords.check_strength(password)
    except ServiceError as exc:
        _fail(f"error: {exc.error}")

    async def body(bk):
        user = await service.get_user_by_username(bk, username=username)
        return await signin.set_password(bk, user=user, password=password)

    try:
        ended = _run(body)
    except ServiceError as exc:
        _fail(f"error: {exc.error}")
    console.print(f"password set for {username}; {counted(ended, 'session')} ended")


MARKDOWN = typer.Option(False, "--markdown", help="The docs/ page instead of JSON")


@cli.command("permissions")
def permissions_matrix(markdown: bool = MARKDOWN) -> None:
    """Print the permission matrix: every REST operation and GraphQL root field, who may call it (made from the
    declarations; `ikl permissions --markdown > docs/permissions.md` regenerates the page)."""
    from app.main import permission_page

    print(permission_page(markdown=markdown))


@cli.command("settings")
def settings_table(markdown: bool = MARKDOWN) -> None:
    """Print every setting: its environment variable, default and what it does (made from the settings' field
    descriptions; `ikl settings --markdown > docs/settings.md` regenerates the page)."""
    print(settings_page(markdown=markdown))


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

    _run(body, needs=("mongodb", "search"))


@cli.command("drain_outbox")
def drain_outbox() -> None:
    """Sync every pending index-outbox entry and run every pending job now (failed and delayed ones
    included; entries a worker holds are waited for up to 30 s) and report what is left."""
    from app.indexing import outbox

    async def body(bk):
        total = {"synced": 0, "failed": 0}
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            res = await outbox.drain(bk, due_only=False, jobs=True)
            total = {k: total[k] + res[k] for k in total}
            if res["failed"]:
                break
            if res["synced"] == 0:  # what is left is held by a worker right now: give it a moment
                if not (await outbox.pending(bk))["pending"] or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
        return total, await outbox.pending(bk)

    total, left = _run(body, needs=("mongodb", "search"))
    console.print(f"synced {total['synced']}, failed {total['failed']}; pending {left['pending']} "
                  f"({left['failing']} failing)")
    if left["failing"]:
        raise typer.Exit(1)


@cli.command("seed_demo")
def seed_demo(dataset: Optional[Path] = typer.Option(None, help="JSONL of incidents (default: shared dataset)")) -> None:
    """Load demo incidents, knowledge-base articles, and what the demo's people did with them — postmortems,
    generation logs, learning patterns, recommendations with ratings (each only into an empty collection)."""
    n_incidents, n_articles = _run(lambda bk: _seed(bk, dataset), needs=("mongodb", "search"))
    console.print(f"seeded {counted(n_incidents, 'incident')} and {counted(n_articles, 'article')} "
                  "(existing data is never re-seeded)")


async def _seed(bk, dataset: Optional[Path]) -> tuple[int, int]:
    from app import demo
    from app.db import ensure_indexes
    from app.users import service

    await ensure_indexes(bk)
    user = await service.ensure_user(bk, data=demo.IMPORTER)
    rows = demo.load_rows(dataset)
    with _progress() as progress:
        task = progress.add_task("seeding incidents", total=len(rows))
        n_incidents = await demo.seed_incidents(bk, user=user, rows=rows,
                                                progress=lambda n: progress.update(task, completed=n))
        task = progress.add_task("seeding articles", total=len(rows))
        n_articles = await demo.seed_articles(bk, user=user, rows=rows,
                                              progress=lambda n: progress.update(task, completed=n))
        progress.add_task("seeding postmortems, learning patterns, recommendations", total=None)
        await demo.seed_activity(bk, user=user, rows=rows)
    return n_incidents, n_articles


@cli.command("generate_postmortems")
def generate_postmortems(
        days: int = typer.Option(7, min=0, help="how many days back to look for resolved incidents"),
        severity: Optional[list[str]] = typer.Option(None, help="only these severities (repeat, or a comma list)"),
        force: bool = typer.Option(False, "--force", help="re-draft a postmortem that already exists"),
        dry_run: bool = typer.Option(False, "--dry-run", help="show what would be generated; write nothing")) -> None:
    """Create and draft a postmortem for each incident resolved in the last --days days; a summary table
    at the end, exit code 1 when any failed."""
    from rich.table import Table

    from app.incidents.models import Severity
    from app.postmortems import batch

    wanted = _choices(severity, Severity, "severity")

    async def body(bk):
        with _progress() as progress:
            task = progress.add_task("generate postmortems" + (" (dry run)" if dry_run else ""), total=None)
            return await batch.generate_for_recent(
                bk, days=days, severities=wanted, force=force, dry_run=dry_run,
                progress=lambda done, total: progress.update(task, completed=done, total=total))

    results = _run(body)
    table = Table(title=f"postmortems for incidents resolved in the last {days} days" + (" (dry run)" if dry_run else ""))
    for column in ("incident", "severity", "action", "status", "confidence", "note"):
        table.add_column(column, **(never_cut([r.incident_name for r in results], column) if column == "incident" else {}))
    for r in results:
        table.add_row(r.incident_name, r.severity, r.action, r.status or "",
                      "" if r.confidence is None else f"{r.confidence:.2f}", r.error or "")
    summary(table, [r.action for r in results], failed=batch.FAILED)


@cli.command("generate_recommendations")
def generate_recommendations(
        days: int = typer.Option(1, min=0, help="how many days back to look for incidents (by creation)"),
        status: Optional[list[str]] = typer.Option(None, help="only these statuses (default OPEN; repeat, or a comma list)"),
        severity: Optional[list[str]] = typer.Option(None, help="only these severities (repeat, or a comma list)"),
        force: bool = typer.Option(False, "--force", help="generate again where recommendations exist"),
        max_recommendations: int = typer.Option(5, "--max-recommendations", min=1, max=50,
                                                help="at most this many per incident"),
        dry_run: bool = typer.Option(False, "--dry-run", help="show what would be generated; write nothing")) -> None:
    """Generate recommendations for each incident created in the last --days days with the statuses and
    severities given; a summary table at the end, exit code 1 when any failed."""
    from rich.table import Table

    from app.incidents.models import Severity, Status
    from app.recommendations import batch

    statuses = _choices(status, Status, "status") or ["OPEN"]
    severities = _choices(severity, Severity, "severity")

    async def body(bk):
        with _progress() as progress:
            task = progress.add_task("generate recommendations" + (" (dry run)" if dry_run else ""), total=None)
            return await batch.generate_for_recent(
                bk, days=days, statuses=statuses, severities=severities, force=force,
                max_recommendations=max_recommendations, dry_run=dry_run,
                progress=lambda done, total: progress.update(task, completed=done, total=total))

    results = _run(body)
    table = Table(title=f"recommendations for incidents created in the last {days} days"
                  + (" (dry run)" if dry_run else ""))
    for column in ("incident", "severity", "action", "stored", "best confidence", "error"):
        table.add_column(column, **(never_cut([r.incident_name for r in results], column) if column == "incident" else {}))
    for r in results:
        table.add_row(r.incident_name, r.severity, r.action, str(r.count) if r.action == batch.GENERATED else "",
                      "" if r.best is None else f"{r.best:.2f}", r.error or "")
    summary(table, [r.action for r in results], failed=batch.FAILED)


@cli.command("update_learning_patterns")
def update_learning_patterns(
        days: int = typer.Option(30, min=1, help="how many days back to analyse resolved incidents"),
        min_frequency: int = typer.Option(3, "--min-frequency", min=2, help="the fewest incidents a pattern needs"),
        dry_run: bool = typer.Option(False, "--dry-run", help="show what would be created or updated; write nothing"),
        wait: float = typer.Option(600.0, "--wait", min=0, help="seconds to wait for a run already running "
                                   "(e.g. the workers' scheduled one) to end before starting this one; 0: not at all")) -> None:
    """Mine learning patterns from the incidents resolved in the last --days days (and their published
    postmortems): new groups become patterns, known ones are updated in place (a validated one with a
    trace); a summary table at the end. One run at a time: while another is running (the workers' scheduled
    run, say), says which, waits for it to end (at most --wait seconds, a line every 10 s) and then runs;
    when it is still running then, exits with code 75 (EX_TEMPFAIL: nothing failed, try again later)
    without starting one."""
    from rich.table import Table

    from app.patterns import runs
    from app.timefmt import isoz

    def described(other: dict) -> str:
        return (f"{other['_id']} ({other.get('trigger')}, {other['status']}, started {isoz(other.get('started_at'))}, "
                f"--days {other.get('days')} --min-frequency {other.get('min_frequency')})")

    async def body(bk):
        with _progress() as progress:
            task = progress.add_task("mine learning patterns" + (" (dry run)" if dry_run else ""), total=4)
            steps = iter(range(1, 5))
            told: dict[str, float] = {}  # run id -> seconds waited when last said

            def waiting(other: dict, seconds: float) -> None:
                if other.get("active"):
                    if other["_id"] not in told:
                        progress.console.print(f"a mining run is already running: {described(other)}; waiting for "
                                               f"it to end (at most {wait:g} s)")
                    elif seconds - told[other["_id"]] < 10:
                        return
                    else:
                        progress.console.print(f"still waiting for mining run {other['_id']}: {seconds:.0f} s")
                    told[other["_id"]] = seconds
                    progress.update(task, description=f"waiting for mining run {other['_id'][:8]}")
                    return
                counts = ", ".join(f"{n} {a.replace('_', ' ')}" for a, n in (other.get("counts") or {}).items())
                progress.console.print(f"mining run {other['_id']} ended after {seconds:.0f} s: {other['status']}"
                                       + (f" ({counts})" if counts else "")
                                       + (f" - {other['error_message']}" if other.get("error_message") else "")
                                       + "; starting this one")
                progress.update(task, description="mine learning patterns")

            return await runs.run(bk, days=days, min_frequency=min_frequency, dry_run=dry_run, wait=wait,
                                  waiting=waiting, progress=lambda what: progress.update(task, description=what,
                                                                                         completed=next(steps, 4)))

    report = _run(body)
    if (other := report.already_running) is not None:  # one run at a time: nothing was done
        _fail(f"a mining run is already running: {described(other)}; none started"
              + (f" (waited {wait:g} s)" if wait else "") + ". Try again once it has finished.", runs.BUSY_EXIT_CODE)
    table = Table(title=f"learning patterns from {counted(report.incidents, 'incident')} resolved in the last {days} days"
                  + (" (dry run)" if dry_run else ""))
    for column in ("action", "type", "name", "incidents", "confidence"):
        table.add_column(column)
    for r in report.rows:
        table.add_row(r.action, r.pattern_type, r.name, str(r.frequency), f"{r.confidence:.2f}")
    summary(table, [r.action for r in report.rows], failed="failed", noun="pattern")


@cli.command("refit_calibration")
def refit_calibration() -> None:
    """Refit each recommendation type's confidence model from its effectiveness ratings (kept only when
    its cross-validated log loss beats the prior's) and print the report. Workers also do it hourly."""
    from rich.table import Table

    from app.recommendations import calibration

    report = _run(calibration.refit)
    table = Table(title="confidence calibration per recommendation type")
    for column in ("type", "ratings", "ECE before", "ECE after", "AUC before", "AUC after", "refitted"):
        table.add_column(column)
    for rec_type, r in report.items():
        table.add_row(rec_type, str(r["ratings"]), str(r.get("ece_before", "")), str(r.get("ece_after", "")),
                      str(r.get("auc_before", "")), str(r.get("auc_after", "")), "yes" if r["kept"] else f"no (needs {calibration.MIN_RATINGS} ratings)"
                      if r["ratings"] < calibration.MIN_RATINGS else "no (not better)")
    console.print(table)


def _choices(values: Optional[list[str]], enum, name: str) -> list[str]:
    """Repeated or comma-separated option values, upper-cased and checked (exit 2 for an unknown one)."""
    wanted = [v.strip().upper() for value in values or [] for v in value.split(",") if v.strip()]
    known = [e.value for e in enum]
    if bad := [v for v in wanted if v not in known]:
        _fail(f"error: unknown {name} {bad[0]!r}; known: {', '.join(known)}", 2)
    return wanted


@cli.command("devserver")
def devserver(port: int = typer.Option(8000, help="the API's port on 127.0.0.1 (0: a free one, announced)"),
              data_dir: Path = typer.Option(ROOT / ".data", help="where the local stack keeps data"),
              seed: bool = True) -> None:
    """Start the local stack (unless MONGODB_URL/OPENSEARCH_URL/BROKER_URL point elsewhere), seed demo
    data, run the API and a worker and keep them running (a child that exits is restarted with
    back-off), publish the URLs in <data-dir>/stack.json, print them and a token. Ctrl-C stops everything.
    The server is app/devserver.py, which builds on this module's helpers: this process becomes it (same pid)."""
    import os

    os.execv(sys.executable, [sys.executable, "-m", "app.devserver", str(port), str(data_dir), "1" if seed else "0"])


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
