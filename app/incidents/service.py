"""Incidents and their timelines: every rule about them lives here."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Mapping

import bson

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app import classification
from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Conflict, NotFound, ValidationFailed
from app.incidents.models import (RESOLVED_STATUSES, EventType, IncidentCreate, IncidentMarkDuplicate, IncidentResolve,
                                  IncidentUpdate, Severity, Status, TimelineEventIn)
from app.incidents import embeddings, hooks, similarity
from app.incidents.hooks import Happened
from app.indexing import outbox
from app.listing import Filter, ListSpec, Page
from app.repository import Repository
from app.timefmt import for_body, utcnow
from app.users.models import Classification, Role, User, require_role
from indexers import incidents as incidents_index

INDEX = incidents_index.INDEX.name
SUBJECT = "incident"  # its audit entries' subject_type
CREATED = ("name", "title", "severity", "status", "duplicate_of")  # what an incident's "create" entry names

LIST_SPEC = ListSpec(
    collection="incidents",
    filters=(Filter("status", "status", Status, indexed=True), Filter("severity", "severity", Severity),
             Filter("namespace", "namespace"), Filter("service", "affected_services"),
             Filter("category", "category"), Filter("assignee", "assignee"),
             Filter("data_classification", "data_classification", Classification)),
    search_fields=("name", "title", "description", "root_cause", "resolution", "tags", "affected_services"),
    ordering={"created_at": "created_at", "updated_at": "updated_at", "detected_at": "detected_at",
              "resolved_at": "resolved_at", "severity": "severity_rank", "name": "name", "title": "title",
              "status": "status"},
    default_ordering=("-created_at",),
)

# The source of the events the service writes itself (status changes, resolutions), whichever API
# made the change; who made it is in the event's details.actor.
EVENT_SOURCE = "incident-service"
TIMELINE_API_VERSION = "v1"
TIMELINE_KIND = "IncidentTimeline"
SEVERITY_RANK = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
LIST_PROJECTION = {"timeline": 0, "timeline_bytes": 0, "embedding": 0}
# What following a duplicate to its canonical reads.
CANONICAL_PROJECTION = {"name": 1, "duplicate_of": 1, "data_classification": 1}
MAX_DUPLICATE_HOPS = 10  # duplicates never chain (marking re-points them); this only bounds bad old data


def _event_doc(ev: TimelineEventIn) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": str(uuid.uuid4()), "timestamp": ev.timestamp or utcnow(), "type": ev.type.value,
                           "source": ev.source, "message": ev.message}
    if ev.severity is not None:
        doc["severity"] = ev.severity.value
    if ev.details is not None:
        doc["details"] = ev.details
    return doc


def _event_bytes(events: list[dict[str, Any]]) -> int:
    return sum(len(bson.encode(e)) for e in events)


def sorted_events(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Events in time order; events with the same timestamp keep the order they were appended."""
    return sorted(doc.get("timeline") or [], key=lambda e: e["timestamp"])


async def _next_name(bk: Backends) -> str:
    day = utcnow().strftime("%Y%m%d")
    counter = await bk.mongo.counters.find_one_and_update(
        {"_id": f"incident-name:{day}"}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER)
    return f"INC-{day}-{counter['seq']:03d}"


def _status_event(old: str, new: str, *, user: User, now) -> dict[str, Any]:
    """The event the service writes for a status change."""
    return _event_doc(TimelineEventIn(type=EventType.STATUS_CHANGE, source=EVENT_SOURCE, timestamp=now,
                                      details={"actor": user.username}, message=f"Status changed from {old} to {new}"))


def _comment(message: str, *, user: User, now, **details: Any) -> dict[str, Any]:
    return _event_doc(TimelineEventIn(type=EventType.COMMENT, source=EVENT_SOURCE, timestamp=now, message=message,
                                      details={"actor": user.username, **details}))


# an incident's detail URL names it by name; pages and by-ids read it without its timeline
INCIDENTS = Repository("Incident", "INCIDENT_NOT_FOUND", LIST_SPEC, key="name", projection=LIST_PROJECTION)
_not_found = INCIDENTS.not_found


async def list_incidents(bk: Backends, *, params: Mapping[str, Any], user: User) -> Page:
    """A page of the incidents the user may see (without timelines), by DRF-style list parameters."""
    return await INCIDENTS.page(bk, params, user)


