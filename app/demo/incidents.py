"""Demo incidents: one per dataset row, with a timeline that uses every event type.

Events quoting the postmortem (its timeline lines, root cause, what restored service, its link)
have the source `postmortem-import`; the steps of the demo's own response process (paging,
escalation, runbook match, approval, status changes) have the source `demo-workflow`. Events the
postmortem gives no time for are spaced a few minutes after detection. An incident's `resolution` is
what its row says restored service, empty when the row does not say (never a placeholder: search,
similarity, recommendations and drafts read it); its Resolution event then says so, and the link to the
public postmortem is its last event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.demo.facts import Fact
from app.demo.text import clip, slug_word, title
from app.incidents.models import IncidentCreate

IMPORT, WORKFLOW = "postmortem-import", "demo-workflow"
IN_FLIGHT = ("OPEN", "INVESTIGATING", "MITIGATED")
_STAGE = {"OPEN": 0, "INVESTIGATING": 1, "MITIGATED": 2, "RESOLVED": 3, "CLOSED": 4}

# category -> namespace; namespace -> (assignee, team)
NAMESPACES = {"Database": "data", "Network": "network", "Security": "security", "Infrastructure": "platform",
              "Cloud": "platform", "Memory": "platform", "Software": "apps", "Configuration": "apps",
              "CI-CD": "apps"}
OWNERS = {"data": ("demo-oncall", "data-platform"), "apps": ("demo-oncall", "application-teams"),
          "platform": ("demo-sre", "platform"), "network": ("demo-sre", "network-engineering"),
          "security": ("demo-security", "security"), "default": ("demo-sre", "platform")}


def namespace_of(category: str) -> str:
    return NAMESPACES.get(category, "default")


@dataclass
class Runbook:
    title: str


def incident_title(fact: Fact) -> str:
    """`Company: what happened`, from the root cause; at most 200 characters, cut at a word."""
    return title(fact.company, fact.root_cause or fact.symptom or "incident")


# The Resolution event of an incident whose public postmortem does not say what restored service: the
# event happened, its message says what is known. The incident's `resolution` stays empty (no placeholder
# in what search, similarity, recommendations and drafts read); the link is the timeline's closing Comment.
RESOLVED_UNSTATED = "Service restored; the public postmortem does not say how"


def resolution_text(fact: Fact) -> str:
    """What restored service, as the row says it: its last timeline line when that line says what was
    done, else the last of its sentences that does (`fact.fixes`); "" when the row does not say."""
    if len(fact.lines) > 1 and fact.lines[-1].text in fact.fixes:
        return fact.lines[-1].text
    return fact.fixes[-1] if fact.fixes else ""


def _event(kind: str, source: str, message: str, severity: str | None = None, details: dict[str, Any] | None = None,
           at: datetime | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {"timestamp": at, "type": kind, "source": source, "message": clip(message, 5000) or kind}
    if severity:
        ev["severity"] = severity
    if details:
        ev["details"] = details
    return ev


def _timed(events: list[dict[str, Any]], step: timedelta = timedelta(minutes=5)) -> list[dict[str, Any]]:
    """Times for the events that have none: spread evenly between the timed events around them, or
    `step` apart after the last one. The order is kept and times never go back."""
    out = list(events)
    last = out[0]["timestamp"]
    i = 0
    while i < len(out):
        if out[i]["timestamp"] is not None:
            last = max(last, out[i]["timestamp"])
            out[i]["timestamp"] = last
            i += 1
            continue
        j = i
        while j < len(out) and out[j]["timestamp"] is None:
            j += 1
        nxt = out[j]["timestamp"] if j < len(out) else None
        if nxt is None:
            gap = step
        else:
            gap = (nxt - last) / (j - i + 1) if nxt > last else timedelta(0)
        for k in range(i, j):
            last = last + gap
            out[k]["timestamp"] = last
        i = j
    return out


def timeline(fact: Fact, *, status: str, namespace: str, runbook: Runbook | None,
             duplicate_of: str | None) -> list[dict[str, Any]]:
    """The events an incident at `status` has been through, in time order: detection, paging and
    escalation; analysis (the postmortem's timeline lines, then its root cause); the runbook match, an
    approval for critical incidents, mitigation; resolution and a link to the public postmortem. A
    duplicate is closed as such right after it is reported."""
    stage = _STAGE[status]
    sev = fact.severity.lower()
    ref = {"dataset_id": fact.id}
    lines = fact.lines
    first = lines[0].text if lines else (fact.symptom or fact.root_cause)
    assignee = OWNERS.get(namespace, OWNERS["default"])[0]
    events = [_event("Detection", IMPORT, first, sev, ref, at=fact.detected_at),
              _event("Notification", WORKFLOW, f"Paged the {namespace} on-call ({assignee}): severity {fact.severity}",
                     "info")]
    if fact.severity in ("HIGH", "CRITICAL"):
        events.append(_event("Escalation", WORKFLOW, f"Escalated to the incident commander: severity {fact.severity}",
                             sev))
    if status == "CLOSED" and duplicate_of:
        events += [_event("Comment", WORKFLOW, f"Duplicate of {duplicate_of}: the same public postmortem"),
                   _event("StatusChange", WORKFLOW, "Status changed from OPEN to CLOSED")]
        return _timed(events)
    if stage == 0:
        return _timed(events)
    events.append(_event("StatusChange", WORKFLOW, "Status changed from OPEN to INVESTIGATING"))
    resolution = resolution_text(fact)
    middle = lines[1:-1] if len(lines) > 2 else []
    fixes = [x for x in fact.fixes if x != resolution] if stage >= 3 else list(fact.fixes)
    split = next((i for i, x in enumerate(middle) if x.text in fixes), len(middle))
    events += [_event("Analysis", IMPORT, x.text, details=ref, at=x.at) for x in middle[:split]]
    if stage == 1:
        return _timed(events)
    events.append(_event("Analysis", IMPORT, f"Root cause: {fact.root_cause}", details=ref))
    if runbook:
        events.append(_event("RunbookMatch", WORKFLOW, f"Runbook matched: {runbook.title}",
                             details={"runbook": runbook.title}))
    mitigations = [_event("Mitigation", IMPORT, x.text, details=ref, at=x.at) for x in middle[split:]
                   if x.text in fixes]
    if not mitigations and fixes and (stage == 2 or not lines):
        mitigations = [_event("Mitigation", IMPORT, fixes[0], details=ref)]
    plan = mitigations[0]["message"] if mitigations else (resolution if stage >= 3 and fact.fixes else "")
    if not mitigations and stage == 2 and runbook:
        mitigations = [_event("Mitigation", WORKFLOW, f"Mitigating with the runbook: {runbook.title}")]
        plan = f"mitigating with the runbook {runbook.title}"
    if fact.severity == "CRITICAL" and plan:
        events.append(_event("ApprovalRequired", WORKFLOW, f"Approval required before: {plan}", "high"))
    if mitigations:
        events += [mitigations[0], _event("StatusChange", WORKFLOW, "Status changed from INVESTIGATING to MITIGATED"),
                   *mitigations[1:]]
    if stage == 2:
        return _timed(events)
    resolved_at = lines[-1].at if len(lines) > 1 else None
    events += [_event("Resolution", IMPORT, resolution or RESOLVED_UNSTATED, "info", ref, at=resolved_at),
               _event("StatusChange", WORKFLOW,
                      f"Status changed from {'MITIGATED' if mitigations else 'INVESTIGATING'} to RESOLVED")]
    events = _timed(events)
    events[-1]["timestamp"] = events[-2]["timestamp"]
    if fact.source:  # recorded with the resolution (the public write-up's own date is in its citation)
        events.append(_event("Comment", IMPORT, f"Public postmortem: {fact.source}",
                             details={**ref, "url": fact.source}, at=events[-1]["timestamp"]))
    return events


def incident(fact: Fact, *, name: str, status: str, runbook: Runbook | None = None,
             duplicate_of: str | None = None) -> IncidentCreate:
    """The incident for one dataset row at the given status (OPEN..CLOSED)."""
    namespace = namespace_of(fact.category)
    assignee, team = OWNERS.get(namespace, OWNERS["default"])
    events = timeline(fact, status=status, namespace=namespace, runbook=runbook, duplicate_of=duplicate_of)
    resolution = next((e for e in events if e["type"] == "Resolution"), None)
    closed = events[-1] if status == "CLOSED" else None
    known = _STAGE[status] >= 2
    tags = [t for t in [fact.category.lower(), fact.subcategory.lower(), fact.topic] if t]
    return IncidentCreate.model_validate({
        "name": name, "namespace": namespace, "title": incident_title(fact),
        "description": _description(fact), "severity": fact.severity, "status": status,
        "category": fact.category, "affected_services": [_service(fact.company)], "affected_teams": [team],
        "assignee": assignee, "tags": tags, "root_cause": fact.root_cause if known else "",
        "resolution": (resolution["message"] if resolution_text(fact) else "") if resolution else (
            f"Closed as a duplicate of {duplicate_of}" if closed and duplicate_of else ""),
        "detected_at": fact.detected_at, "timeline": events,
        "resolved_at": resolution["timestamp"] if resolution else (closed["timestamp"] if closed else None),
    })


def _service(company: str) -> str:
    return slug_word(company) or "service"


def _description(fact: Fact) -> str:
    parts = [" ".join(fact.story) or fact.root_cause]
    if fact.source:
        parts.append(f"Source: {fact.source}")
    return "\n\n".join(parts)[:20_000]
