"""Automated postmortem drafts, written only from what the incident data holds (pure: no I/O).

`draft(incident, similar=..., articles=..., similar_postmortems=..., patterns=...)` writes the six sections from the
incident document (its fields and timeline), the similar past incidents, the knowledge base articles
that matched the incident and the postmortems of similar past incidents given; a section with no
evidence is left empty and not listed in `auto_generated_sections`; only similar incidents detected
before this one and similar enough are cited (`earlier_similar`); each section's evidence score and what it
was built from are kept in `Draft.evidence` and `Draft.built_from`. Every value the draft computes
(durations, due dates, links) is kept in `Draft.computed`, so `unsupported_facts(text,
source_tokens(...))` can check that every number, timestamp, service and person the draft names
occurs in the source data. Action items are owned by the incident's assignee (never a service account), else its
first team; their priority follows the gap and the severity (GAP_PRIORITY); they are due ITEM_DUE_DAYS after the
later of the resolution and `now` (the draft's writing), so never already past when written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from app.users.service import Bot

SECTIONS = ("executive_summary", "timeline", "root_cause_analysis", "impact_assessment", "lessons_learned",
            "action_items")
TEXT_SECTIONS = ("executive_summary", "root_cause_analysis", "impact_assessment", "lessons_learned")

SLOW_DETECTION = timedelta(minutes=15)  # detected_at this long after the first event: slow detection
LONG_APPROVAL = timedelta(minutes=30)   # an ApprovalRequired event this long before the next step
SAME_ROOT_CAUSE = 0.5                   # word overlap (Jaccard) from which two root causes are the same
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
# a recovery step done by hand (a Mitigation/Resolution event, or the recorded resolution): toil that could be
# automated. Matched case-insensitively at word starts; a step that says it was automatic is not one.
MANUAL_STEP_RE = re.compile(
    r"(?<![a-z0-9])(?:manual(?:ly)?|by hand|hand[- ]?(?:edit|patch|ran|run|fix)\w*|physical(?:ly)? access|"
    r"restart(?:ed|ing)?|reboot(?:ed|ing)?|bounc(?:e|ed|ing)|power[- ]?cycl\w*|"
    r"roll(?:ed|ing)? ?back|reverted|reverting|fail(?:ed|ing)? ?over|killed|killing|flush(?:ed|ing)?|purg(?:e|ed|ing)|"
    r"clear(?:ed|ing)? (?:the |a )?(?:cache|queue|disk|logs?|locks?)|"
    r"(?:remov|delet)(?:e|ed|ing) (?:the |a |old |stale )?(?:log|file|lock|temp)\w*|"
    r"re-?ran|re-?run(?:ning)?|re-?start(?:ed|ing)?|scal(?:e|ed|ing) (?:up|out)|drain(?:ed|ing)?)(?![a-z0-9])", re.I)
AUTOMATIC_RE = re.compile(r"(?<![a-z0-9])(?:automatic\w*|auto-?\w+|self-?heal\w*)", re.I)
MANUAL_STEPS_QUOTED = 3                 # manual steps quoted in the automation item's description
ITEM_CAUSE_OVERLAP = 0.5                # share of an action item title's words found in the root cause ...
ITEM_CAUSE_MIN_WORDS = 2                # ... and at least this many shared words: the item was about this cause
FIRST_SENTENCE_MAX = 300                # characters quoted from a similar postmortem's root cause analysis
MIN_SIMILARITY = 0.35                   # a similar incident's 0-1 score (`SIMILARITY_KEY`) from which it is cited
SIMILARITY_KEY = "similarity"           # where the caller puts that score in a similar incident's document
MIN_DURATION = timedelta(minutes=1)     # a shorter detection-to-resolution span is a data artefact, not stated
WORKFLOW_SOURCES = ("incident-service",)  # events the incident workflow records itself (status changes):
#                                           not evidence of what happened
INFORMATIVE_WORDS = 2                   # content words a resolution needs to count as evidence ("It went away": 0)
VAGUE_WORDS = {"went", "away", "itself", "gone", "resolved", "fixed", "recovered", "restored", "self", "somehow",
               "magically", "works", "working", "again", "now", "issue", "problem", "service", "things", "everything",
               "normal", "okay", "fine", "stopped", "happening", "anymore", "just", "its", "own", "automatically",
               "cleared", "it"}
# what the data marks as unknown (a placeholder, never quoted as a fact): "the public postmortem does not
# say what restored service", "not recorded", "n/a", "unknown"...
UNKNOWN_RE = re.compile(r"\bdo(?:es)?(?: not|n't) say\b|\bnot (?:stated|recorded|known|documented|disclosed|given)\b|"
                        r"^\s*(?:n/?a|none|unknown|tbd|\?+|-+)\s*\.?\s*$", re.I)
# the weight of each fact in the executive summary's evidence (a title alone says little)
SUMMARY_WEIGHTS = {"title": 0.1, "description": 0.25, "severity": 0.05, "services": 0.2, "duration": 0.2,
                   "resolution": 0.2}

# Who detected the incident, read from the earliest Detection event (else the first event), matched
# case-insensitively at the start of a word ("customer" also matches "customers"):
HUMAN_SOURCES = ("customer", "end user", "end-user", "user report", "manual", "support", "helpdesk", "human",
                 "reporter")  # in the event's source: a person or a manual report sent it
HUMAN_REPORT_WORDS = ("reported by", "user report", "users report", "customer report", "customers report",
                      "customer complaint", "customers complain", "users complain", "support ticket",
                      "manual report", "manually report", "reported manually", "noticed by")
# (in its message: it relays a report; not "customers could not pay" nor "a manual operation failed")
ALERT_WORDS = ("alert", "monitor", "prometheus", "datadog", "pagerduty", "opsgenie", "grafana", "cloudwatch",
               "nagios", "zabbix", "sentry", "new relic", "newrelic")  # in source or message: an alert fired
# words that say nothing about a cause when matching action item titles to a root cause
STOP_WORDS = {"the", "and", "for", "with", "from", "into", "onto", "that", "this", "was", "were", "are", "not",
              "its", "has", "had", "our", "add", "fix", "make", "use", "new", "all", "when", "after", "before"}

# links, as the REST API serves them (incidents by name, articles by slug, postmortems by id)
INCIDENT_LINK = "/api/v1/incidents/{}/"
POSTMORTEM_LINK = "/api/knowledge/postmortems/{}/"
ARTICLE_LINK = "/api/knowledge/knowledge-articles/{}/"
RUNBOOK_TYPE = "RUNBOOK"  # article_type of a runbook
# the fields of articles and similar postmortems that count as source data (what the draft quotes)
ARTICLE_FIELDS = ("_id", "title", "slug", "article_type", "related_services")
POSTMORTEM_FIELDS = ("_id", "title", "incident", "root_cause_analysis", "lessons_learned", "action_items")
PATTERN_FIELDS = ("_id", "name", "frequency", "triggers", "actions")  # validated learning patterns matched

NOT_IMPACT = {"confidence", "score", "actor"}  # detail keys that are not impact figures
EVENT_WORDS = {"Detection": "Detection", "Analysis": "Analysis", "RunbookMatch": "Runbook matched",
               "ApprovalRequired": "Approval required", "Notification": "Notification", "Mitigation": "Mitigation",
               "Resolution": "Resolution", "Comment": "Comment", "StatusChange": "Status change",
               "Escalation": "Escalation"}


@dataclass
class Draft:
    executive_summary: str = ""
    timeline: list[dict[str, Any]] = field(default_factory=list)
    root_cause_analysis: str = ""
    impact_assessment: str = ""
    lessons_learned: str = ""
    action_items: list[dict[str, Any]] = field(default_factory=list)
    generation_confidence: float = 0.0
    auto_generated_sections: list[str] = field(default_factory=list)
    evidence: dict[str, float] = field(default_factory=dict)  # section -> 0-1 evidence score
    built_from: dict[str, list[str]] = field(default_factory=dict)  # section -> what it was written from
    computed: set[str] = field(default_factory=set)           # values the draft derived (allowed facts)

    def sections(self) -> dict[str, Any]:
        """The sections written (only those in auto_generated_sections)."""
        return {s: getattr(self, s) for s in self.auto_generated_sections}

    def text(self) -> str:
        """Everything the draft says, as one text (what the fact check reads)."""
        parts = [getattr(self, s) for s in TEXT_SECTIONS]
        for e in self.timeline:
            parts.append(" ".join(str(e.get(k) or "") for k in ("timestamp", "event", "description", "actor")))
        for i in self.action_items:
            parts.append(" ".join(str(i.get(k) or "") for k in
                                  ("title", "description", "priority", "assignee", "due_date", "category")))
        return "\n".join(p for p in parts if p)


# --- small helpers ---------------------------------------------------------------------------

def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and value:
        try:
            return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _iso(value: datetime) -> str:
    value = value.astimezone(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return value.strftime(fmt)


def _duration(delta: timedelta, computed: set[str]) -> str:
    """`2 days 3 hours 5 minutes`, with each number recorded as a computed value."""
    total = max(0, int(delta.total_seconds()))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    if not words:
        words = [f"{seconds} second{'s' if seconds != 1 else ''}"]
    for w in words:
        computed.add(w.split()[0])
    return " ".join(words)


def _num(value: float | int) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", (text or "").lower()) if len(w) > 2}


def _same_cause(a: str, b: str) -> bool:
    wa, wb = _words(a), _words(b)
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= SAME_ROOT_CAUSE


def _about_cause(title: str, cause: str) -> bool:
    """An action item title shares most of its (meaningful) words with the root cause."""
    wt, wc = _words(title) - STOP_WORDS, _words(cause) - STOP_WORDS
    shared = wt & wc
    return len(shared) >= ITEM_CAUSE_MIN_WORDS and len(shared) / len(wt) >= ITEM_CAUSE_OVERLAP


def _mentions(text: str, words: Iterable[str]) -> bool:
    """One of `words` starts a word of `text` (case-insensitive)."""
    return any(re.search(r"(?<![a-z0-9])" + re.escape(w), (text or "").lower()) for w in words)


def _human_report(e: Mapping[str, Any]) -> bool:
    return _mentions(str(e.get("source") or ""), HUMAN_SOURCES) or _mentions(str(e.get("message") or ""),
                                                                               HUMAN_REPORT_WORDS)


def _alerting(e: Mapping[str, Any]) -> bool:
    return not _human_report(e) and _mentions(f"{e.get('source') or ''} {e.get('message') or ''}", ALERT_WORDS)


def _clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters at a space (so no word or identifier is cut in two)."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    cut = text[:limit + 1].rsplit(" ", 1)[0] if " " in text[:limit + 1] else ""
    return (cut.rstrip(" ,;:") + " …") if cut else ""


def _first_sentence(text: str) -> str:
    """The first sentence of a (markdown) text, headings left out, at most FIRST_SENTENCE_MAX characters."""
    lines = [x.strip() for x in (text or "").splitlines() if x.strip() and not x.strip().startswith("#")]
    flat = re.sub(r"^[-*>\s]+", "", " ".join(lines))
    m = re.match(r"(.+?[.!?])(?=\s|$)", flat)
    return _clip(m.group(1) if m else flat, FIRST_SENTENCE_MAX)


def _link(template: str, key: Any, computed: set[str]) -> str:
    """A REST link (recorded as a computed value)."""
    link = template.format(quote(str(key), safe=""))
    computed.add(link)
    return link


def _figures(details: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Numeric values in event details, with their (dotted) keys."""
    out: list[tuple[str, Any]] = []
    if isinstance(details, Mapping):
        for k, v in details.items():
            key = f"{prefix}{k}"
            if isinstance(v, bool) or k in NOT_IMPACT:
                continue
            if isinstance(v, (int, float)):
                out.append((key, v))
            elif isinstance(v, (Mapping, list)):
                out.extend(_figures(v, key + "."))
    elif isinstance(details, list):
        for v in details:
            out.extend(_figures(v, prefix))
    return out