async def get_incident(bk: Backends, *, user: User, name: str | None = None, incident_id: str | None = None,
                       projection: Mapping[str, Any] | None = None) -> dict:
    """One incident by name or id; a 404 when there is none or the user may not see it."""
    if (name is None) == (incident_id is None):
        raise ValidationFailed("Give exactly one of name or id", code="INVALID_LOOKUP")
    if name is not None:
        return await INCIDENTS.get(bk, name, user, projection=projection)
    return await INCIDENTS.get(bk, incident_id, user, by="_id", projection=projection)


async def referenced_incident(bk: Backends, *, incident_id: str, user: User, field: str,
                              projection: Mapping[str, Any] | None = LIST_PROJECTION) -> dict:
    """An incident named in a request body (`field`) by its id or its name: a 400 INCIDENT_NOT_FOUND when the
    user cannot see it."""
    doc = await _by_ref(bk, incident_id, user=user, projection=projection)
    if doc is None:
        raise ValidationFailed(f"Incident '{incident_id}' not found", {"field": field}, code="INCIDENT_NOT_FOUND")
    return doc


NOTHING = "\x00none"  # a filter value no document holds


async def _by_ref(bk: Backends, ref: str, *, user: User, projection: Mapping[str, Any] | None) -> dict | None:
    """The incident a request names by its id or its name, if the user may see it."""
    return await bk.mongo.incidents.find_one({"$or": [{"_id": ref}, {"name": ref}], **classification.mongo_filter(user)},
                                             projection)


async def incident_filter_param(bk: Backends, params: Mapping[str, Any], *, user: User,
                                key: str = "incident") -> dict[str, Any]:
    """List parameters whose `?incident=` names an incident by its id or its name, as its id; one the user
    cannot see (or none) matches nothing, like a missing one."""
    out = dict(params.items())
    if ref := out.get(key):
        doc = await _by_ref(bk, str(ref), user=user, projection={"_id": 1})
        out[key] = doc["_id"] if doc else NOTHING
    return out


async def incidents_by_ids(bk: Backends, *, ids: list[str], user: User) -> dict[str, dict]:
    return await INCIDENTS.by_ids(bk, ids, user)


async def timelines_by_ids(bk: Backends, *, ids: list[str], limit: int) -> dict[str, list[dict]]:
    """The first `limit` events of each timeline, keyed by incident id, in time order: one query for
    the whole list, sorted and cut in MongoDB so a page never loads whole timelines (for incidents the
    caller already holds, so already checked against their clearance)."""
    pipeline = [{"$match": {"_id": {"$in": list(set(ids))}}},
                {"$project": {"timeline": {"$slice": [{"$sortArray": {
                    "input": {"$ifNull": ["$timeline", []]}, "sortBy": {"timestamp": 1}}}, limit]}}}]
    docs = await (await bk.mongo.incidents.aggregate(pipeline)).to_list(None)
    return {d["_id"]: sorted_events(d) for d in docs}


def check_event_limit(bk: Backends, limit: int) -> int:
    if not 1 <= limit <= bk.settings.max_events_per_incident:
        raise ValidationFailed(f"limit must be between 1 and {bk.settings.max_events_per_incident}",
                               {"field": "limit", "max": bk.settings.max_events_per_incident})
    return limit


