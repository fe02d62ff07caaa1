"""Automated drafting of a postmortem: `redraft` is the one path, used at once by `generate_automated/`
and `generatePostmortemDraft`, and by the generation jobs (app/postmortems/generations.py).

The draft is written by the pure `generator.draft` from the incident and the similar past incidents
(detected before it and at least `generator.MIN_SIMILARITY` similar) the user may see and classified no higher than the postmortem (without them when the search server is
down). Sections that are empty or were
auto-generated before are written; a section a person edited (non-empty and not listed in
`auto_generated_sections`) is kept unless `force`. A draft naming a number, timestamp, service or
person absent from the source data is not written: 422 `UNSUPPORTED_FACTS`. A postmortem classified
below its incident is not drafted at all (the draft is the incident's data): 409
`CLASSIFICATION_BELOW_SOURCE`. While a generation job drafts the incident's postmortem (one started by hand, or
the automatic one of a resolution), drafting it by hand waits for it to finish (`postmortem_generation_wait_seconds`)
and then drafts; still running then, a 409 `GENERATION_IN_PROGRESS` naming that generation, before any drafting:
both would write the same sections, and the later writer would fail on the other's change."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from opensearchpy.exceptions import OpenSearchException
from pymongo import ReturnDocument

from app import classification
from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Conflict, NotFound, ServiceError
from app.articles.models import FOLLOWED_TYPES, GUIDE_TYPES, ArticleStatus
from app.incidents import service as incidents
from app.patterns import service as patterns
from app.postmortems import automation, generator, polish
from app.postmortems import service
from app.postmortems.models import REQUIRED_SECTIONS, ActionItem, item_doc
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import Classification, Role, User, require_role

log = logging.getLogger(__name__)
SIMILAR_LIMIT = 5
SIMILAR_CANDIDATES = 20  # similar incidents asked for, of which the earlier and similar enough are kept
ARTICLE_LIMIT = 5
ARTICLE_FIELDS = {"title": 1, "slug": 1, "article_type": 1, "related_services": 1}
PM_FIELDS = {"title": 1, "incident": 1, "root_cause_analysis": 1, "lessons_learned": 1, "action_items": 1}
PATTERN_FIELDS = {"name": 1, "frequency": 1, "triggers": 1, "actions": 1}
LOG_KEYS = ("logs", "log", "log_excerpt", "log_lines", "stack_trace")  # event details holding log excerpts


class UnsupportedFacts(ServiceError):
    """The draft names facts the source data does not hold: the request was understood but the
    draft it produced cannot be accepted (422, not a 409: nothing in the postmortem's state conflicts)."""
    status = 422
    code = "UNSUPPORTED_FACTS"


@dataclass
class Drafted:
    """What one drafting wrote: the updated postmortem, the draft, and the sections written and kept."""

    doc: dict[str, Any]
    draft: generator.Draft
    written: list[str]
    kept: list[str]
    similar: list[str]  # ids of the similar incidents used
    articles: list[str]  # ids of the matching articles named
    similar_postmortems: list[str]  # ids of the similar incidents' postmortems quoted
    polish: polish.PolishResult  # what the optional prose polishing did


def _reader(user: User, ceiling: str) -> User:
    """The user, seeing no more than `ceiling`: a draft never carries a more secret document into a less
    secret postmortem."""
    top = Classification(ceiling)
    return user if user.clearance.rank <= top.rank else user.model_copy(update={"clearance": top})


async def _sources(bk: Backends, *, incident: dict, reader: User) -> tuple[list[dict], list[dict], list[dict]]:
    """What else the draft may draw on, as `reader` sees it: similar past incidents (none when the search
    server is down), their postmortems, and the published guides that match the incident (a runbook,
    troubleshooting guide, how-to or best practice linked to it, or a runbook/troubleshooting guide for one
    of its services)."""
    try:
        _, hits = await incidents.similar_incidents(bk, user=reader, incident_id=incident["_id"],
                                                    limit=SIMILAR_CANDIDATES)
        # only incidents detected before this one, and similar enough (generator.earlier_similar)
        similar = generator.earlier_similar(incident, [{**m.doc, generator.SIMILARITY_KEY: m.score} for m in hits
                                                       if m.doc["_id"] != incident["_id"]])[:SIMILAR_LIMIT]
    except (OpenSearchException, OSError) as exc:  # the search server is down: draft without them
        log.warning("similar incidents unavailable for drafting: %s", exc)
        similar = []
    postmortems = []
    if similar:
        postmortems = await bk.mongo.postmortems.find(
            {"incident": {"$in": [d["_id"] for d in similar]}, **classification.mongo_filter(reader)}, PM_FIELDS).sort("created_at", -1).limit(SIMILAR_LIMIT).to_list(None)
    # linked to it: only what a responder follows ("Infrastructure incident catalogue" was cited as a runbook)
    match: list[dict[str, Any]] = [{"related_incidents": incident["_id"],
                                    "article_type": {"$in": list(FOLLOWED_TYPES)}}]
    if services := [s for s in incident.get("affected_services") or [] if isinstance(s, str)][:20]:
        match.append({"related_services": {"$in": services}, "article_type": {"$in": list(GUIDE_TYPES)}})
    found = await bk.mongo.articles.find(
        {**classification.mongo_filter(reader), "status": ArticleStatus.PUBLISHED.value, "$or": match},
        ARTICLE_FIELDS).sort([("view_count", -1), ("_id", 1)]).limit(ARTICLE_LIMIT).to_list(None)
    return similar, found, postmortems


def _without_logs(incident: dict) -> dict:
    """The incident with log excerpts (event details under LOG_KEYS) left out."""
    events = [{**e, "details": {k: v for k, v in (e.get("details") or {}).items() if k not in LOG_KEYS}}
              if isinstance(e.get("details"), dict) else e for e in incident.get("timeline") or []]
    return {**incident, "timeline": events}


def check_open(current: dict) -> None:
    if current["status"] in service.CLOSED_STATUSES:
        raise Conflict(f"A {current['status']} postmortem is not drafted again", {"status": current["status"]},
                       code="POSTMORTEM_CLOSED")


def check_not_below_incident(current: dict, incident: dict) -> None:
    """A 409 when the postmortem is classified below its incident: the draft is written from the incident's
    data, which would then reach readers the incident is hidden from. Both are the caller's to see."""
    level = Classification(current.get(classification.FIELD, classification.DEFAULT.value))
    source = Classification(incident.get(classification.FIELD, classification.DEFAULT.value))
    if level.rank < source.rank:
        raise Conflict(f"The postmortem is {level.value}, below its incident's {source.value}: a draft would carry "
                       f"the incident's data into it. Classify the postmortem {source.value} or above to draft it",
                       {"field": classification.FIELD, "postmortem": level.value, "incident": source.value},
                       code="CLASSIFICATION_BELOW_SOURCE")


async def wait_for_generation(bk: Backends, *, incident: dict, user: User) -> bool:
    """Return once the incident has no generation PENDING or PROCESSING (classified as the incident the user
    sees), waiting up to `postmortem_generation_wait_seconds` for one to finish — the automatic generation of a
    resolution is usually done within a second or two of it; a 409 naming it when it still runs then. True when
    it waited (what the generation wrote is to be read again)."""
    settings = bk.settings
    flt = {"incident": incident["_id"], "active": True, **classification.mongo_filter(user)}
    deadline = time.monotonic() + min(settings.postmortem_generation_wait_seconds, settings.request_timeout_seconds / 2)
    pause, waited = 0.05, False
    while (running := await bk.mongo.postmortem_generations.find_one(flt, {"_id": 1, "status": 1})) is not None:
        if time.monotonic() + pause > deadline:
            raise Conflict(f"A postmortem generation is drafting this postmortem now ({running['status']}); follow it, "
                           "or draft again once it has finished",
                           {"generation_id": running["_id"], "status": running["status"]},
                           code="GENERATION_IN_PROGRESS")
        await asyncio.sleep(pause)
        pause, waited = min(pause * 2, 0.5), True
    return waited


async def redraft(bk: Backends, *, current: dict, incident: dict, user: User, force: bool = False,
                  include_timeline: bool = True, include_logs: bool = True, action: str = "generate_automated",
                  audit_extra: dict[str, Any] | None = None) -> Drafted:
    """Draft `current` (a postmortem the caller has loaded) from `incident` and write the sections
    that may be written, in one transaction with its audit entry. `UnsupportedFacts` (nothing
    written) when the draft fails the fact check; the exception carries the draft. Written only while
    `current` is unchanged and still visible to `user` (a 409 CONCURRENT_UPDATE otherwise)."""
    check_open(current)
    check_not_below_incident(current, incident)
    source = incident if include_logs else _without_logs(incident)
    reader = _reader(user, current.get(classification.FIELD, classification.DEFAULT.value))
    similar, matched, earlier = await _sources(bk, incident=source, reader=reader)
    known = await patterns.validated_matching(bk, incident=source, user=reader, projection=PATTERN_FIELDS)
    # action items are owned by people: the incident's assignee unless the users say it is a service account
    accounts = await users.service_account_names(bk, [source.get("assignee")])
    draft = generator.draft(source, similar=similar, articles=matched, similar_postmortems=earlier, patterns=known,
                            service_accounts=accounts)
    polished = await polish.polish(bk.settings, draft, incident=source, similar=similar, articles=matched,
                                   similar_postmortems=earlier, patterns=known)
    if polished.error:
        log.warning("draft not polished: %s", polished.error)
    draft = polished.draft
    if not include_timeline and "timeline" in draft.auto_generated_sections:
        draft.auto_generated_sections.remove("timeline")
    unsupported = generator.check(draft, source, similar, articles=matched, similar_postmortems=earlier,
                                  patterns=known)
    if unsupported:
        exc = UnsupportedFacts("The draft names facts the incident data does not hold; it was not written",
                               {"unsupported_facts": unsupported[:100]})
        exc.draft = draft
        raise exc
    before = set(current.get("auto_generated_sections") or [])
    written = [s for s in draft.auto_generated_sections
               if force or s in before or not service.has_content(current.get(s))]
    kept_auto = [s for s in before if s not in written and service.has_content(current.get(s))
                 and s in REQUIRED_SECTIONS]
    sections = draft.sections()
    changes: dict[str, Any] = {s: sections[s] for s in written}
    if "action_items" in changes:
        changes["action_items"] = [item_doc(ActionItem.model_validate(i)) for i in changes["action_items"]]
    for field, value in (("affected_services", incident.get("affected_services")),
                         ("affected_teams", incident.get("affected_teams")),
                         ("related_incidents", [d["_id"] for d in similar])):
        if value and (force or not current.get(field)):  # filled in, never overriding a person's list
            changes[field] = list(value)
    changes.update(is_automated=True, generation_confidence=draft.generation_confidence,
                   auto_generated_sections=[s for s in REQUIRED_SECTIONS if s in written or s in kept_auto],
                   updated_at=utcnow())
    kept = [s for s in draft.auto_generated_sections if s not in written]
    audit = {"sections": written, "kept": kept, "confidence": draft.generation_confidence, "force": force,
             "evidence": draft.evidence, "built_from": draft.built_from,
             "polished": polished.polished, "polish_model": polished.model,
             "similar_incidents": [s["_id"] for s in similar], "articles": [a["_id"] for a in matched],
             "similar_postmortems": [p["_id"] for p in earlier], "learning_patterns": [p["_id"] for p in known],
             **(audit_extra or {})}

    async def op(s):
        updated = await bk.mongo.postmortems.find_one_and_update(
            {"_id": current["_id"], "updated_at": current["updated_at"], **classification.mongo_filter(user)},
            {"$set": changes}, session=s,
            return_document=ReturnDocument.AFTER)
        if updated is not None:
            await automation.items_created(bk, current, updated, session=s)
            await record_audit(bk, action=action, user=user, subject_type="postmortem",
                               subject_id=current["_id"], changes=audit, session=s)
        return updated

    updated = await bk.transaction(op)
    if updated is None:
        raise Conflict("The postmortem changed while it was being drafted; try again", code="CONCURRENT_UPDATE")
    return Drafted(doc=updated, draft=draft, written=written, kept=kept, similar=[s["_id"] for s in similar],
                   articles=[a["_id"] for a in matched], similar_postmortems=[p["_id"] for p in earlier],
                   polish=polished)


async def generate_automated(bk: Backends, *, pm_id: str, user: User, force: bool = False) -> dict:
    """Draft the postmortem's sections from its incident (editor). Returns the updated postmortem."""
    require_role(user, Role.EDITOR)
    current = await service.get_postmortem(bk, pm_id=pm_id, user=user)
    check_open(current)
    try:
        incident = await incidents.get_incident(bk, incident_id=current["incident"], user=user)
    except NotFound:
        raise NotFound(f"Incident '{current['incident']}' not found", code="INCIDENT_NOT_FOUND") from None
    if await wait_for_generation(bk, incident=incident, user=user):  # it may have drafted this postmortem meanwhile
        current = await service.get_postmortem(bk, pm_id=pm_id, user=user)
        check_open(current)
    return (await redraft(bk, current=current, incident=incident, user=user, force=force)).doc
