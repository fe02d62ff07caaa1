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
later of the resolution and `now` (the draft's writing), so never already past when written.

This module is the entry: `draft` reads the sources once into a `DraftContext` and calls one writer per
section (app/postmortems/drafting_sections.py: timeline, executive summary, root cause analysis, impact
assessment; app/postmortems/drafting_lessons.py: lessons learned and action items), with the text helpers in
app/postmortems/drafting_text.py and the action item rules in app/postmortems/action_items.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from app.postmortems.action_items import ITEM_DUE_DAYS, item_owner  # noqa: F401 - read as generator.ITEM_DUE_DAYS
from app.postmortems.drafting_context import DraftContext, kind
from app.postmortems.drafting_lessons import lessons_and_action_items
from app.postmortems.drafting_sections import executive_summary, impact_assessment, root_cause_analysis, timeline
from app.postmortems.drafting_text import beyond_title, duration_text, iso, known, num, unknown, utc

SECTIONS = ("executive_summary", "timeline", "root_cause_analysis", "impact_assessment", "lessons_learned",
            "action_items")
TEXT_SECTIONS = ("executive_summary", "root_cause_analysis", "impact_assessment", "lessons_learned")

MIN_SIMILARITY = 0.35                   # a similar incident's 0-1 score (`SIMILARITY_KEY`) from which it is cited
SIMILARITY_KEY = "similarity"           # where the caller puts that score in a similar incident's document
MIN_DURATION = timedelta(minutes=1)     # a shorter detection-to-resolution span is a data artefact, not stated
WORKFLOW_SOURCES = ("incident-service",)  # events the incident workflow records itself (status changes):
#                                           not evidence of what happened
# the fields of articles and similar postmortems that count as source data (what the draft quotes)
ARTICLE_FIELDS = ("_id", "title", "slug", "article_type", "related_services")
POSTMORTEM_FIELDS = ("_id", "title", "incident", "root_cause_analysis", "lessons_learned", "action_items")
PATTERN_FIELDS = ("_id", "name", "frequency", "triggers", "actions")  # validated learning patterns matched


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


# --- the incident's events and the similar incidents it may cite ----------------------------

def _when(doc: Mapping[str, Any]) -> datetime | None:
    """When an incident happened: detected_at, else created_at."""
    return utc(doc.get("detected_at")) or utc(doc.get("created_at"))


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
    and timestamp; `details` that are not an object (imported data: a string, a list) read as none."""
    seen, out = set(), []
    timed = [e for e in incident.get("timeline") or [] if isinstance(e, Mapping) and utc(e.get("timestamp"))]
    for e in sorted(timed, key=lambda e: utc(e["timestamp"])):
        key = (e.get("type"), (e.get("message") or "").strip(), utc(e["timestamp"]))
        if key not in seen:
            seen.add(key)
            out.append({**e, "details": e.get("details") if isinstance(e.get("details"), Mapping) else None})
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
    ctx = _context(incident, similar=similar, articles=articles, similar_postmortems=similar_postmortems,
                   patterns=patterns, now=now, service_accounts=service_accounts)
    d = Draft(computed=ctx.computed)
    written = {"timeline": timeline(ctx), "executive_summary": executive_summary(ctx),
               "root_cause_analysis": root_cause_analysis(ctx), "impact_assessment": impact_assessment(ctx)}
    written["lessons_learned"], written["action_items"] = lessons_and_action_items(ctx)
    for s, section in written.items():
        setattr(d, s, section.value)
        d.evidence[s] = section.evidence
        d.built_from[s] = section.built_from
    d.auto_generated_sections = [s for s in SECTIONS if _has(getattr(d, s))]
    for s in SECTIONS:
        if s not in d.auto_generated_sections:
            setattr(d, s, [] if s in ("timeline", "action_items") else "")
            d.evidence[s] = 0.0
            d.built_from[s] = []
    d.generation_confidence = round(sum(d.evidence.values()) / len(SECTIONS), 2)
    return d


def _context(incident: Mapping[str, Any], *, similar: Iterable[Mapping[str, Any]],
             articles: Iterable[Mapping[str, Any]], similar_postmortems: Iterable[Mapping[str, Any]],
             patterns: Iterable[Mapping[str, Any]], now: datetime | None,
             service_accounts: Iterable[str]) -> DraftContext:
    """The draft's sources, read once: only earlier and similar enough incidents, and only the postmortems
    of those (never the incident's own); articles and postmortems with a title; known values only."""
    given = [s for s in similar if s.get("_id") != incident.get("_id")]
    earlier = earlier_similar(incident, given)
    left_out = {s.get("_id") for s in given if s.get("_id")} - {s.get("_id") for s in earlier}
    pms = [p for p in similar_postmortems if (p.get("title") or "").strip()
           and not (incident.get("_id") and p.get("incident") == incident.get("_id"))
           and not (p.get("incident") and p.get("incident") in left_out)]  # of a later or dissimilar incident
    computed: set[str] = set()
    evs = events(incident)
    title = (incident.get("title") or "").strip()
    description = "\n\n".join(x for x in (beyond_title(p, title) for p in
                                           re.split(r"\n\s*\n", known(incident.get("description"))))
                              if x and not unknown(x))
    detected, resolved = utc(incident.get("detected_at")), utc(incident.get("resolved_at"))
    duration = (duration_text(resolved - detected, computed) if detected and resolved
                and resolved - detected >= MIN_DURATION else None)
    resolution = known(incident.get("resolution"))
    return DraftContext(
        incident=incident, similar=earlier, pms=pms, patterns=patterns,
        articles=list({a.get("_id") or id(a): a for a in articles if (a.get("title") or "").strip()}.values()),
        evs=evs, real=[e for e in evs if not _workflow(e)],  # what people and tools recorded (not status changes)
        title=title, description=description, severity=incident.get("severity"),
        services=[s for s in incident.get("affected_services") or [] if s],
        teams=[t for t in incident.get("affected_teams") or [] if t],
        detected=detected, resolved=resolved, duration=duration,
        root_cause=known(incident.get("root_cause")), resolution=resolution,
        unknown_fix=bool((incident.get("resolution") or "").strip()) and not resolution,
        name=incident.get("name") or "",
        now=(utc(now) or datetime.now(timezone.utc)).replace(microsecond=0),
        owner=item_owner(incident, service_accounts), computed=computed)


def _has(value: Any) -> bool:
    return bool(value.strip()) if isinstance(value, str) else bool(value)


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
    dt = utc(value.replace(" ", "T")) if "T" in value or " " in value else None
    return iso(dt) if dt else value


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
            stamp = iso(utc(v))
            out.add(stamp.lower())
            add_text(stamp)
        elif isinstance(v, bool) or v is None:
            return
        elif isinstance(v, (int, float)):
            out.add(num(v))
            out.add(str(v))
        else:
            add_text(str(v))

    walk(dict(incident))
    for s in similar:
        walk({k: v for k, v in s.items() if k != SIMILARITY_KEY})
    for a in articles:
        walk({k: (kind(a) if k == "article_type" else a.get(k)) for k in ARTICLE_FIELDS})
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
        if n not in allowed and num(float(n)) not in allowed:
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
