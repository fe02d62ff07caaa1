"""The rules of a drafted postmortem's action items (pure): who owns them, their priority and their due date.

Action items are owned by the incident's assignee (never a service account), else its first team; their
priority follows the gap they answer and the incident's severity (GAP_PRIORITY); they are due ITEM_DUE_DAYS
after the later of the resolution and the draft's writing, so never already past when written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from app.postmortems.drafting_text import iso
from app.users.service import Bot

ITEM_DUE_DAYS = {"CRITICAL": 7, "HIGH": 14, "MEDIUM": 30, "LOW": 60}  # after the later of resolution and drafting
# An action item's priority: by the gap it answers and the incident's severity (CRITICAL, HIGH, MEDIUM, LOW;
# an unknown severity counts as MEDIUM). A cause that came back outranks the incident itself; a failure people
# found before the alerts did is never below MEDIUM; reviewing a runbook that was used is housekeeping.
GAP_PRIORITY = {
    "recurring_cause": ("CRITICAL", "CRITICAL", "HIGH", "MEDIUM"),
    "missing_monitoring": ("CRITICAL", "HIGH", "MEDIUM", "MEDIUM"),
    "slow_detection": ("HIGH", "HIGH", "MEDIUM", "LOW"),
    "manual_fix": ("HIGH", "MEDIUM", "MEDIUM", "LOW"),
    "no_runbook": ("HIGH", "MEDIUM", "MEDIUM", "LOW"),
    "unused_runbook": ("HIGH", "MEDIUM", "MEDIUM", "LOW"),
    "approval_wait": ("HIGH", "MEDIUM", "LOW", "LOW"),
    "review_runbook": ("LOW", "LOW", "LOW", "LOW"),
}
SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
# an assignee that names a service account (a bot, an importer) owns no action item; the caller may also pass
# the usernames it knows are service accounts (`service_accounts=`)
SERVICE_ACCOUNT_RE = re.compile(r"(?:^|[-_.@])(?:bot|robot|importer|svc|service[-_]?account|automation)"
                                r"(?:$|[-_.@0-9])", re.I)
SERVICE_ACCOUNTS = {b.value for b in Bot}  # the service's own accounts (postmortem-bot, pattern-miner...)


def item_priority(gap: str, severity: Any) -> str:
    """An action item's priority for the gap it answers at the incident's severity (GAP_PRIORITY)."""
    sev = str(getattr(severity, "value", severity) or "").upper()
    return GAP_PRIORITY[gap][SEVERITY_ORDER.index(sev) if sev in SEVERITY_ORDER else SEVERITY_ORDER.index("MEDIUM")]


def is_service_account(name: Any, known: Iterable[str] = ()) -> bool:
    """A username that is a bot or importer: one of `known`, or named like one (SERVICE_ACCOUNT_RE)."""
    name = str(name or "").strip()
    return bool(name) and (name.lower() in {k.lower() for k in [*known, *SERVICE_ACCOUNTS]}
                           or bool(SERVICE_ACCOUNT_RE.search(name)))


def item_owner(incident: Mapping[str, Any], service_accounts: Iterable[str] = ()) -> str | None:
    """Who owns the draft's action items: the incident's assignee, unless a service account; else its first
    affected team; else nobody (left for a person to name)."""
    assignee = str(incident.get("assignee") or "").strip()
    if assignee and not is_service_account(assignee, service_accounts):
        return assignee
    teams = [str(t).strip() for t in incident.get("affected_teams") or [] if str(t or "").strip()]
    return next((t for t in teams if not is_service_account(t, service_accounts)), None)


@dataclass
class ActionItems:
    """The action items of one draft as they are written: each owned by `owner`, prioritised by the gap it
    answers at `severity`, due ITEM_DUE_DAYS (of its priority) after `base`; every due date is recorded in
    `computed` (the draft's computed values)."""
    severity: Any
    owner: str | None
    base: datetime  # the later of the resolution and the draft's writing
    computed: set[str]
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, title: str, description: str, gap: str, category: str) -> None:
        priority = item_priority(gap, self.severity)
        due = iso(self.base + timedelta(days=ITEM_DUE_DAYS[priority]))
        self.computed.add(due)
        self.items.append({"title": title, "description": description, "priority": priority,
                           "assignee": self.owner, "due_date": due, "category": category})

    def titles(self) -> set[str]:
        return {i["title"] for i in self.items}
