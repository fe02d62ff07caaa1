"""Demo data: incidents built from the public incident dataset when it is there, else a small
built-in set. Seeding is idempotent: it does nothing when incidents already exist."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from app.backends import Backends
from app.articles import service as articles
from app.articles.models import ArticleCreate
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate
from app.users.models import User

DATASET = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "public-incidents.jsonl"
_SEVERITY = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW"}
_LINE = re.compile(r"^\s*-\s*(\d{1,2}):(\d{2})\s*:?\s*(.+)$")
_MITIGATION = re.compile(r"rollback|roll back|restor|revert|disabl|fix|mitigat|recover|failover|patch", re.I)

BUILT_IN = [
    {"id": "demo_001", "company": "Example Pay", "date": "2026-03-19", "severity": "High", "category": "Memory",
     "subcategory": "Memory/Limits",
     "root_cause": "Memory limit of 512Mi too small for the payment-service under peak load; pods were OOMKilled.",
     "postmortem_markdown": "# OOMKill in payment-service\nTimeline:\n- 15:20: OOMKill detected in pod payment-service\n"
                            "- 15:21: Runbook oomkill-standard selected\n- 15:30: Memory limit raised to 1Gi, service recovered\n"},
    {"id": "demo_002", "company": "Example Shop", "date": "2026-02-02", "severity": "Critical", "category": "Database",
     "subcategory": "Database/Connections",
     "root_cause": "Connection pool exhausted on the orders database after a deploy doubled worker count.",
     "postmortem_markdown": "# Orders database connection timeouts\nTimeline:\n- 09:00: ECONNREFUSED errors from orders-api\n"
                            "- 09:12: Pool exhaustion identified\n- 09:25: Deploy rolled back, errors stopped\n"},
    {"id": "demo_003", "company": "Example Edge", "date": "2026-01-10", "severity": "Medium", "category": "Security",
     "subcategory": "Security/Certificates",
     "root_cause": "TLS certificate on the edge expired because the renewal job had been failing silently.",
     "postmortem_markdown": "# Expired certificate\nTimeline:\n- 00:01: TLS handshake failures spike\n"
                            "- 00:20: Expired certificate found\n- 00:35: Certificate renewed and deployed\n"},
]


def load_rows(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or DATASET
    if path.exists():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return list(BUILT_IN)


def _timeline(row: dict[str, Any], day: datetime) -> list[dict[str, Any]]:
    lines = [m for m in (_LINE.match(x) for x in row.get("postmortem_markdown", "").splitlines()) if m]
    events = []
    for i, m in enumerate(lines):
        hour, minute, text = int(m.group(1)), int(m.group(2)), m.group(3).strip()
        if i == 0:
            kind = "Detection"
        elif i == len(lines) - 1:
            kind = "Resolution"
        else:
            kind = "Mitigation" if _MITIGATION.search(text) else "Analysis"
        events.append({"timestamp": day.replace(hour=hour % 24, minute=minute % 60), "type": kind,
                       "source": "postmortem-import", "message": text[:5000]})
    return events


def incident_day(row: dict[str, Any]) -> datetime:
    """The row's date; rows dated "Unknown" get a stable stand-in derived from their id."""
    try:
        return datetime.fromisoformat(row["date"]).replace(tzinfo=timezone.utc)
    except (KeyError, ValueError):
        number = int(re.sub(r"\D", "", str(row.get("id", ""))) or 0)
        return datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(days=number)


def _title(row: dict[str, Any]) -> str:
    md = row.get("postmortem_markdown", "")
    heading = next((x.lstrip("# ").strip() for x in md.splitlines() if x.startswith("#")), "")
    if not heading or heading.lower().endswith("incident"):  # "Google Incident" says nothing
        heading = re.split(r"(?<=[.;])\s", row.get("root_cause", "").strip())[0].rstrip(".;")[:150]
    return f"{row['company']}: {heading}"[:200]


def incident_from_row(row: dict[str, Any], name: str) -> IncidentCreate:
    """An incident from one dataset row (a resolved incident with its imported timeline)."""
    day = incident_day(row)
    md = row.get("postmortem_markdown", "")
    events = _timeline(row, day)
    return IncidentCreate.model_validate({
        "name": name, "namespace": "production", "title": _title(row),
        "description": md[:20_000], "severity": _SEVERITY.get(str(row.get("severity", "")).lower(), "MEDIUM"),
        "status": "RESOLVED", "category": row.get("category", "")[:100],
        "affected_services": [row["company"].lower().replace(" ", "-")],
        "tags": [t for t in [row.get("subcategory")] if t], "root_cause": row.get("root_cause", ""),
        "resolution": events[-1]["message"] if events else "", "detected_at": events[0]["timestamp"] if events else day,
        "resolved_at": events[-1]["timestamp"] if events else day, "timeline": events,
    })


async def seed_incidents(bk: Backends, *, user: User, rows: Iterable[dict[str, Any]],
                         progress: Callable[[int], None] | None = None) -> int:
    """Create the demo incidents unless any incident exists; returns how many were created."""
    if await bk.mongo.incidents.estimated_document_count() > 0:
        return 0
    per_day: dict[str, int] = {}
    created = 0
    for row in rows:
        day = incident_day(row).strftime("%Y%m%d")
        per_day[day] = per_day.get(day, 0) + 1
        await incidents.create_incident(bk, data=incident_from_row(row, f"INC-{day}-{per_day[day]:03d}"), user=user)
        created += 1
        if progress:
            progress(created)
    return created


def article_from_row(row: dict[str, Any]) -> ArticleCreate:
    """A published postmortem summary from one dataset row."""
    return ArticleCreate.model_validate({
        "title": _title(row), "content": row.get("postmortem_markdown") or row["root_cause"],
        "summary": row.get("root_cause", "")[:5000], "article_type": "POSTMORTEM_SUMMARY",
        "category": (row.get("category") or "General")[:100],
        "subcategory": (row.get("subcategory") or "").split("/")[-1][:100],
        "tags": [row["company"].lower().replace(" ", "-")], "status": "PUBLISHED", "difficulty_level": "INTERMEDIATE",
    })


async def seed_articles(bk: Backends, *, user: User, rows: Iterable[dict[str, Any]],
                        progress: Callable[[int], None] | None = None) -> int:
    """Create the demo articles unless any article exists; returns how many were created."""
    if await bk.mongo.articles.estimated_document_count() > 0:
        return 0
    created = 0
    for row in rows:
        await articles.create_article(bk, data=article_from_row(row), user=user)
        created += 1
        if progress:
            progress(created)
    return created
