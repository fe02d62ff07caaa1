"""Demo data: incidents and knowledge-base articles built from the public incident dataset when it
is there (`../shared/datasets/public-incidents.jsonl`), else from a small built-in set, laid on the weeks
before the day the demo is loaded; then what the demo's people did with them (postmortems, learning
patterns, recommendations). The same rows and day always give the same data (`build`); seeding writes it
through the services, each collection only when it is empty.

    rows = load_rows(path)                     # the dataset, or BUILT_IN
    data = build(rows, today=date.today())     # users, incidents, articles, plans: plain data
    await seed(bk, user=importer, rows=rows)   # = seed_incidents, seed_articles (also the demo users
                                               #   USERS and LEAD), seed_activity
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.demo.build import build
from app.demo.builtin import BUILT_IN
from app.demo.docs import SPEC_SEARCH
from app.demo.facts import read
from app.demo.incidents import incident
from app.demo.seed import ensure_users, seed, seed_activity, seed_articles, seed_incidents
from app.demo.spec import IMPORTER, LEAD, USERS, Article, DemoData
from app.incidents.models import IncidentCreate

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "public-incidents.jsonl"

__all__ = ["BUILT_IN", "DATASET", "IMPORTER", "LEAD", "SPEC_SEARCH", "USERS", "Article", "DemoData", "build",
           "ensure_users", "fallback_note", "incident_from_row", "load_rows", "seed", "seed_activity",
           "seed_articles", "seed_incidents"]
_loaded: dict[str, Any] = {}  # what load_rows read last in this process (for the devserver's banner)


def load_rows(path: Path | None = None) -> list[dict[str, Any]]:
    """The dataset's rows (JSON lines), or the built-in set when the file is not there."""
    path = path or DATASET
    if path.exists():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        _loaded.update(path=path, built_in=False, rows=len(rows))
        return rows
    _loaded.update(path=path, built_in=True, rows=len(BUILT_IN))
    return [dict(r) for r in BUILT_IN]


def fallback_note() -> str | None:
    """When this process loaded the built-in rows because the dataset is missing: what that means and how
    to get the full demo (None otherwise)."""
    if not _loaded.get("built_in"):
        return None
    return (f"Demo data: {_loaded['path']} was not found, so the demo holds only {_loaded['rows']} built-in "
            f"example incidents. For the full demo (200 incidents from public postmortems), put "
            f"public-incidents.jsonl there and start with a fresh data folder (--data-dir; demo data is loaded "
            f"only into empty collections), or run `ikl seed_demo --dataset FILE` on an empty database.")


def incident_from_row(row: dict[str, Any], name: str) -> IncidentCreate:
    """One row as a resolved incident on its own (for benchmarks that want clean titles)."""
    return incident(read(row), name=name, status="RESOLVED")
