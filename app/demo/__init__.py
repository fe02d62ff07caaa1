"""Demo data: incidents and knowledge-base articles built from the public incident dataset when it
is there (`../shared/datasets/public-incidents.jsonl`), else from a small built-in set. The same rows
always give the same data (`build`); seeding writes it through the services, each collection only
when it is empty.

    rows = load_rows(path)                     # the dataset, or BUILT_IN
    data = build(rows)                         # users, incidents, articles: plain data
    await seed_incidents(bk, user=importer, rows=rows)
    await seed_articles(bk, user=importer, rows=rows)   # also creates the demo users (USERS)
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
from app.demo.seed import ensure_users, seed, seed_articles, seed_incidents
from app.demo.spec import IMPORTER, USERS, Article, DemoData
from app.incidents.models import IncidentCreate

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "public-incidents.jsonl"

__all__ = ["BUILT_IN", "DATASET", "IMPORTER", "SPEC_SEARCH", "USERS", "Article", "DemoData", "build",
           "ensure_users", "incident_from_row", "load_rows", "seed", "seed_articles", "seed_incidents"]


def load_rows(path: Path | None = None) -> list[dict[str, Any]]:
    """The dataset's rows (JSON lines), or the built-in set when the file is not there."""
    path = path or DATASET
    if path.exists():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [dict(r) for r in BUILT_IN]


def incident_from_row(row: dict[str, Any], name: str) -> IncidentCreate:
    """One row as a resolved incident on its own (for benchmarks that want clean titles)."""
    return incident(read(row), name=name, status="RESOLVED")
