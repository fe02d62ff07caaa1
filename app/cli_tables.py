"""What the management commands print besides their own lines: tables that never cut a name, counts."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()


def never_cut(values: list[str], header: str) -> dict:
    """Column options that keep every value whole on one line, however narrow the terminal (the other
    columns wrap instead): for incident names, which people copy into the next command."""
    return {"no_wrap": True, "overflow": "ignore", "min_width": max([len(v) for v in values] + [len(header)])}


def counted(n: int, noun: str) -> str:
    """`1 incident`, `2 incidents`, `0 patterns`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summary(table, actions: list[str], *, failed: str, noun: str = "incident") -> None:
    """Print the table and a count per action; exit code 1 when any failed."""
    console.print(table)
    counts = {a: actions.count(a) for a in dict.fromkeys(actions)}
    console.print(f"{counted(len(actions), noun)}: "
                  + (", ".join(f"{n} {a}" for a, n in counts.items()) or "nothing to do"))
    if counts.get(failed):
        raise typer.Exit(1)