def _unknown(text: str) -> bool:
    """The value is a placeholder for something the data does not know."""
    return bool(UNKNOWN_RE.search(text or ""))


def _known(text: Any) -> str:
    """The text, stripped; empty when it is empty or a placeholder for something unknown."""
    text = str(text or "").strip()
    return "" if _unknown(text) else text


def _sentence(text: str) -> str:
    """The text as a sentence: ending with `.`, `!`, `?` (or `…`)."""
    text = (text or "").rstrip()
    return text if not text or text[-1] in ".!?…" else text + "."


def _informative(resolution: str) -> bool:
    """A resolution that says what was done ("Raised pool size"), not only that it stopped ("It went away")."""
    return len(_words(resolution) - STOP_WORDS - VAGUE_WORDS) >= INFORMATIVE_WORDS


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


def _manual(text: str) -> bool:
    """A recovery step done by hand (MANUAL_STEP_RE), unless it says it was automatic and not manual."""
    if not MANUAL_STEP_RE.search(text or ""):
        return False
    return not AUTOMATIC_RE.search(text) or bool(re.search(r"(?<![a-z0-9])(?:manual|by hand)", text, re.I))


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", (text or "").lower()))


def _repeats(paragraph: str, title: str) -> bool:
    """A paragraph of the description that says nothing the title does not (the same words, or part of them)."""
    p = _norm(paragraph)
    return bool(p) and f" {p} " in f" {_norm(title)} "


