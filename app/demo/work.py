"""What the demo's people did, as plain data: who wrote which postmortem and how far its review got, and
how a responder rates a recommendation. Decided by the data (severities, namespaces, when incidents were
resolved, what caused them), never at random.

Postmortems: the HIGH and CRITICAL incidents resolved in the last POSTMORTEM_WEEKS weeks (every severity when
fewer than MIN_POSTMORTEMS are), newest first, are DRAFT, IN_REVIEW, APPROVED, PUBLISHED and ARCHIVED in
turn by `SHARES` (each status at least once): the newest are drafts `ikl generate_postmortems` drafted
(trigger `command`, owned by the postmortem-bot), the others were drafted on their owner's request
(trigger `manual`) or, one in three, written by their owner from the public postmortem (no generation).
Owners are the namespace's editor (`demo-security` for security, else `demo-sre`), the other editor
reviews, and `demo-lead` approves (never the owner). A MITIGATED incident already has its owner's DRAFT
(summary and timeline so far). Due dates: the people's postmortems are due as if drafted when their incident
was resolved (the severity's days after it), so those still in review or approved past that day are overdue;
the command's drafts and the MITIGATED incidents' drafts are due as the service sets it for one created now.

Ratings (1-5) of a recommendation, as its incident's responder would give them: what it points at shares
the incident's cause group (category and topic) 5, its topic alone 4, its category alone 2, nothing 1;
the runbook or troubleshooting guide written from incidents of its kind 5, another article by most of its
sources (the lower median: a catalogue of a whole category is not about the incident's cause); an expert
by the incidents they worked on (named in the recommendation's reasoning) as a similar incident.

The guides (runbooks, troubleshooting guides, best practices) are written when the responders' history
begins and revised the day after each day of it that met an incident (`guides_revised`), each time from the
incidents detected before."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from app.demo.facts import Fact
from app.demo.incidents import IMPORT, namespace_of
from app.demo.spec import LEAD, PostmortemPlan
from app.incidents.models import IncidentCreate

BOT = "postmortem-bot"  # app/postmortems/generations.py BOT_USERNAME
SEVERE = ("HIGH", "CRITICAL")
POSTMORTEM_WEEKS = 8
HISTORY_WEEKS = 4
MIN_POSTMORTEMS = 5
STATUSES = ("DRAFT", "IN_REVIEW", "APPROVED", "PUBLISHED", "ARCHIVED")  # newest first
SHARES = (0.25, 0.15, 0.10, 0.35, 0.15)
TITLE_MAX = 200


def responder(category: str) -> str:
    """The editor who works on incidents of a category (the namespace's owner when an editor)."""
    return "demo-security" if namespace_of(category) == "security" else "demo-sre"


def other_editor(username: str) -> str:
    return "demo-sre" if username == "demo-security" else "demo-security"


def bands(n: int) -> list[str]:
    """Statuses for n postmortems, newest first: SHARES of n (largest remainders), each status at least
    once when n allows; with fewer than five, the furthest along."""
    if n < len(STATUSES):
        return list(STATUSES[len(STATUSES) - n:])
    counts = [1] * len(STATUSES)
    rest = n - len(STATUSES)
    exact = [s * rest for s in SHARES]
    counts = [c + int(e) for c, e in zip(counts, exact)]
    for i in sorted(range(len(SHARES)), key=lambda i: (-(exact[i] - int(exact[i])), i))[:n - sum(counts)]:
        counts[i] += 1
    return [s for s, c in zip(STATUSES, counts) for _ in range(c)]


def _written(inc: IncidentCreate, fact: Fact, *, resolved: bool) -> dict[str, Any]:
    """What a person writes from the public postmortem: the story, the timeline of what it says, and
    (once resolved) the root cause and what people saw."""
    timeline = [{"timestamp": e.timestamp.isoformat().replace("+00:00", "Z"), "event": e.type.value,
                 "description": e.message} for e in inc.timeline if e.source == IMPORT and e.type.value != "Comment"]
    out: dict[str, Any] = {"executive_summary": " ".join(fact.story) or fact.root_cause, "timeline": timeline}
    if resolved:
        out["root_cause_analysis"] = fact.root_cause
        if fact.symptom:
            out["impact_assessment"] = fact.symptom
    return out


def weeks_ago(today: date, weeks: int) -> datetime:
    return datetime.combine(today, time(), tzinfo=timezone.utc) - timedelta(weeks=weeks)


def history_since(today: date) -> datetime:
    """The responders' history: the resolved incidents detected since (HISTORY_WEEKS before `today`) are
    those they asked recommendations for."""
    return weeks_ago(today, HISTORY_WEEKS)


def guides_revised(today: date, detected: list[datetime]) -> list[datetime]:
    """When the runbooks, troubleshooting guides and best practices were revised, each time from the resolved
    incidents detected before: when the responders' history begins, then each day after one that met an
    incident (the runbook updated from its postmortem, as its follow-up asks), and today (every resolved
    incident), so none quotes an incident of the history while it is offered to it, as none could while it
    was in flight. Revised weekly, a kind of failure first met in the history had no guide of its own for the
    rest of that week, however often it came back (the calendar lays a cause's incidents end to end: 11
    routing outages in one week of the demo's history). Only this week (they know every incident) when the
    first would leave them fewer than half of the resolved incidents (`detected`: when each was detected):
    a small demo."""
    since, end = history_since(today), weeks_ago(today, 0)
    if 2 * sum(d < since for d in detected) < len(detected):
        return [end]
    days = {datetime.combine(d.date(), time(), tzinfo=timezone.utc) + timedelta(days=1)
            for d in detected if since <= d < end}
    return [since, *sorted(d for d in days if d < end), end]


def plan_postmortems(incidents: list[IncidentCreate], facts: dict[str, Fact], today: date) -> list[PostmortemPlan]:
    """The postmortems (module docstring), in creation order: oldest first."""
    since = weeks_ago(today, POSTMORTEM_WEEKS)
    resolved = sorted((i for i in incidents if i.status.value == "RESOLVED" and i.resolved_at),
                      key=lambda i: (i.resolved_at, i.name), reverse=True)
    recent = [i for i in resolved if i.resolved_at >= since]
    chosen = [i for i in recent if i.severity.value in SEVERE]
    if len(chosen) < MIN_POSTMORTEMS:
        chosen = recent if len(recent) >= MIN_POSTMORTEMS else resolved[:MIN_POSTMORTEMS]
    plans: list[PostmortemPlan] = []
    for n, (inc, status) in enumerate(zip(chosen, bands(len(chosen)))):
        owner = responder(inc.category)
        people = {"approver": LEAD.username, "reviewers": [other_editor(owner)]}
        if status == "DRAFT":
            plans.append(PostmortemPlan(incident=inc.name, status=status, owner=BOT, generated_by=BOT,
                                        trigger="command"))
        elif n % 3 == 2:
            plans.append(PostmortemPlan(incident=inc.name, status=status, owner=owner, **people,
                                        written=_written(inc, facts[inc.name], resolved=True)))
        else:
            plans.append(PostmortemPlan(incident=inc.name, status=status, owner=owner, generated_by=owner, **people))
    for inc in incidents:
        if inc.status.value == "MITIGATED":
            owner = responder(inc.category)
            plans.append(PostmortemPlan(incident=inc.name, status="DRAFT", owner=owner, approver=LEAD.username,
                                        reviewers=[other_editor(owner)],
                                        written=_written(inc, facts[inc.name], resolved=False)))
    order = {i.name: k for k, i in enumerate(incidents)}
    return sorted(plans, key=lambda p: order[p.incident])


def postmortem_title(incident_title: str) -> str:
    return f"Postmortem: {incident_title}"[:TITLE_MAX]


# --- ratings ----------------------------------------------------------------------------------------

def _closeness(cause: str, others: list[str]) -> int:
    """5 when one of `others` is the same cause group, 4 the same topic, 2 the same category, else 1. The
    catch-all topic "other" is no cause group: two incidents of it share only their category (2)."""
    category, _, topic = cause.partition("/")
    known = topic != "other"
    best = 1
    for o in others:
        c, _, t = o.partition("/")
        best = max(best, 5 if o == cause and known else 4 if t == topic and known else 2 if c == category else 1)
    return best


def rating(kind: str, *, cause: str, target_causes: list[str] = (), title: str = "", guides: list[str] = ()) -> int:
    """How the incident's responder rates a recommendation of `kind` (module docstring): `target_causes`
    are the causes of the incidents it points at (the similar incident, an article's or a pattern's
    sources, the incidents an expert worked on), `title` an article's, `guides` the incident's own runbook
    and guide titles."""
    if kind == "KNOWLEDGE_ARTICLE" and title in guides:
        return 5
    if kind == "KNOWLEDGE_ARTICLE" and target_causes:  # by most of its sources: a catalogue of a whole
        each = sorted(_closeness(cause, [t]) for t in target_causes)  # category is not about this cause
        return each[(len(each) - 1) // 2]
    return _closeness(cause, list(target_causes)) if target_causes or kind != "EXPERT" else 2