async def create_incident(bk: Backends, *, data: IncidentCreate, user: User, duplicate_of: str | None = None) -> dict:
    """Create an incident; the name is generated as INC-YYYYMMDD-NNN when not given. `duplicate_of`
    (the canonical's name; for imports such as the demo, whose twins arrive already CLOSED with their
    own events) records it as a duplicate at once, under the rules of `mark_duplicate`."""
    require_role(user, Role.EDITOR)
    classification.check_may_classify(user, data.data_classification, what="an incident")
    canonical = await canonical_of(bk, name=duplicate_of, user=user) if duplicate_of is not None else None
    if canonical is not None and (data.status != Status.CLOSED or canonical["name"] == data.name):
        raise ValidationFailed("A duplicate is created CLOSED, and not as a duplicate of itself",
                               {"field": "duplicate_of"}, code="INVALID_DUPLICATE")
    now = utcnow()
    doc = data.model_dump(mode="python", exclude={"timeline"})
    doc = {k: (v.value if hasattr(v, "value") else v) for k, v in doc.items()}
    doc.update(
        _id=str(uuid.uuid4()), reporter=data.reporter or user.username, severity_rank=SEVERITY_RANK[doc["severity"]],
        detected_at=data.detected_at or now, created_at=now, updated_at=now, created_by=user.id,
        timeline=[_event_doc(e) for e in data.timeline],
    )
    if canonical is not None:
        doc["duplicate_of"] = canonical["_id"]
    doc["timeline_bytes"] = _event_bytes(doc["timeline"])
    if doc["status"] in RESOLVED_STATUSES and doc.get("resolved_at") is None:
        doc["resolved_at"] = now
    opened = await hooks.announce(bk, Happened.OPENED, doc)
    for _ in range(20):  # a generated name can collide with one given explicitly earlier
        if data.name is None:
            doc["name"] = await _next_name(bk)
        try:
            async def op(s):
                await bk.mongo.incidents.insert_one(doc, session=s)
                await opened.within(doc, session=s)
                await record_audit(bk, action="create", user=user, subject_type=SUBJECT, subject_id=doc["_id"],
                                   changes={k: doc[k] for k in CREATED if doc.get(k) is not None}, session=s)

            await outbox.write(bk, INDEX, doc["_id"], op)
            await opened.after_commit()
            return doc
        except DuplicateKeyError:
            if data.name is not None:
                raise Conflict(f"An incident named '{data.name}' already exists", {"field": "name"},
                               code="INCIDENT_EXISTS") from None
    raise Conflict("Could not allocate an incident name; try again", code="NAME_ALLOCATION_FAILED")


async def update_incident(bk: Backends, *, name: str, data: IncidentUpdate, user: User) -> dict:
    """Apply a partial update. Moving to RESOLVED/CLOSED stamps resolved_at; reopening clears it. A
    duplicate moved to any status but CLOSED is no longer a duplicate (`duplicate_of` cleared, audited)."""
    require_role(user, Role.EDITOR)
    current = await get_incident(bk, name=name, user=user)
    changes = data.changes()
    classification.check_may_classify(user, changes.get("data_classification"), what="an incident")
    if not changes:
        return current
    now = utcnow()
    changes["updated_at"] = now
    unset: dict[str, str] = {}
    if "severity" in changes:
        changes["severity_rank"] = SEVERITY_RANK[changes["severity"]]
    events: list[dict] = []
    if "status" in changes and changes["status"] != current["status"]:
        if changes["status"] in RESOLVED_STATUSES and current["status"] not in RESOLVED_STATUSES:
            changes["resolved_at"] = now
        elif changes["status"] not in RESOLVED_STATUSES:
            unset["resolved_at"] = ""
        events.append(_status_event(current["status"], changes["status"], user=user, now=now))
    if current.get("duplicate_of") and changes.get("status", Status.CLOSED.value) != Status.CLOSED.value:
        # reopening (or resolving on its own) a duplicate undoes the mark: a duplicate is always CLOSED
        unset["duplicate_of"] = ""
        unmarked = await bk.mongo.incidents.find_one({"_id": current["duplicate_of"]}, CANONICAL_PROJECTION)
        if unmarked is not None and _may_name(unmarked, current):
            events.append(_comment(f"No longer a duplicate of {unmarked['name']} ({user.username})", user=user,
                                   now=now, was_duplicate_of=unmarked["name"]))
    update: dict[str, Any] = {"$set": changes}
    if unset:
        update["$unset"] = unset
    if events:
        update["$push"] = {"timeline": {"$each": events}}

    resolving = changes.get("status") in RESOLVED_STATUSES and current["status"] not in RESOLVED_STATUSES
    learned = changes.get("root_cause") not in (None, current.get("root_cause"))
    happened = [await hooks.announce(bk, what, {**current, **changes})
                for what, yes in ((Happened.RESOLVED, resolving), (Happened.LEARNED, learned)) if yes]
    audit = {k: {"from": current.get(k), "to": v} for k, v in changes.items()
             if k not in ("updated_at", "severity_rank") and current.get(k) != v}

    async def op(s):
        updated = await bk.mongo.incidents.find_one_and_update({"_id": current["_id"]}, update, session=s,
                                                               return_document=ReturnDocument.AFTER)
        for announcement in happened if updated is not None else ():
            await announcement.within(updated, session=s)
        if updated is not None:
            await record_audit(bk, action="update", user=user, subject_type=SUBJECT, subject_id=current["_id"],
                               changes=audit, session=s)
        if "duplicate_of" in unset and updated is not None:
            await record_audit(bk, action="unmark_duplicate", user=user, subject_type="incident",
                               subject_id=current["_id"], session=s, changes={
                                   "duplicate_of": {"from": current["duplicate_of"], "to": None},
                                   "status": {"from": current["status"], "to": changes["status"]}})
        return updated

    updated = await outbox.write(bk, INDEX, current["_id"], op)
    for announcement in happened if updated is not None else ():
        await announcement.after_commit()
    return updated


