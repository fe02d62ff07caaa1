"""Completion of a postmortem (pure, cheap: computed on every read): the required sections a reviewer would
call complete (`complete_sections`, README "completion_percentage"), whether it is overdue, and the default
due date of a new one."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Mapping

from app.backends import Backends
from app.postmortems.models import REQUIRED_SECTIONS, PostmortemStatus
from app.timefmt import utcnow

CLOSED_STATUSES = (PostmortemStatus.PUBLISHED.value, PostmortemStatus.ARCHIVED.value)  # never overdue

WORD = re.compile(r"[^\W\d_][\w'’-]*")  # a word: starts with a letter
# the whole text is a placeholder ("TBD", "n/a", "...", "Executive summary...", "To be written")
PLACEHOLDER = re.compile(r"^\W*(?:n/?a|none|nothing|unknown|tbd|todo|to ?do|wip|tba|\?+|-+|\.+|x+|"
                         r"(?:the )?(?:executive )?summary|root cause(?: analysis)?|rca|impact(?: assessment)?|"
                         r"lessons?(?: learned)?|action items?|timeline|(?:to be|will be) (?:written|added|filled"
                         r"(?: in)?|completed|determined|confirmed)(?: later)?|coming soon|placeholder|lorem ipsum)"
                         r"\W*$", re.I)
# a root cause that is not known yet, whatever else the section says around it
UNKNOWN_CAUSE = re.compile(r"\broot cause (?:is|was|remains|has)(?: still)? (?:not (?:yet )?(?:been )?(?:recorded|"
                           r"known|stated|determined|identified|found|documented|confirmed)|unknown|unclear|"
                           r"undetermined|under investigation|tbd)\b|\broot cause\s*:\s*(?:unknown|unclear|n/?a|none|"
                           r"\?+|not (?:yet )?(?:known|recorded|determined|identified))(?!\w)|"
                           r"\b(?:tbd|todo|to be determined)\b", re.I)
SUMMARY_MIN_WORDS = 8  # words of the executive summary beyond the postmortem's title (what happened)
# the summary states an impact: who or what was affected, for how long, what failed
IMPACT = re.compile(r"(?<![\w])(?:affect\w*|impact\w*|users?|customers?|clients?|outages?|down(?:time)?|"
                    r"unavailab\w*|unreachable|degrad\w*|errors?|fail\w*|broke\w*|crash\w*|time[ds]? ?out\w*|"
                    r"latency|lost|loss|revenue|requests?|orders?|payments?|transactions?|data|seconds?|minutes?|"
                    r"hours?|days?|percent)(?![\w])|\d\s*%", re.I)
DETECTION_WORDS = re.compile(r"(?<![\w])(?:detect\w*|alert\w*|pag(?:e|ed|ing)|report\w*|notic\w*|discover\w*|"
                             r"observed|first sign\w*|triggered|fired)(?![\w])", re.I)
RESOLUTION_WORDS = re.compile(r"(?<![\w])(?:resol\w*|mitigat\w*|restor\w*|recover\w*|fix(?:ed)?|roll(?:ed)? ?back\w*|"
                              r"revert\w*|fail(?:ed)? ?over|all[ -]clear|back to normal|stabili[sz]\w*|closed)(?![\w])",
                              re.I)
DOCUMENTATION = re.compile(r"(?<![\w])(?:docs?|document\w*|runbooks?|wiki\w*|playbooks?)(?![\w])", re.I)


def _words(text: Any) -> list[str]:
    return WORD.findall(text) if isinstance(text, str) else []


def _substantive(text: Any, min_words: int = 2) -> bool:
    """Text with at least `min_words` words that is not, as a whole, a placeholder."""
    return isinstance(text, str) and len(_words(text)) >= min_words and not PLACEHOLDER.match(text.strip())


def _summary_complete(doc: Mapping[str, Any]) -> bool:
    """Says what happened (SUMMARY_MIN_WORDS words beyond the postmortem's title) and its impact."""
    text = doc.get("executive_summary")
    if not _substantive(text):
        return False
    title = {w.lower() for w in _words(doc.get("title"))} | {"postmortem"}
    beyond = [w for w in _words(text) if w.lower() not in title]
    return len(beyond) >= SUMMARY_MIN_WORDS and bool(IMPACT.search(text))


def _entry_text(entry: Any) -> str:
    if isinstance(entry, Mapping):
        return " ".join(str(v) for k, v in entry.items() if k != "timestamp" and isinstance(v, str))
    return entry if isinstance(entry, str) else ""


def _timeline_complete(doc: Mapping[str, Any]) -> bool:
    """At least one detection event and one resolution or mitigation event."""
    timeline = doc.get("timeline")
    texts = [_entry_text(e) for e in timeline] if isinstance(timeline, list) else []
    return any(DETECTION_WORDS.search(t) for t in texts) and any(RESOLUTION_WORDS.search(t) for t in texts)


def _rca_complete(doc: Mapping[str, Any]) -> bool:
    """Names a cause: not a placeholder, nor a text saying the root cause is not known."""
    text = doc.get("root_cause_analysis")
    return _substantive(text) and not UNKNOWN_CAUSE.search(text)


def concrete_item(item: Any) -> bool:
    """An action item someone will do: a title, an owner, a due date and a priority, not abandoned (WONT_DO),
    and not only a generic LOW documentation chore (its category or title about docs or a runbook)."""
    if not isinstance(item, Mapping) or not _substantive(item.get("title")):
        return False
    if not str(item.get("assignee") or "").strip() or not item.get("due_date") or not item.get("priority"):
        return False
    if item.get("status") == "WONT_DO":
        return False
    generic = item.get("priority") == "LOW" and bool(
        DOCUMENTATION.search(str(item.get("category") or "")) or DOCUMENTATION.search(str(item.get("title") or "")))
    return not generic


SECTION_COMPLETE = {
    "executive_summary": _summary_complete,
    "timeline": _timeline_complete,
    "root_cause_analysis": _rca_complete,
    "impact_assessment": lambda d: _substantive(d.get("impact_assessment"), 3),
    "lessons_learned": lambda d: _substantive(d.get("lessons_learned")),
    "action_items": lambda d: isinstance(d.get("action_items"), list) and any(
        concrete_item(i) for i in d["action_items"]),
}


def complete_sections(doc: Mapping[str, Any]) -> list[str]:
    """The required sections a reviewer would call complete (README "completion_percentage")."""
    return [s for s in REQUIRED_SECTIONS if SECTION_COMPLETE[s](doc)]


def completion_percentage(doc: Mapping[str, Any]) -> float:
    """The share (0-100, one decimal) of the six required sections that are complete (`complete_sections`)."""
    return round(100.0 * len(complete_sections(doc)) / len(REQUIRED_SECTIONS), 1)


def is_overdue(doc: Mapping[str, Any], now=None) -> bool:
    due = doc.get("due_date")
    return bool(due) and due < (now or utcnow()) and doc.get("status") not in CLOSED_STATUSES


def default_due_date(bk: Backends, *, severity: str, incident: Mapping[str, Any], now):
    """The configured number of days for the severity after the incident's resolution (after `now`, the
    postmortem's creation, when it is unresolved), but never less than `postmortem_due_min_days` after `now`: a
    postmortem started days after the incident (the generation command looks 7 days back) is not overdue
    when it is created; one started within a day of the resolution keeps the severity's date."""
    days = bk.settings.postmortem_due_days.get(severity, bk.settings.postmortem_due_days.get("MEDIUM", 10))
    return max((incident.get("resolved_at") or now) + timedelta(days=days),
               now + timedelta(days=bk.settings.postmortem_due_min_days))
