"""The sections of a postmortem draft written from the incident's record: the timeline, the executive
summary, the root cause analysis and the impact assessment (pure). Each writer reads a `DraftContext` and
returns a `Section` (an empty value when there is no evidence for it); lessons and action items are in
app/postmortems/drafting_lessons.py."""

from __future__ import annotations

from app.postmortems.drafting_context import DraftContext, Section, incident_link, postmortem_ref
from app.postmortems.drafting_text import (figures, first_sentence, informative, iso, known, num, repeats,
                                           restates, sentence, unknown, utc)

EVENT_WORDS = {"Detection": "Detection", "Analysis": "Analysis", "RunbookMatch": "Runbook matched",
               "ApprovalRequired": "Approval required", "Notification": "Notification", "Mitigation": "Mitigation",
               "Resolution": "Resolution", "Comment": "Comment", "StatusChange": "Status change",
               "Escalation": "Escalation"}
# the weight of each fact in the executive summary's evidence (a title alone says little)
SUMMARY_WEIGHTS = {"title": 0.1, "description": 0.25, "severity": 0.05, "services": 0.2, "duration": 0.2,
                   "resolution": 0.2}


def timeline(ctx: DraftContext) -> Section:
    """Every event, in time order; the evidence grows with the events people and tools recorded."""
    evs, real = ctx.evs, ctx.real
    entries = [{"timestamp": iso(utc(e["timestamp"])), "event": EVENT_WORDS.get(e.get("type"), e.get("type")),
                "description": e.get("message") or "", "actor": e.get("source") or None} for e in evs]
    built = [f"{len(evs)} timeline events"] + (
        [f"{len(evs) - len(real)} of them status changes recorded by the incident workflow"] if len(real) < len(evs)
        else [])
    return Section(entries, min(1.0, len(real) / 3), built)


def executive_summary(ctx: DraftContext) -> Section:
    """What happened, as the incident's fields say it; nothing without a title."""
    facts, used = [], []
    lead = f"{ctx.name}: {ctx.title}" if ctx.name else ctx.title
    facts.append(sentence(lead))
    used.append("title")
    if ctx.description:
        facts.append(sentence(ctx.description))
        used.append("description")
    if ctx.severity:
        facts.append(f"Severity: {ctx.severity}.")
        used.append("severity")
    if ctx.services:
        facts.append(f"Affected services: {', '.join(ctx.services)}.")
    if ctx.teams:
        facts.append(f"Affected teams: {', '.join(ctx.teams)}.")
    if ctx.services or ctx.teams:
        used.append("services")
    if ctx.detected:
        facts.append(f"Detected at {iso(ctx.detected)}"
                     + (f", resolved at {iso(ctx.resolved)}." if ctx.resolved else "."))
    if ctx.duration:
        facts.append(f"Detection to resolution: {ctx.duration}.")
        used.append("duration")
    if ctx.incident.get("status"):
        facts.append(f"Status: {ctx.incident['status']}.")
    resolution = ctx.resolution
    if resolution:
        facts.append(f"Resolution: {sentence(resolution)}" if informative(resolution)
                     else f"Resolution as recorded: \"{resolution}\" (it does not say what was done).")
        if informative(resolution):
            used.append("resolution")
    elif ctx.unknown_fix:
        facts.append("What restored service is not recorded.")
    if not ctx.title:
        return Section("", 0.0, [])
    return Section(" ".join(f for f in facts if f), round(sum(SUMMARY_WEIGHTS[k] for k in used), 4), used)


def root_cause_analysis(ctx: DraftContext) -> Section:
    """The recorded root cause, the analysis during the incident, and what similar earlier incidents and
    their postmortems found; nothing when none of these is known."""
    root_cause, computed = ctx.root_cause, ctx.computed
    # a recorded root cause that only repeats the title says what happened, not why: no cause is known
    echo = bool(root_cause) and repeats(root_cause.rstrip(". "), ctx.title)
    root_cause = "" if echo else root_cause
    parts, analysis = [], [e for e in ctx.evs if e.get("type") == "Analysis"
                           and not restates(e.get("message"), root_cause, ctx.title)]
    analysis.sort(key=lambda e: -(e.get("details") or {}).get("confidence", 0)
                  if isinstance((e.get("details") or {}).get("confidence"), (int, float)) else 0)
    if root_cause:
        parts.append(sentence(f"Root cause: {root_cause}"))
    else:  # said whenever the section is written from other evidence (analysis, similar incidents)
        parts.append("The root cause is not recorded (what is recorded as one only repeats the title)." if echo
                     else "The root cause is not recorded.")
    if analysis:
        parts.append("Analysis during the incident:\n" + "\n".join(
            f"- {iso(utc(e['timestamp']))} ({e.get('source')}): {sentence(e.get('message') or '')}"
            for e in analysis))
    past = [s for s in ctx.similar if known(s.get("root_cause"))]
    found = [(p, first_sentence(p.get("root_cause_analysis") or "")) for p in ctx.pms]
    found = [(p, f) for p, f in found if f and not unknown(f)]
    if not (root_cause or analysis or past or found or echo):
        return Section("", 0.0, [])
    if past:
        parts.append("What similar earlier incidents found (detected before this one):\n" + "\n".join(
            f"- {s.get('name') or s.get('_id')} ({s.get('title', '')}{incident_link(s, computed)}): "
            f"{sentence(known(s.get('root_cause')))}" for s in past))
    else:
        parts.append("No similar incident detected before this one was found to compare with.")
    if found:
        parts.append("What postmortems of similar incidents found (their words, about earlier incidents, not "
                     "this one):\n" + "\n".join(f"- {postmortem_ref(p, computed, ctx.similar)}: {sentence(f)}"
                                                 for p, f in found))
    evidence = min(1.0, (0.6 if root_cause else 0.0) + (0.25 if analysis else 0.0) + (0.15 if past or found else 0.0))
    built = (["root_cause"] * bool(root_cause)
             + [f"{len(analysis)} Analysis events"] * bool(analysis)
             + [f"similar earlier incident {s.get('name') or s.get('_id')}" for s in past]
             + [f"postmortem {p.get('_id')}" for p, _ in found])
    return Section("\n\n".join(parts), evidence, built)


def impact_assessment(ctx: DraftContext) -> Section:
    """How long, what was affected and the impact figures the timeline's details record."""
    found = [(k, v) for e in ctx.evs for k, v in figures(e.get("details"))]
    seen: set[tuple[str, str]] = set()
    found = [(k, v) for k, v in found if (k, num(v)) not in seen and not seen.add((k, num(v)))]
    lines = []
    if ctx.duration:
        lines.append(f"Duration from detection to resolution: {ctx.duration}.")
    if ctx.services:
        lines.append(f"Affected services: {', '.join(ctx.services)}.")
    if ctx.teams:
        lines.append(f"Affected teams: {', '.join(ctx.teams)}.")
    if found:
        lines.append("Impact figures recorded in the timeline:\n" + "\n".join(f"- {k}: {num(v)}" for k, v in found))
    if not lines:
        return Section("", 0.0, [])
    if ctx.severity:
        lines.insert(0, f"Severity: {ctx.severity}.")
    got = [bool(ctx.duration), bool(ctx.services or ctx.teams), bool(found)]
    built = (["detected_at and resolved_at"] * bool(ctx.duration) + ["services"] * bool(ctx.services or ctx.teams)
             + [f"{len(found)} figures in event details"] * bool(found))
    return Section("\n".join(lines), sum(got) / len(got), built)
