"""Whether an incident shows a pattern's triggers: one rule for recommendations and postmortem drafts.

A trigger matches when TRIGGER_MATCH of its words (lower-cased, stop words and one-letter words left out)
occur in the incident's text: its title, description, category, services and events' messages."""

from __future__ import annotations

import re
from typing import Any, Mapping

WORD = re.compile(r"[a-z0-9][a-z0-9._-]*")
STOP = frozenset("a an and are as at be by for from in is it of on or the to was were with".split())
TRIGGER_MATCH = 0.6


def words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOP and len(w) > 1}


def incident_text(incident: Mapping[str, Any]) -> str:
    events = [e.get("message") or "" for e in incident.get("timeline") or [] if isinstance(e, Mapping)]
    return " ".join([incident.get("title") or "", incident.get("description") or "", incident.get("category") or "",
                     " ".join(s for s in incident.get("affected_services") or [] if isinstance(s, str)), *events])


def matched(pattern: Mapping[str, Any], text: str) -> tuple[list[str], list[str]]:
    """(the pattern's triggers that have words, those the text shows)."""
    have = words(text)
    triggers = [t for t in pattern.get("triggers") or [] if isinstance(t, str) and words(t)]
    return triggers, [t for t in triggers if len(words(t) & have) / len(words(t)) >= TRIGGER_MATCH]
