"""Lessons learned and action items of a postmortem draft, from the gaps the data shows (pure): slow
detection, detection by a human report, a runbook that was missing or not used, long approval waits, manual
recovery steps, a root cause seen before (in similar incidents, their postmortems or a validated learning
pattern), and the runbooks that matched. Each gap adds its lesson and, where something is to be done, an
action item (app/postmortems/action_items.py: owner, priority, due date)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from app.postmortems.action_items import ActionItems
from app.postmortems.completion import concrete_item
from app.postmortems.drafting_context import (RUNBOOK_TYPE, DraftContext, Section, article_ref, kind,
                                              postmortem_ref)
from app.postmortems.drafting_text import (about_cause, alerting, clip, duration_text, human_report, informative,
                                           iso, manual, norm, same_cause, utc)

SLOW_DETECTION = timedelta(minutes=15)  # detected_at this long after the first event: slow detection
LONG_APPROVAL = timedelta(minutes=30)   # an ApprovalRequired event this long before the next step
MANUAL_STEPS_QUOTED = 3                 # manual steps quoted in the automation item's description
RECURRING_TITLE = "Fix the recurring root cause"
CHORE_STRENGTH = 0.25  # action items that are only a generic LOW documentation chore: written, barely evidence


def lessons_and_action_items(ctx: DraftContext) -> tuple[Section, Section]:
    """The lessons learned and the action items, in the order of the gaps; an incident closed as a duplicate
    has none of its own (they belong to the incident it duplicates)."""
    lessons: list[str] = []
    base = max(ctx.resolved, ctx.now) if ctx.resolved else ctx.now  # never due before the draft is written
    items = ActionItems(severity=ctx.severity, owner=ctx.owner, base=base, computed=ctx.computed)
    for gap in (_detection, _runbook_gaps, _approval_waits, _manual_steps, _recurring_cause, _known_patterns,
                _matched_runbooks):
        gap(ctx, lessons, items)
    if ctx.incident.get("duplicate_of"):  # what it teaches belongs to the incident it duplicates
        lessons = [f"This incident was closed as a duplicate of incident {ctx.incident['duplicate_of']}: its lessons "
                   "and action items belong to that incident's postmortem, not to this one."]
        items.items.clear()
    strength = 1.0 if ctx.real and (ctx.detected or ctx.similar or ctx.pms) else 0.5
    built = [x.split(":")[0] for x in lessons]
    acted = strength if any(concrete_item(i) for i in items.items) else CHORE_STRENGTH if items.items else 0.0
    return (Section("\n".join(f"- {x}" for x in lessons), strength if lessons else 0.0, built),
            Section(items.items, acted, list(built) if items.items else []))  # each item answers a lesson


def _detection(ctx: DraftContext, lessons: list[str], items: ActionItems) -> None:
    """Slow detection, and missing monitoring: the earliest Detection event (else the first event) relays a
    human report."""
    evs, where = ctx.evs, ctx.where
    detections = [e for e in evs if e.get("type") == "Detection"] or evs[:1]
    reported = detections[0] if detections and human_report(detections[0]) else None
    alert = next((e for e in evs if e.get("type") == "Detection" and alerting(e)), None)
    if evs and ctx.detected:
        first = utc(evs[0]["timestamp"])
        if ctx.detected - first >= SLOW_DETECTION:
            lag = duration_text(ctx.detected - first, ctx.computed)
            lessons.append(f"Slow detection: the first event ({iso(first)}) came {lag} before the incident was "
                           f"detected ({iso(ctx.detected)}).")
            if not reported:  # else the alert item below covers it
                items.add("Detect this failure sooner", f"The incident was detected {lag} after its first event; "
                          f"add or tune alerting{' for ' + where if where else ''} so it is caught when it starts.",
                          "slow_detection", "Monitoring")
    if not reported:
        return
    said = clip(reported.get("message") or "", 200)
    report = f"{reported.get('source') or 'unknown source'} at {iso(utc(reported['timestamp']))}" + (
        f": \"{said}\"" if said else "")
    later = f"{iso(utc(alert['timestamp']))}: \"{clip(alert.get('message') or '', 200)}\"" if alert else ""
    lessons.append(f"Detection relied on a human report ({report}); " + (
        f"an alert fired only later ({later})." if alert else "no alert fired (none is recorded in the timeline)."))
    services, title = ctx.services, ctx.title
    symptom = f"\"{said}\"" if said else ", ".join(services) or (f"\"{title}\"" if title else "this failure")
    on = f" on {', '.join(services)}" if said and services else ""
    items.add(clip(f"Add an alert for {symptom}{on}", 500) or "Add an alert for this failure",
              "A person reported the incident before any alert did; add an alert that catches this "
              "symptom before users report it" + ("." if not alert else ", or make the alert that fired later "
                                                   "fire sooner."), "missing_monitoring", "Monitoring")


def _runbook_gaps(ctx: DraftContext, lessons: list[str], items: ActionItems) -> None:
    """The knowledge base articles that matched; a runbook that existed but was not used; no runbook at all."""
    runbooks, articles = ctx.runbooks, ctx.articles
    if articles:
        named = "; ".join(article_ref(a, ctx.computed) for a in articles)
        lessons.append(f"Knowledge base articles that matched this incident (the runbooks and guides responders "
                       f"could follow): {named}.")
        written = [a for a in articles if kind(a).upper() == RUNBOOK_TYPE]
        if written and not runbooks:
            which = "; ".join(article_ref(a, ctx.computed) for a in written)
            lessons.append(f"A runbook existed but was not used: {which} matched this incident, but the timeline "
                           "records no runbook match.")
            items.add("Make responders use the existing runbook for this failure", f"The runbook {which} matched "
                      "this incident but the timeline shows it was not used; link it from the alerts and the triage "
                      "steps for this failure, and check it is found when the incident opens.", "unused_runbook",
                      "Process")
    if ctx.real and not runbooks and not articles:  # a timeline to judge by, beyond status changes
        resolution = ctx.resolution
        lessons.append("No runbook matched this incident: responders had no written procedure to follow.")
        items.add("Write a runbook for this failure", f"No runbook matched \"{ctx.title}\"; document the diagnosis "
                  "and the steps that resolved it"
                  + (f" ({resolution})" if resolution and informative(resolution) else "") + ".",
                  "no_runbook", "Documentation")


def _approval_waits(ctx: DraftContext, lessons: list[str], items: ActionItems) -> None:
    """An approval request that waited LONG_APPROVAL or more before the next step."""
    evs = ctx.evs
    for e in evs:
        if e.get("type") != "ApprovalRequired":
            continue
        at = utc(e["timestamp"])
        nxt = next((utc(x["timestamp"]) for x in evs if x.get("type") != "ApprovalRequired"
                    and utc(x["timestamp"]) > at), None)
        if nxt and nxt - at >= LONG_APPROVAL:
            wait = duration_text(nxt - at, ctx.computed)
            lessons.append(f"Long approval wait: {wait} passed between the approval request at {iso(at)} "
                           f"(\"{e.get('message')}\") and the next step.")
            items.add("Shorten the approval path", f"An approval request waited {wait}; agree who approves this "
                      "kind of change during an incident, or approve it in advance.", "approval_wait", "Process")


def _manual_steps(ctx: DraftContext, lessons: list[str], items: ActionItems) -> None:
    """A manual fix that could be automated: a Mitigation or Resolution step done by hand (or the recorded
    resolution, when no event already says it)."""
    fixes = [e for e in ctx.real if e.get("type") in ("Mitigation", "Resolution")]
    steps = [(f"at {iso(utc(e['timestamp']))}" + (f", {e['source']}" if e.get("source") else "")
              + f": \"{clip(e.get('message') or '', 200)}\"", clip(e.get("message") or "", 150))
             for e in fixes if manual(e.get("message") or "")]
    resolution, where = ctx.resolution, ctx.where
    if resolution and manual(resolution) and not any(norm(resolution) == norm(e.get("message") or "")
                                                     for e in fixes):
        steps.append((f"the recorded resolution: \"{clip(resolution, 200)}\"", clip(resolution, 150)))
    if not steps:
        return
    quoted = "; ".join(q for q, _ in steps[:MANUAL_STEPS_QUOTED])
    lessons.append(f"Recovery relied on a manual step ({quoted}): a person had to act before it recovered; "
                   "the step is a candidate for automation.")
    items.add(clip(f"Automate the manual recovery step: \"{steps[0][1]}\"", 500) or "Automate the manual recovery step",
              f"Recovery needed a manual step ({quoted}); automate this step{' for ' + where if where else ''} (with "
              "the safety checks a person would apply), or remove the need for it, so the next occurrence recovers "
              "without waiting for a person.", "manual_fix", "Automation")


def _recurring_cause(ctx: DraftContext, lessons: list[str], items: ActionItems) -> None:
    """Root cause seen before: a similar incident with the same root cause, or a similar postmortem (of such an
    incident, or with action items about this root cause) and what it set out to do."""
    root_cause, computed, similar = ctx.root_cause, ctx.computed, ctx.similar
    recurring = [s for s in similar if root_cause and same_cause(root_cause, s.get("root_cause") or "")]
    again = {s.get("_id") for s in recurring if s.get("_id")}
    earlier: list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]] = []
    for p in ctx.pms:
        its = [i for i in p.get("action_items") or [] if isinstance(i, Mapping) and (i.get("title") or "").strip()]
        if root_cause and its and (p.get("incident") in again or any(about_cause(i["title"], root_cause)
                                                                      for i in its)):
            earlier.append((p, its))
    if not (recurring or earlier):
        return
    names = ", ".join(str(s.get("name") or s.get("_id")) for s in recurring)
    said = []
    if recurring:
        said.append(f"{names} had the same root cause, so the earlier fix did not prevent a recurrence.")
    for p, its in earlier:
        todo = "; ".join(i["title"].strip() + (f" ({i['status']})" if i.get("status") else "") for i in its)
        said.append(f"{'The' if said else 'the'} same cause was seen before in "
                    f"{postmortem_ref(p, computed, similar)}; "
                    f"its action items: {todo}.")
    lessons.append("Root cause seen before: " + " ".join(said))
    where_else = " and ".join(x for x in [names, ", ".join(postmortem_ref(p, computed, similar)
                                                          for p, _ in earlier)] if x)
    items.add(RECURRING_TITLE, f"The root cause \"{root_cause}\" was also found in {where_else}; "
              "address it for good rather than mitigating it again" + (
                  ", and find out why the earlier action items did not prevent it." if earlier else "."),
              "recurring_cause", "Technical Improvement")


def _known_patterns(ctx: DraftContext, lessons: list[str], items: ActionItems) -> None:
    """A validated pattern the incident matches: the cause is a known, recurring one (one item for it, unless
    the recurring cause already has one)."""
    for p in ctx.patterns:
        did = "; ".join(a for a in p.get("actions") or [] if isinstance(a, str)) or "no actions recorded"
        lessons.append(f"Root cause seen before: this incident matches the validated learning pattern "
                       f"\"{p.get('name')}\", seen {p.get('frequency') or 0} times; what worked then: {did}.")
        if RECURRING_TITLE not in items.titles():
            items.add(RECURRING_TITLE, f"This incident matches the validated learning pattern "
                      f"\"{p.get('name')}\", seen {p.get('frequency') or 0} times; apply what worked then ({did}) "
                      "and address the cause for good rather than mitigating it again.", "recurring_cause",
                      "Technical Improvement")


def _matched_runbooks(ctx: DraftContext, lessons: list[str], items: ActionItems) -> None:
    """Each runbook the timeline says matched: to be reviewed against what was done."""
    for e in ctx.runbooks:
        det = e.get("details") or {}
        label = det.get("runbook") or det.get("name") if isinstance(det, Mapping) else None
        what = f"{label}" if isinstance(label, str) and label else e.get("message")
        lessons.append(f"Runbook matched: {what}.")
        items.add(f"Review the runbook that matched: {what}"[:500], "Check that it covered what was done in this "
                  "incident and update it.", "review_runbook", "Documentation")