def _beyond_title(paragraph: str, title: str) -> str:
    """A paragraph of the description without its leading sentences that only repeat the title."""
    rest = (paragraph or "").strip()
    while m := re.match(r"(.+?[.!?])(?:\s+|$)", rest, re.S):
        if not _repeats(m.group(1), title):
            break
        rest = rest[m.end():].strip()
    return "" if _repeats(rest, title) else rest


def _restates(message: Any, root_cause: str) -> bool:
    """An Analysis event that only repeats the recorded root cause ("Root cause: <the same words>")."""
    said = re.sub(r"^\s*root cause\s*:?\s*", "", str(message or ""), flags=re.I)
    return bool(root_cause) and _norm(said) == _norm(root_cause)


def _when(doc: Mapping[str, Any]) -> datetime | None:
    """When an incident happened: detected_at, else created_at."""
    return _utc(doc.get("detected_at")) or _utc(doc.get("created_at"))


def earlier_similar(incident: Mapping[str, Any], similar: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The similar incidents a draft may cite: not the incident itself, strictly earlier than it (detected
    before it was detected; created_at when either has no detected_at; never when a time is missing), and,
    when their score is given (`SIMILARITY_KEY`), at least MIN_SIMILARITY similar."""
    at = _when(incident)
    out = []
    for s in similar:
        when, score = _when(s), s.get(SIMILARITY_KEY)
        if s.get("_id") == incident.get("_id") or at is None or when is None or when >= at:
            continue
        if isinstance(score, (int, float)) and score < MIN_SIMILARITY:
            continue
        out.append(dict(s))
    return out


def _workflow(e: Mapping[str, Any]) -> bool:
    """An event the incident workflow recorded itself (a status change): it says nothing of what happened."""
    return str(e.get("source") or "") in WORKFLOW_SOURCES


def events(incident: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The incident's events in time order (ties keep their order), de-duplicated on type, message
    and timestamp."""
    seen, out = set(), []
    timed = [e for e in incident.get("timeline") or [] if isinstance(e, Mapping) and _utc(e.get("timestamp"))]
    for e in sorted(timed, key=lambda e: _utc(e["timestamp"])):
        key = (e.get("type"), (e.get("message") or "").strip(), _utc(e["timestamp"]))
        if key not in seen:
            seen.add(key)
            out.append(dict(e))
    return out


# --- the draft -------------------------------------------------------------------------------

def draft(incident: Mapping[str, Any], *, similar: Iterable[Mapping[str, Any]] = (),
          articles: Iterable[Mapping[str, Any]] = (),
          similar_postmortems: Iterable[Mapping[str, Any]] = (),
          patterns: Iterable[Mapping[str, Any]] = (), now: datetime | None = None,
          service_accounts: Iterable[str] = ()) -> Draft:
    """The draft from the incident, the similar past incidents, the knowledge base articles that
    matched it (`_id`, `title`, `slug`, `article_type`, `related_services`) and the postmortems of
    similar past incidents (`_id`, `title`, `incident`, `root_cause_analysis`, `action_items`). The
    incident itself and its own postmortem are left out of `similar` and `similar_postmortems`.
    `patterns`: the validated learning patterns whose triggers the incident shows (PATTERN_FIELDS).
    `now`: when the draft is written (default: the clock), from which action items are due when it is later
    than the resolution; `service_accounts`: usernames that are no person (never an action item's owner)."""
    now = (_utc(now) or datetime.now(timezone.utc)).replace(microsecond=0)
    given = [s for s in similar if s.get("_id") != incident.get("_id")]
    similar = earlier_similar(incident, given)
    left_out = {s.get("_id") for s in given if s.get("_id")} - {s.get("_id") for s in similar}
    articles = list({a.get("_id") or id(a): a for a in articles if (a.get("title") or "").strip()}.values())
    pms = [p for p in similar_postmortems if (p.get("title") or "").strip()
           and not (incident.get("_id") and p.get("incident") == incident.get("_id"))
           and not (p.get("incident") and p.get("incident") in left_out)]  # of a later or dissimilar incident
    d = Draft()
    computed = d.computed
    built = d.built_from
    evs = events(incident)
    real = [e for e in evs if not _workflow(e)]  # what people and tools recorded (not status changes)
    title = (incident.get("title") or "").strip()
    description = "\n\n".join(x for x in (_beyond_title(p, title) for p in
                                           re.split(r"\n\s*\n", _known(incident.get("description"))))
                              if x and not _unknown(x))
    severity = incident.get("severity")
    services = [s for s in incident.get("affected_services") or [] if s]
    teams = [t for t in incident.get("affected_teams") or [] if t]
    detected, resolved = _utc(incident.get("detected_at")), _utc(incident.get("resolved_at"))
    duration = (_duration(resolved - detected, computed) if detected and resolved
                and resolved - detected >= MIN_DURATION else None)
    root_cause = _known(incident.get("root_cause"))
    resolution = _known(incident.get("resolution"))
    unknown_fix = bool((incident.get("resolution") or "").strip()) and not resolution
    name = incident.get("name") or ""

    # timeline
    d.timeline = [{"timestamp": _iso(_utc(e["timestamp"])), "event": EVENT_WORDS.get(e.get("type"), e.get("type")),
                   "description": e.get("message") or "", "actor": e.get("source") or None} for e in evs]
    d.evidence["timeline"] = min(1.0, len(real) / 3)
    built["timeline"] = [f"{len(evs)} timeline events"] + (
        [f"{len(evs) - len(real)} of them status changes recorded by the incident workflow"] if len(real) < len(evs)
        else [])

    # executive summary
    facts, used = [], []
    lead = f"{name}: {title}" if name else title
    facts.append(_sentence(lead))
    used.append("title")
    if description:
        facts.append(_sentence(description))
        used.append("description")
    if severity:
        facts.append(f"Severity: {severity}.")
        used.append("severity")
    if services:
        facts.append(f"Affected services: {', '.join(services)}.")
    if teams:
        facts.append(f"Affected teams: {', '.join(teams)}.")
    if services or teams:
        used.append("services")
    if detected:
        facts.append(f"Detected at {_iso(detected)}" + (f", resolved at {_iso(resolved)}." if resolved else "."))
    if duration:
        facts.append(f"Detection to resolution: {duration}.")
        used.append("duration")
    if incident.get("status"):
        facts.append(f"Status: {incident['status']}.")
    if resolution:
        facts.append(f"Resolution: {_sentence(resolution)}" if _informative(resolution)
                     else f"Resolution as recorded: \"{resolution}\" (it does not say what was done).")
        if _informative(resolution):
            used.append("resolution")
    elif unknown_fix:
        facts.append("What restored service is not recorded.")
    d.executive_summary = " ".join(f for f in facts if f) if title else ""
    d.evidence["executive_summary"] = round(sum(SUMMARY_WEIGHTS[k] for k in used), 4) if title else 0.0
    built["executive_summary"] = used if title else []

    # root cause analysis
    parts, analysis = [], [e for e in evs if e.get("type") == "Analysis"
                           and not _restates(e.get("message"), root_cause)]
    analysis.sort(key=lambda e: -(e.get("details") or {}).get("confidence", 0)
                  if isinstance((e.get("details") or {}).get("confidence"), (int, float)) else 0)
    if root_cause:
        parts.append(_sentence(f"Root cause: {root_cause}"))
    else:  # said whenever the section is written from other evidence (analysis, similar incidents)
        parts.append("The root cause is not recorded.")
    if analysis:
        parts.append("Analysis during the incident:\n" + "\n".join(
            f"- {_iso(_utc(e['timestamp']))} ({e.get('source')}): {_sentence(e.get('message') or '')}"
            for e in analysis))
    past = [s for s in similar if _known(s.get("root_cause"))]
    found = [(p, _first_sentence(p.get("root_cause_analysis") or "")) for p in pms]
    found = [(p, f) for p, f in found if f and not _unknown(f)]
    if root_cause or analysis or past or found:
        if past:
            parts.append("What similar earlier incidents found (detected before this one):\n" + "\n".join(
                f"- {s.get('name') or s.get('_id')} ({s.get('title', '')}{_incident_link(s, computed)}): "
                f"{_sentence(_known(s.get('root_cause')))}" for s in past))
        else:
            parts.append("No similar incident detected before this one was found to compare with.")
        if found:
            parts.append("What postmortems of similar incidents found (their words, about earlier incidents, not "
                         "this one):\n" + "\n".join(f"- {_postmortem_ref(p, computed, similar)}: {_sentence(f)}"
                                                     for p, f in found))
    has_rca = bool(root_cause or analysis or past or found)
    d.root_cause_analysis = "\n\n".join(parts) if has_rca else ""
    d.evidence["root_cause_analysis"] = min(1.0, (0.6 if root_cause else 0.0) + (0.25 if analysis else 0.0)
                                            + (0.15 if past or found else 0.0)) if has_rca else 0.0
    built["root_cause_analysis"] = (["root_cause"] * bool(root_cause)
                                    + [f"{len(analysis)} Analysis events"] * bool(analysis)
                                    + [f"similar earlier incident {s.get('name') or s.get('_id')}" for s in past]
                                    + [f"postmortem {p.get('_id')}" for p, _ in found]) if has_rca else []

    # impact assessment
    figures = [(k, v) for e in evs for k, v in _figures(e.get("details"))]
    seen_fig: set[tuple[str, str]] = set()
    figures = [(k, v) for k, v in figures if (k, _num(v)) not in seen_fig and not seen_fig.add((k, _num(v)))]
    lines = []
    if duration:
        lines.append(f"Duration from detection to resolution: {duration}.")
    if services:
        lines.append(f"Affected services: {', '.join(services)}.")
    if teams:
        lines.append(f"Affected teams: {', '.join(teams)}.")
    if figures:
        lines.append("Impact figures recorded in the timeline:\n" + "\n".join(f"- {k}: {_num(v)}" for k, v in figures))
    if lines:
        if severity:
            lines.insert(0, f"Severity: {severity}.")
        d.impact_assessment = "\n".join(lines)
    got = [bool(duration), bool(services or teams), bool(figures)]
    d.evidence["impact_assessment"] = (sum(got) / len(got)) if lines else 0.0
    built["impact_assessment"] = ((["detected_at and resolved_at"] * bool(duration)
                                   + ["services"] * bool(services or teams)
                                   + [f"{len(figures)} figures in event details"] * bool(figures)) if lines else [])

    # lessons learned and action items, from the gaps the data shows
    lessons: list[str] = []
    items: list[dict[str, Any]] = []
    base = max(resolved, now) if resolved else now  # never due before the draft is written
    owner = item_owner(incident, service_accounts)
    where = services[0] if services else None

    def item(title_: str, description_: str, gap: str, category: str) -> None:
        priority = item_priority(gap, severity)
        due = _iso(base + timedelta(days=ITEM_DUE_DAYS[priority]))
        computed.add(due)
        items.append({"title": title_, "description": description_, "priority": priority, "assignee": owner,
                      "due_date": due, "category": category})

    # missing monitoring: the earliest Detection event (else the first event) relays a human report
    detections = [e for e in evs if e.get("type") == "Detection"] or evs[:1]
    reported = detections[0] if detections and _human_report(detections[0]) else None
    alert = next((e for e in evs if e.get("type") == "Detection" and _alerting(e)), None)
    if evs and detected:
        first = _utc(evs[0]["timestamp"])
        if detected - first >= SLOW_DETECTION:
            lag = _duration(detected - first, computed)
            lessons.append(f"Slow detection: the first event ({_iso(first)}) came {lag} before the incident was "
                           f"detected ({_iso(detected)}).")
            if not reported:  # else the alert item below covers it
                item("Detect this failure sooner", f"The incident was detected {lag} after its first event; add "
                     f"or tune alerting{' for ' + where if where else ''} so it is caught when it starts.",
                     "slow_detection", "Monitoring")
    if reported:
        said = _clip(reported.get("message") or "", 200)
        report = f"{reported.get('source') or 'unknown source'} at {_iso(_utc(reported['timestamp']))}" + (
            f": \"{said}\"" if said else "")
        later = f"{_iso(_utc(alert['timestamp']))}: \"{_clip(alert.get('message') or '', 200)}\"" if alert else ""
        lessons.append(f"Detection relied on a human report ({report}); " + (
            f"an alert fired only later ({later})." if alert else "no alert fired (none is recorded in the timeline)."))
        symptom = f"\"{said}\"" if said else ", ".join(services) or (f"\"{title}\"" if title else "this failure")
        on = f" on {', '.join(services)}" if said and services else ""
        item(_clip(f"Add an alert for {symptom}{on}", 500) or "Add an alert for this failure",
             "A person reported the incident before any alert did; add an alert that catches this "
             "symptom before users report it" + ("." if not alert else ", or make the alert that fired later "
                                                  "fire sooner."), "missing_monitoring", "Monitoring")
    runbooks = [e for e in evs if e.get("type") == "RunbookMatch"]
    if articles:
        named = "; ".join(_article_ref(a, computed) for a in articles)
        lessons.append(f"Knowledge base articles that matched this incident (the runbooks and guides responders "
                       f"could follow): {named}.")
        written = [a for a in articles if _kind(a).upper() == RUNBOOK_TYPE]
        if written and not runbooks:
            which = "; ".join(_article_ref(a, computed) for a in written)
            lessons.append(f"A runbook existed but was not used: {which} matched this incident, but the timeline "
                           "records no runbook match.")
            item("Make responders use the existing runbook for this failure", f"The runbook {which} matched this "
                 "incident but the timeline shows it was not used; link it from the alerts and the triage steps "
                 "for this failure, and check it is found when the incident opens.", "unused_runbook", "Process")
    if real and not runbooks and not articles:  # a timeline to judge by, beyond status changes
        lessons.append("No runbook matched this incident: responders had no written procedure to follow.")
        item("Write a runbook for this failure", f"No runbook matched \"{title}\"; document the diagnosis and "
             "the steps that resolved it" + (f" ({resolution})" if resolution and _informative(resolution) else "")
             + ".", "no_runbook", "Documentation")
    for e in evs:
        if e.get("type") != "ApprovalRequired":
            continue
        at = _utc(e["timestamp"])
        nxt = next((_utc(x["timestamp"]) for x in evs if x.get("type") != "ApprovalRequired"
                    and _utc(x["timestamp"]) > at), None)
        if nxt and nxt - at >= LONG_APPROVAL:
            wait = _duration(nxt - at, computed)
            lessons.append(f"Long approval wait: {wait} passed between the approval request at {_iso(at)} "
                           f"(\"{e.get('message')}\") and the next step.")
            item("Shorten the approval path", f"An approval request waited {wait}; agree who approves this kind "
                 "of change during an incident, or approve it in advance.", "approval_wait", "Process")
    # a manual fix that could be automated: a Mitigation or Resolution step done by hand (or the recorded
    # resolution, when no event already says it)
    steps = [(f"at {_iso(_utc(e['timestamp']))}" + (f", {e['source']}" if e.get("source") else "")
              + f": \"{_clip(e.get('message') or '', 200)}\"", _clip(e.get("message") or "", 150))
             for e in real if e.get("type") in ("Mitigation", "Resolution") and _manual(e.get("message") or "")]
    if resolution and _manual(resolution) and not any(_norm(resolution) == _norm(e.get("message") or "")
                                                      for e in real if e.get("type") in ("Mitigation", "Resolution")):
        steps.append((f"the recorded resolution: \"{_clip(resolution, 200)}\"", _clip(resolution, 150)))
    if steps:
        quoted = "; ".join(q for q, _ in steps[:MANUAL_STEPS_QUOTED])
        lessons.append(f"Recovery relied on a manual step ({quoted}): a person had to act before it recovered; "
                       "the step is a candidate for automation.")
        item(_clip(f"Automate the manual recovery step: \"{steps[0][1]}\"", 500) or "Automate the manual recovery step",
             f"Recovery needed a manual step ({quoted}); automate this step{' for ' + where if where else ''} (with "
             "the safety checks a person would apply), or remove the need for it, so the next occurrence recovers "
             "without waiting for a person.", "manual_fix", "Automation")
    # root cause seen before: a similar incident with the same root cause, or a similar postmortem
    # (of such an incident, or with action items about this root cause) and what it set out to do
    recurring = [s for s in similar if root_cause and _same_cause(root_cause, s.get("root_cause") or "")]
    again = {s.get("_id") for s in recurring if s.get("_id")}
    earlier = []
    for p in pms:
        its = [i for i in p.get("action_items") or [] if isinstance(i, Mapping) and (i.get("title") or "").strip()]
        if root_cause and its and (p.get("incident") in again or any(_about_cause(i["title"], root_cause)
                                                                      for i in its)):
            earlier.append((p, its))
    if recurring or earlier:
        names = ", ".join(str(s.get("name") or s.get("_id")) for s in recurring)
        said = []
        if recurring:
            said.append(f"{names} had the same root cause, so the earlier fix did not prevent a recurrence.")
        for p, its in earlier:
            todo = "; ".join(i["title"].strip() + (f" ({i['status']})" if i.get("status") else "") for i in its)
            said.append(f"{'The' if said else 'the'} same cause was seen before in "
                        f"{_postmortem_ref(p, computed, similar)}; "
                        f"its action items: {todo}.")
        lessons.append("Root cause seen before: " + " ".join(said))
        where_else = " and ".join(x for x in [names, ", ".join(_postmortem_ref(p, computed, similar)
                                                              for p, _ in earlier)] if x)
        item("Fix the recurring root cause", f"The root cause \"{root_cause}\" was also found in {where_else}; "
             "address it for good rather than mitigating it again" + (
                 ", and find out why the earlier action items did not prevent it." if earlier else "."),
             "recurring_cause", "Technical Improvement")
    for p in patterns:  # a validated pattern the incident matches: the cause is a known, recurring one
        did = "; ".join(a for a in p.get("actions") or [] if isinstance(a, str)) or "no actions recorded"
        lessons.append(f"Root cause seen before: this incident matches the validated learning pattern "
                       f"\"{p.get('name')}\", seen {p.get('frequency') or 0} times; what worked then: {did}.")
        if not (recurring or earlier) and "Fix the recurring root cause" not in {i["title"] for i in items}:
            item("Fix the recurring root cause", f"This incident matches the validated learning pattern "
                 f"\"{p.get('name')}\", seen {p.get('frequency') or 0} times; apply what worked then ({did}) and "
                 "address the cause for good rather than mitigating it again.", "recurring_cause",
                 "Technical Improvement")
    for e in runbooks:
        det = e.get("details") or {}
        label = det.get("runbook") or det.get("name") if isinstance(det, Mapping) else None
        what = f"{label}" if isinstance(label, str) and label else e.get("message")
        lessons.append(f"Runbook matched: {what}.")
        item(f"Review the runbook that matched: {what}"[:500], "Check that it covered what was done in this "
             "incident and update it.", "review_runbook", "Documentation")
    if incident.get("duplicate_of"):  # what it teaches belongs to the incident it duplicates
        lessons = [f"This incident was closed as a duplicate of incident {incident['duplicate_of']}: its lessons and "
                   "action items belong to that incident's postmortem, not to this one."]
        items.clear()
    d.lessons_learned = "\n".join(f"- {x}" for x in lessons)
    d.action_items = items
    strength = 1.0 if real and (detected or similar or pms) else 0.5
    d.evidence["lessons_learned"] = strength if lessons else 0.0
    d.evidence["action_items"] = strength if items else 0.0
    built["lessons_learned"] = [x.split(":")[0] for x in lessons]
    built["action_items"] = list(built["lessons_learned"]) if items else []  # each item answers a lesson

    d.auto_generated_sections = [s for s in SECTIONS if _has(getattr(d, s))]
    for s in SECTIONS:
        if s not in d.auto_generated_sections:
            setattr(d, s, [] if s in ("timeline", "action_items") else "")
            d.evidence[s] = 0.0
            built[s] = []
    d.generation_confidence = round(sum(d.evidence.values()) / len(SECTIONS), 2)
    return d


def _has(value: Any) -> bool:
    return bool(value.strip()) if isinstance(value, str) else bool(value)


def _incident_link(s: Mapping[str, Any], computed: set[str]) -> str:
    """`, <link>` of a similar incident; none without a name (the REST API finds incidents by name)."""
    return f", {_link(INCIDENT_LINK, s['name'], computed)}" if s.get("name") else ""


def _postmortem_ref(p: Mapping[str, Any], computed: set[str], similar: Iterable[Mapping[str, Any]] = ()) -> str:
    """A similar postmortem by title, the similar incident it is about (when given) and its link."""
    of = next((s.get("name") for s in similar if p.get("incident") and s.get("_id") == p.get("incident")), None)
    link = f" ({_link(POSTMORTEM_LINK, p['_id'], computed)})" if p.get("_id") else ""
    return f"postmortem \"{p['title'].strip()}\"" + (f" of {of}" if of else "") + link


def _kind(a: Mapping[str, Any]) -> str:
    """An article's type as stored (`RUNBOOK`), also when given as an enum."""
    kind = a.get("article_type")
    return str(getattr(kind, "value", kind) or "")


def _article_ref(a: Mapping[str, Any], computed: set[str]) -> str:
    """An article by title and type, with its link (the REST API finds articles by slug), else its id."""
    kind = f"{_kind(a)}, " if _kind(a) else ""
    where = _link(ARTICLE_LINK, a["slug"], computed) if a.get("slug") else f"article {a.get('_id')}"
    return f"\"{a['title'].strip()}\" ({kind}{where})"


# --- the fact check --------------------------------------------------------------------------

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
TOKEN = re.compile(r"@?[A-Za-z0-9][A-Za-z0-9._/@-]*[A-Za-z0-9]|[A-Za-z0-9]")
# a word right after these names a person, a service or a team
NAMING = re.compile(r"\b(?:by|assignee|assigned to|owner|owned by|on-call|paged)\s*:?\s+(@?[A-Za-z][\w.@-]*)",
                    re.I)
BEFORE_SERVICE = re.compile(r"\b(@?[A-Za-z][\w.@-]*)\s+(?:service|team)\b", re.I)
LISTED = re.compile(r"\b(?:services|teams)\s*:\s*([^\n.]+(?:\.[A-Za-z0-9][^\n.]*)*)", re.I)
# words that may precede "service"/"team" or follow "by" in the draft without naming anything
COMMON = {"the", "a", "an", "this", "that", "each", "every", "one", "same", "affected", "other", "which", "its",
          "their", "our", "whole", "responsible", "a", "the", "and", "or"}


def _timestamps(text: str) -> list[str]:
    return TIMESTAMP.findall(text)


def _norm_ts(value: str) -> str:
    dt = _utc(value.replace(" ", "T")) if "T" in value or " " in value else None
    return _iso(dt) if dt else value


def source_tokens(incident: Mapping[str, Any], similar: Iterable[Mapping[str, Any]] = (),
                  computed: Iterable[str] = (), *, articles: Iterable[Mapping[str, Any]] = (),
                  similar_postmortems: Iterable[Mapping[str, Any]] = (),
                  patterns: Iterable[Mapping[str, Any]] = ()) -> frozenset[str]:
    """Every fact the source data holds, as lower-case tokens: words and identifiers, numbers, and
    timestamps (full, and their dates), from the incident document, the similar incidents, the
    matched articles and similar postmortems (their ARTICLE_FIELDS / POSTMORTEM_FIELDS) and the
    values the draft computed from them."""
    out: set[str] = set()

    def add_text(text: str) -> None:
        for ts in _timestamps(text):
            out.add(_norm_ts(ts).lower())
            out.add(ts.lower())
            out.add(ts[:10])
        out.update(n for n in NUMBER.findall(text))
        out.update(t.lower() for t in TOKEN.findall(text))
        # the check tokenizes with timestamps taken out (a date inside a URL splits it): so must the source
        out.update(t.lower() for t in TOKEN.findall(TIMESTAMP.sub(" ", text)))

    def walk(v: Any) -> None:
        if isinstance(v, Mapping):
            for k, x in v.items():
                add_text(str(k))
                walk(x)
        elif isinstance(v, (list, tuple, set, frozenset)):
            for x in v:
                walk(x)
        elif isinstance(v, datetime):
            iso = _iso(_utc(v))
            out.add(iso.lower())
            add_text(iso)
        elif isinstance(v, bool) or v is None:
            return
        elif isinstance(v, (int, float)):
            out.add(_num(v))
            out.add(str(v))
        else:
            add_text(str(v))

    walk(dict(incident))
    for s in similar:
        walk({k: v for k, v in s.items() if k != SIMILARITY_KEY})
    for a in articles:
        walk({k: (_kind(a) if k == "article_type" else a.get(k)) for k in ARTICLE_FIELDS})
    for p in similar_postmortems:
        walk({k: p.get(k) for k in POSTMORTEM_FIELDS})
    for p in patterns:
        walk({k: p.get(k) for k in PATTERN_FIELDS})
    for value in computed:  # a computed timestamp (a due date) allows itself, not the numbers inside it
        if isinstance(value, str) and TIMESTAMP.fullmatch(value):
            out.update({value.lower(), _norm_ts(value).lower(), value[:10]})
        else:
            walk(value)
    return frozenset(out)


def unsupported_facts(draft_text: str, source: Iterable[str] | Mapping[str, Any]) -> list[str]:
    """The numbers, timestamps/dates, services and people named in `draft_text` that do not occur in
    the source (a set of allowed tokens from `source_tokens`, or an incident document). Services
    and people are read from identifiers (`payments-api`, `john.doe`, `@alice`), the word before
    "service"/"team", the word after "by"/"assignee"/"owner", and "Services:"/"Teams:" lists."""
    allowed = source_tokens(source) if isinstance(source, Mapping) else frozenset(source)
    bad: list[str] = []

    def flag(v: str) -> None:
        if v not in bad:
            bad.append(v)

    text = draft_text or ""
    for ts in _timestamps(text):
        if ts.lower() not in allowed and _norm_ts(ts).lower() not in allowed:
            flag(ts)
    rest = TIMESTAMP.sub(" ", text)
    for n in NUMBER.findall(rest):
        if n not in allowed and _num(float(n)) not in allowed:
            flag(n)
    names: list[str] = []
    for tok in TOKEN.findall(rest):
        if tok.startswith("@") or re.search(r"[._/@-]", tok) or (re.search(r"[A-Za-z]", tok)
                                                                 and re.search(r"\d", tok)):
            names.append(tok)
    names += NAMING.findall(rest) + BEFORE_SERVICE.findall(rest)
    for listed in LISTED.findall(rest):
        names += [x.strip() for x in listed.split(",") if x.strip()]
    for nm in names:
        nm = nm.strip().rstrip(".,;:")
        if not nm or nm.lower() in COMMON:
            continue
        if nm.lower() not in allowed and nm.lower().lstrip("@") not in allowed:
            if not all(p.lower() in allowed for p in TOKEN.findall(nm)) or re.search(r"[._/@-]", nm):
                flag(nm)
    return bad


def check(d: Draft, incident: Mapping[str, Any], similar: Iterable[Mapping[str, Any]] = (), *,
          articles: Iterable[Mapping[str, Any]] = (),
          similar_postmortems: Iterable[Mapping[str, Any]] = (),
          patterns: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """The unsupported facts of a draft against its source (the same inputs `draft` was given)."""
    return unsupported_facts(d.text(), source_tokens(incident, similar, d.computed, articles=articles,
                                                     similar_postmortems=similar_postmortems, patterns=patterns))