async def add_events(bk: Backends, *, name: str, events: list[TimelineEventIn], user: User) -> dict:
    """Append events atomically ($push): concurrent appends never lose one. Returns the incident.

    A timeline holds at most `max_events_per_incident` events and `max_timeline_bytes` of BSON (far
    below MongoDB's 16 MB document limit); the check is part of the same atomic update, so
    concurrent appends cannot overshoot it. Past it: 409 TIMELINE_FULL."""
    require_role(user, Role.EDITOR)
    docs = [_event_doc(e) for e in events]
    size = _event_bytes(docs)
    max_events, max_bytes = bk.settings.max_events_per_incident, bk.settings.max_timeline_bytes
    room = {"$expr": {"$and": [
        {"$lte": [{"$size": {"$ifNull": ["$timeline", []]}}, max_events - len(docs)]},
        {"$lte": [{"$ifNull": ["$timeline_bytes", 0]}, max_bytes - size]}]}}
    visible = classification.mongo_filter(user)
    updated = await bk.mongo.incidents.find_one_and_update(
        {"name": name, **visible, **room},
        {"$push": {"timeline": {"$each": docs}}, "$set": {"updated_at": utcnow()}, "$inc": {"timeline_bytes": size}},
        return_document=ReturnDocument.AFTER)
    if updated is None:
        counts = {"n": {"$size": {"$ifNull": ["$timeline", []]}}, "timeline_bytes": 1}
        current = await bk.mongo.incidents.find_one({"name": name, **visible}, counts)
        if current is None:
            raise _not_found(name)
        raise Conflict(f"The timeline of '{name}' is full: at most {max_events} events and {max_bytes} bytes",
                       {"event_count": current["n"], "timeline_bytes": current.get("timeline_bytes", 0),
                        "adding_events": len(docs), "adding_bytes": size, "max_events": max_events,
                        "max_bytes": max_bytes}, code="TIMELINE_FULL")
    await record_audit(bk, action="add_events", user=user, subject_type=SUBJECT, subject_id=updated["_id"],
                       changes={"events": len(docs), "types": sorted({d["type"] for d in docs})})
    await outbox.record(bk, embeddings.KIND, updated["_id"])  # its first events are part of its meaning
    await bk.notify_index(embeddings.KIND, updated["_id"])
    if any(d["type"] == EventType.ANALYSIS.value for d in docs):
        learned = await hooks.announce(bk, Happened.LEARNED, updated)
        await learned.within(updated)
        await learned.after_commit()
    return updated


async def resolve_incident(bk: Backends, *, name: str, data: IncidentResolve, user: User) -> dict:
    """Resolve an open incident: status RESOLVED, resolution recorded, a Resolution event appended."""
    require_role(user, Role.EDITOR)
    now = utcnow()
    resolved_at = data.resolved_at or now
    changes: dict[str, Any] = {"status": Status.RESOLVED.value, "resolution": data.resolution,
                               "resolved_at": resolved_at, "updated_at": now}
    if data.root_cause is not None:
        changes["root_cause"] = data.root_cause
    event = _event_doc(TimelineEventIn(type=EventType.RESOLUTION, source=data.source or EVENT_SOURCE,
                                       timestamp=resolved_at, details={"actor": user.username},
                                       message=f"Resolved by {user.username}: {data.resolution}"[:5000]))
    current = await get_incident(bk, name=name, user=user)
    resolved = await hooks.announce(bk, Happened.RESOLVED, {**current, **changes})

    async def op(s):
        updated = await bk.mongo.incidents.find_one_and_update(
            {"_id": current["_id"], "status": {"$nin": sorted(RESOLVED_STATUSES)}},
            {"$set": changes, "$push": {"timeline": event}}, session=s, return_document=ReturnDocument.AFTER)
        if updated is not None:
            await resolved.within(updated, session=s)
            await record_audit(bk, action="resolve", user=user, subject_type=SUBJECT, subject_id=current["_id"],
                               session=s, changes={"status": {"from": current["status"], "to": updated["status"]},
                                                   **{k: changes[k] for k in ("resolution", "root_cause")
                                                      if k in changes}})
        return updated

    updated = await outbox.write(bk, INDEX, current["_id"], op)
    if updated is None:
        raise Conflict(f"Incident '{name}' is already {current['status']}", {"status": current["status"]},
                       code="ALREADY_RESOLVED")
    await resolved.after_commit()
    return updated


async def timeline(bk: Backends, *, name: str, user: User) -> dict[str, Any]:
    """The IncidentTimeline envelope; optional event keys are left out when absent."""
    doc = await get_incident(bk, name=name, user=user, projection={"name": 1, "namespace": 1, "timeline": 1})
    events = []
    for e in sorted_events(doc):
        out = {"timestamp": for_body(e["timestamp"]), "type": e["type"], "source": e["source"], "message": e["message"]}
        if e.get("severity") is not None:
            out["severity"] = e["severity"]
        if e.get("details") is not None:
            out["details"] = e["details"]
        events.append(out)
    return {"apiVersion": TIMELINE_API_VERSION, "kind": TIMELINE_KIND,
            "metadata": {"name": doc["name"], "namespace": doc.get("namespace", "default"), "eventCount": len(events)},
            "events": events}


async def similar_incidents(bk: Backends, *, user: User, limit: int = 5, name: str | None = None,
                            incident_id: str | None = None, namespace: str | None = None,
                            statuses: list[str] | tuple[str, ...] = (), days: int | None = None,
                            ) -> tuple[dict, list[similarity.Match]]:
    """The incident, and the past incidents the user may see that are most like it, best first, by the
    shared hybrid ranking (app/incidents/similarity.py: text, meaning, structure), each with its 0-1
    score and matching factors; optionally only those of one namespace, of some statuses, or detected in
    the last `days` days."""
    if not 1 <= limit <= 50:
        raise ValidationFailed("limit must be between 1 and 50", {"field": "limit"})
    if days is not None and not 1 <= days <= 36500:
        raise ValidationFailed("days must be between 1 and 36500", {"field": "days"})
    known = {s.value for s in Status}
    if bad := [s for s in statuses if s not in known]:
        raise ValidationFailed(f"Unknown status {bad[0]!r}", {"field": "status", "allowed": sorted(known)})
    doc = await get_incident(bk, name=name, incident_id=incident_id, user=user)
    since = utcnow() - timedelta(days=days) if days else None
    return doc, await similarity.similar(bk, doc, user=user, limit=limit, namespace=namespace or None,
                                         statuses=tuple(statuses), since=since)

# --- duplicates --------------------------------------------------------------------------------
# Two reports of one outage: the later one is CLOSED with `duplicate_of` = the canonical's _id. A
# duplicate is always CLOSED and never points at another duplicate (no chains): naming a duplicate as
# the canonical means its own canonical, and marking an incident that has duplicates re-points them.


def _duplicate_not_found(name: str) -> NotFound:
    """A canonical that is missing or hidden from the caller: the same answer either way."""
    return NotFound(f"Incident '{name}' not found", {"field": "duplicate_of"}, code="INCIDENT_NOT_FOUND")


def _may_name(canonical: Mapping[str, Any], twin: Mapping[str, Any]) -> bool:
    """Whether the twin's timeline may name its canonical: only when every reader of the twin may see
    the canonical (a reader who may not never gets a hint that it exists)."""
    default = classification.DEFAULT.value
    return (Classification(canonical.get("data_classification", default)).rank
            <= Classification(twin.get("data_classification", default)).rank)


async def canonical_of(bk: Backends, *, name: str, user: User) -> dict:
    """The incident `name` as a canonical: itself, or the canonical it is a duplicate of. A 404
    (field `duplicate_of`) when it is missing or hidden from the user. A twin whose canonical the user
    may not see reads to them like a CLOSED incident that duplicates nothing, so both are refused alike
    (409 `DUPLICATE_TARGET_CLOSED`), never as a 404 that would confirm the hidden canonical exists."""
    visible = classification.mongo_filter(user)
    doc = await bk.mongo.incidents.find_one({"name": name, **visible}, {**CANONICAL_PROJECTION, "status": 1})
    if doc is None:
        raise _duplicate_not_found(name)
    target = doc
    for _ in range(MAX_DUPLICATE_HOPS):
        if not doc.get("duplicate_of"):
            break
        doc = await bk.mongo.incidents.find_one({"_id": doc["duplicate_of"], **visible}, CANONICAL_PROJECTION)
        if doc is None:
            break
    if doc is None or (doc is target and target.get("status") == Status.CLOSED.value):
        raise Conflict(f"Incident '{name}' is closed: mark duplicates against an incident still open or resolved",
                       {"field": "duplicate_of", "status": Status.CLOSED.value}, code="DUPLICATE_TARGET_CLOSED")
    return {k: v for k, v in doc.items() if k != "status"}


async def canonical_names(bk: Backends, *, docs: list[Mapping[str, Any]], user: User) -> dict[str, str]:
    """The names of the canonicals of these incidents that the user may see, by id (one query)."""
    ids = sorted({d["duplicate_of"] for d in docs if d.get("duplicate_of")})
    if not ids:
        return {}
    found = bk.mongo.incidents.find({"_id": {"$in": ids}, **classification.mongo_filter(user)}, {"name": 1})
    return {d["_id"]: d["name"] async for d in found}


async def mark_duplicate(bk: Backends, *, name: str, data: IncidentMarkDuplicate, user: User) -> dict:
    """Close an incident as a duplicate of another (status CLOSED, `duplicate_of` set): the status
    change event, a Comment naming the canonical (when every reader of this incident may see it), the
    audit record and the outbox entry in one transaction. Marking again with the same canonical
    changes nothing; another canonical replaces it. Incidents that were duplicates of this one follow
    it to its canonical. Closing as a duplicate starts no postmortem (the canonical's covers it)."""
    require_role(user, Role.EDITOR)
    current = await get_incident(bk, name=name, user=user)
    canonical = await canonical_of(bk, name=data.duplicate_of, user=user)
    if canonical["_id"] == current["_id"]:
        what = "itself" if data.duplicate_of == current["name"] else f"'{data.duplicate_of}', its own duplicate"
        raise ValidationFailed(f"Incident '{name}' cannot be a duplicate of {what}", {"field": "duplicate_of"},
                               code="DUPLICATE_OF_ITSELF")
    previous, closed = current.get("duplicate_of"), Status.CLOSED.value
    if previous == canonical["_id"] and current["status"] == closed:
        return current
    now = utcnow()
    changes: dict[str, Any] = {"status": closed, "duplicate_of": canonical["_id"], "updated_at": now}
    events = []
    if current["status"] != closed:
        if current["status"] not in RESOLVED_STATUSES:
            changes["resolved_at"] = now
        events.append(_status_event(current["status"], closed, user=user, now=now))
    if _may_name(canonical, current):
        events.append(_comment(f"Marked as a duplicate of {canonical['name']} by {user.username}", user=user, now=now,
                               duplicate_of=canonical["name"]))
    update: dict[str, Any] = {"$set": changes}
    if events:
        update["$push"] = {"timeline": {"$each": events}}

    async def op(s):
        # the canonical is checked again inside the transaction: it may have become a duplicate meanwhile
        still = await bk.mongo.incidents.find_one({"_id": canonical["_id"]}, {"duplicate_of": 1}, session=s)
        if still is None or still.get("duplicate_of"):
            raise Conflict(f"Incident '{canonical['name']}' changed meanwhile; try again", {"field": "duplicate_of"},
                           code="CONCURRENT_UPDATE")
        updated = await bk.mongo.incidents.find_one_and_update(
            {"_id": current["_id"], "duplicate_of": previous}, update, session=s,
            return_document=ReturnDocument.AFTER)
        if updated is None:  # marked meanwhile: the same mark is done; another one wins the race
            now_doc = await bk.mongo.incidents.find_one({"_id": current["_id"]}, session=s)
            if now_doc is not None and now_doc.get("duplicate_of") == canonical["_id"]:
                return now_doc
            raise Conflict(f"Incident '{name}' changed meanwhile; try again", code="CONCURRENT_UPDATE")
        repointed = await bk.mongo.incidents.update_many({"duplicate_of": current["_id"]},
                                                         {"$set": {"duplicate_of": canonical["_id"]}}, session=s)
        await record_audit(bk, action="mark_duplicate", user=user, subject_type="incident", subject_id=current["_id"],
                           session=s, changes={"duplicate_of": {"from": previous, "to": canonical["_id"]},
                                               "status": {"from": current["status"], "to": closed},
                                               "repointed_duplicates": repointed.modified_count})
        return updated

    return await outbox.write(bk, INDEX, current["_id"], op)
