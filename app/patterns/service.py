"""Learning patterns: the recurring causes, fixes and preventions an organisation keeps meeting.

Everyone authenticated reads the patterns their clearance allows (a pattern is classified as the most secret
of its sources unless an admin says more; a hidden one is a 404 like a missing one), and a pattern's
`source_incidents` / `source_postmortems` show only the ones the reader may see. Admins create, edit,
delete, validate and merge them; editors apply them to incidents. A validated pattern is never rewritten
without a trace: each change to it appends `{at, by, action, before}` to its `history`. Every change is
audit-logged. Mining patterns from incidents (`update_learning_patterns`): app/patterns/runs.py.

Clearance: nobody classifies a pattern above their own clearance (a 400, `classification.check_may_classify`),
and an admin who rewrites a pattern's sources keeps the ones they cannot see (they cannot judge them).
`frequency` is the number of distinct source incidents, as mining counts it: set on creation, on PUT and
whenever PATCH or merge change the source incidents, unless the admin sends their own figure with them.

History is read like the document (`readable_history`): an entry is shown only to readers cleared for the
most secret the pattern was just before or just after that change (so a pattern declassified after being
sanitised does not show its secret past to its new readers), and the sources an entry's `before` names
only as far as the reader may see them, like `source_incidents`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Container, Mapping

from pydantic import BaseModel
from pymongo import ReturnDocument

from app import classification
from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Conflict, ValidationFailed
from app.incidents import service as incidents
from app.listing import Filter, ListSpec, Page
from app.repository import Repository
from app.patterns import triggers
from app.patterns.models import (ApplyRequest, MergeRequest, PatternContent, PatternType, ValidateRequest)
from app.postmortems import service as postmortems
from app.timefmt import utcnow
from app.users.models import Classification, Role, User, require_role
from app.webhooks import events as webhook_events

LIST_SPEC = ListSpec(
    collection="learning_patterns",
    filters=(Filter("pattern_type", "pattern_type", PatternType), Filter("is_validated", "is_validated", bool)),
    search_fields=("name", "description", "triggers", "actions"),
    ordering={"created_at": "created_at", "confidence_score": "confidence_score", "frequency": "frequency",
              "success_rate": "success_rate", "updated_at": "updated_at"},
    default_ordering=("-confidence_score",),
)
CONTENT = ("name", "pattern_type", "description", "triggers", "actions", "outcomes", "source_incidents",
           "source_postmortems", "frequency", "success_rate", "confidence_score", "data_classification")
HISTORY_MAX = 100
SOURCES = ("source_incidents", "source_postmortems")


PATTERNS = Repository("Learning pattern", "PATTERN_NOT_FOUND", LIST_SPEC)


async def get_pattern(bk: Backends, *, pattern_id: str, user: User) -> dict:
    return await PATTERNS.get(bk, pattern_id, user)


async def list_patterns(bk: Backends, *, params: Mapping[str, Any], user: User) -> Page:
    return await PATTERNS.page(bk, params, user)


MAX_MATCHED = 500  # validated patterns looked at for one incident


async def validated_matching(bk: Backends, *, incident: Mapping[str, Any], user: User,
                             projection: Mapping[str, Any] | None = None) -> list[dict]:
    """The validated patterns `user` may see whose triggers `incident` shows (app/patterns/triggers.py):
    what recommendations and postmortem drafts put to work."""
    text = triggers.incident_text(incident)
    found = await bk.mongo.learning_patterns.find({"is_validated": True, **classification.mongo_filter(user)},
                                                  projection).limit(MAX_MATCHED).to_list(None)
    return [p for p in found if triggers.matched(p, text)[1]]


def named_sources(doc: Mapping[str, Any], field: str) -> list[str]:
    """The ids a pattern names in `field`: its sources, and those its history's `before` snapshots held."""
    befores = [(h.get("before") or {}).get(field) for h in doc.get("history") or []]
    return [*(doc.get(field) or []), *(i for ids in befores if isinstance(ids, list) for i in ids)]


async def visible_sources(bk: Backends, docs: list[dict], user: User) -> tuple[dict[str, dict], dict[str, dict]]:
    """The source incidents and postmortems these patterns (and their history) name that `user` may see, by id
    (one query each)."""
    inc_ids = list({i for d in docs for i in named_sources(d, "source_incidents")})
    pm_ids = list({i for d in docs for i in named_sources(d, "source_postmortems")})
    found_incidents = await incidents.incidents_by_ids(bk, ids=inc_ids, user=user) if inc_ids else {}
    found_pms = await postmortems.postmortems_by_ids(bk, ids=pm_ids, user=user) if pm_ids else {}
    return found_incidents, found_pms


async def _checked_sources(bk: Backends, values: dict[str, Any], user: User) -> list[dict]:
    """The sources named must exist and be visible to the admin; returns their documents."""
    found_incidents, found_pms = await visible_sources(bk, [values], user)
    for field, found in (("source_incidents", found_incidents), ("source_postmortems", found_pms)):
        if missing := [i for i in values.get(field) or [] if i not in found]:
            raise ValidationFailed(f"Unknown {field.replace('_', ' ')[:-1]}", {"field": field, "unknown": missing[:20]},
                                   code="UNKNOWN_SOURCE")
    return [*found_incidents.values(), *found_pms.values()]


def _plain(model: BaseModel, *, replace: bool) -> dict[str, Any]:
    sent = model.model_dump(mode="python", exclude_unset=not replace)
    if not replace and (bad := [k for k, v in sent.items() if v is None]):
        raise ValidationFailed("These fields may not be null", [{"field": k, "message": "may not be null"} for k in bad])
    out = {k: (v.value if hasattr(v, "value") else v) for k, v in sent.items()}
    for field in SOURCES:  # each source once
        if field in out:
            out[field] = list(dict.fromkeys(out[field]))
    return out


def frequency(source_incidents: list[str] | None) -> int:
    """How often the pattern occurred, as mining counts it: its distinct source incidents."""
    return len(set(source_incidents or []))


def _level(value: Any) -> Classification:
    return Classification(value or classification.DEFAULT.value)


def history_levels(doc: Mapping[str, Any]) -> list[Classification]:
    """Each history entry's classification: the most secret the pattern was just before or just after it.

    Read backwards from the pattern's classification now: every change to a validated pattern is traced, and
    an entry's `before` holds `data_classification` exactly when that change altered it."""
    after = _level(doc.get(classification.FIELD))
    levels: list[Classification] = []
    for entry in reversed(doc.get("history") or []):
        before_doc = entry.get("before") or {}
        before = _level(before_doc[classification.FIELD]) if classification.FIELD in before_doc else after
        levels.append(max(before, after, key=lambda c: c.rank))
        after = before
    return levels[::-1]


def readable_history(doc: Mapping[str, Any], user: User, *, incidents: Container[str],
                     postmortems: Container[str]) -> list[dict[str, Any]]:
    """The history entries `user` may read (their classification, `history_levels`, within the user's clearance),
    each `before` naming only the sources in `incidents` / `postmortems` (those the user may see)."""
    out = []
    for entry, level in zip(doc.get("history") or [], history_levels(doc)):
        if not classification.can_see(user, {classification.FIELD: level.value}):
            continue
        before = dict(entry.get("before") or {})
        for field, seen in (("source_incidents", incidents), ("source_postmortems", postmortems)):
            if isinstance(before.get(field), list):
                before[field] = [i for i in before[field] if i in seen]
        out.append({**entry, "before": before})
    return out


async def create_pattern(bk: Backends, *, data: PatternContent, user: User) -> dict:
    require_role(user, Role.ADMIN)
    values = _plain(data, replace=True)
    classification.check_may_classify(user, values["data_classification"], what="a learning pattern")
    sources = await _checked_sources(bk, values, user)
    values["data_classification"] = values["data_classification"] or classification.most_secret(sources)
    if values["frequency"] is None:
        values["frequency"] = frequency(values["source_incidents"])
    now = utcnow()
    doc = {**values, "_id": str(uuid.uuid4()), "is_validated": False, "validated_by": None, "validation_notes": "",
           "validated_at": None, "times_applied": 0, "last_applied": None, "applications": [], "history": [],
           "origin": "manual", "created_at": now, "updated_at": now, "created_by": user.id}

    async def op(s):
        await bk.mongo.learning_patterns.insert_one(doc, session=s)
        await record_audit(bk, action="create", user=user, subject_type="learning_pattern", subject_id=doc["_id"],
                           changes={"name": doc["name"]}, session=s)

    await bk.transaction(op)
    return doc


def _trace(current: dict, changes: dict[str, Any], user: User, action: str) -> dict[str, Any] | None:
    """A history entry (what the changed fields were before) when a validated pattern changes."""
    before = {k: current.get(k) for k in changes if k in CONTENT and current.get(k) != changes[k]}
    if not current.get("is_validated") or not before:
        return None
    return {"at": utcnow(), "by": user.id, "action": action, "before": before}


async def _write(bk: Backends, current: dict, update: dict[str, Any], *, user: User, action: str,
                 audit: dict[str, Any], extra=None) -> dict:
    """Apply `update` if the pattern did not change meanwhile, with its audit entry (and `extra(session)`)."""
    async def op(s):
        doc = await bk.mongo.learning_patterns.find_one_and_update(
            {"_id": current["_id"], "updated_at": current["updated_at"]}, update, session=s,
            return_document=ReturnDocument.AFTER)
        if doc is not None:
            await record_audit(bk, action=action, user=user, subject_type="learning_pattern", subject_id=current["_id"],
                               changes=audit, session=s)
            if extra is not None:
                await extra(s)
        return doc

    doc = await bk.transaction(op)
    if doc is None:
        raise Conflict("The pattern changed meanwhile; reload it and try again", code="CONCURRENT_UPDATE")
    return doc


async def update_pattern(bk: Backends, *, pattern_id: str, data: BaseModel, user: User, replace: bool = False) -> dict:
    """Change a pattern (admin; PUT: `replace`): within the admin's clearance, sources they cannot see kept,
    `frequency` recomputed when the sources change and no figure is sent; traced when validated."""
    require_role(user, Role.ADMIN)
    current = await get_pattern(bk, pattern_id=pattern_id, user=user)
    changes = _plain(data, replace=replace)
    classification.check_may_classify(user, changes.get("data_classification"), what="a learning pattern")
    if any(f in changes for f in SOURCES):
        await _checked_sources(bk, {k: changes.get(k) for k in SOURCES}, user)
        seen_incidents, seen_pms = await visible_sources(bk, [{f: current.get(f) for f in SOURCES}], user)
        for field, seen in (("source_incidents", seen_incidents), ("source_postmortems", seen_pms)):
            if field in changes:  # what the admin cannot see, they cannot drop
                hidden = [i for i in current.get(field) or [] if i not in seen]
                changes[field] = list(dict.fromkeys([*changes[field], *hidden]))
    moved = "source_incidents" in changes and changes["source_incidents"] != (current.get("source_incidents") or [])
    if changes.get("frequency") is None and (replace or moved):
        changes["frequency"] = frequency(changes["source_incidents"])
    if replace and changes.get("data_classification") is None:
        changes["data_classification"] = current.get("data_classification", classification.DEFAULT.value)
    if not changes:
        return current
    update: dict[str, Any] = {"$set": {**changes, "updated_at": utcnow()}}
    if trace := _trace(current, changes, user, "update"):
        update["$push"] = {"history": {"$each": [trace], "$slice": -HISTORY_MAX}}
    return await _write(bk, current, update, user=user, action="update",
                        audit={k: v for k, v in changes.items() if current.get(k) != v})


async def delete_pattern(bk: Backends, *, pattern_id: str, user: User) -> None:
    require_role(user, Role.ADMIN)
    current = await get_pattern(bk, pattern_id=pattern_id, user=user)

    async def op(s):
        await bk.mongo.learning_patterns.delete_one({"_id": current["_id"]}, session=s)
        await record_audit(bk, action="delete", user=user, subject_type="learning_pattern", subject_id=current["_id"],
                           changes={"name": current["name"]}, session=s)

    await bk.transaction(op)


async def validate(bk: Backends, *, pattern_id: str, data: ValidateRequest, user: User) -> dict:
    """Mark the pattern validated by an admin, with notes (again: the notes and validator are updated). A
    pattern without actions is not offered: nothing in it could be acted on (409 PATTERN_HAS_NO_ACTIONS)."""
    require_role(user, Role.ADMIN)
    current = await get_pattern(bk, pattern_id=pattern_id, user=user)
    if not [a for a in current.get("actions") or [] if isinstance(a, str) and a.strip()]:
        raise Conflict("This learning pattern has no actions (no fix or prevention recorded by its incidents); add "
                       "actions before validating it", {"field": "actions"}, code="PATTERN_HAS_NO_ACTIONS")
    now = utcnow()
    update = {"$set": {"is_validated": True, "validated_by": user.id, "validation_notes": data.validation_notes,
                       "validated_at": now, "updated_at": now}}

    async def announce(s) -> None:  # the first validation is announced to webhooks, in the same transaction
        if not current.get("is_validated"):
            await webhook_events.announce(bk, "pattern.validated", {**current, **update["$set"]}, session=s)

    return await _write(bk, current, update, user=user, action="validate",
                        audit={"validation_notes": data.validation_notes}, extra=announce)


async def apply(bk: Backends, *, pattern_id: str, data: ApplyRequest, user: User) -> dict:
    """Record that the pattern was applied (editor), to an incident the user may see when one is named."""
    require_role(user, Role.EDITOR)
    current = await get_pattern(bk, pattern_id=pattern_id, user=user)
    incident_id = data.incident_id
    if incident_id is not None:  # named by its id or its name
        incident_id = (await incidents.referenced_incident(bk, incident_id=incident_id, user=user,
                                                           field="incident_id"))["_id"]
    now = utcnow()
    entry = {"incident": incident_id, "by": user.id, "at": now}
    update = {"$inc": {"times_applied": 1}, "$set": {"last_applied": now, "updated_at": now},
              "$push": {"applications": {"$each": [entry], "$slice": -HISTORY_MAX}}}
    return await _write(bk, current, update, user=user, action="apply", audit={"incident": incident_id})


async def merge(bk: Backends, *, pattern_id: str, data: MergeRequest, user: User) -> dict:
    """Merge another pattern into this one (admin): sources, triggers, actions and outcomes united,
    frequency the number of source incidents, success rate and confidence weighted by frequency, the
    applications added up; the other pattern is deleted. Traced in the history when this one is validated."""
    require_role(user, Role.ADMIN)
    if data.other == pattern_id:
        raise ValidationFailed("A pattern cannot be merged into itself", {"field": "other"})
    current = await get_pattern(bk, pattern_id=pattern_id, user=user)
    other = await get_pattern(bk, pattern_id=data.other, user=user)

    def union(field: str) -> list:
        return list(dict.fromkeys([*(current.get(field) or []), *(other.get(field) or [])]))

    fa, fb = max(current.get("frequency") or 0, 0), max(other.get("frequency") or 0, 0)
    weight = (fa + fb) or 1

    def mean(field: str) -> float:
        return round(((current.get(field) or 0) * (fa or (0 if fb else 1)) + (other.get(field) or 0) * fb) / weight, 4)

    changes: dict[str, Any] = {f: union(f) for f in ("source_incidents", "source_postmortems", "triggers", "actions",
                                                       "outcomes")}
    changes.update(frequency=frequency(changes["source_incidents"]) or fa + fb, success_rate=mean("success_rate"),
                   confidence_score=mean("confidence_score"),
                   data_classification=classification.most_secret([current, other]))
    update: dict[str, Any] = {"$set": {**changes, "times_applied": (current.get("times_applied") or 0)
                                       + (other.get("times_applied") or 0), "updated_at": utcnow(),
                                       "last_applied": max((d["last_applied"] for d in (current, other)
                                                            if d.get("last_applied")), default=None)}}
    if trace := _trace(current, changes, user, f"merge {other['_id']}"):
        update["$push"] = {"history": {"$each": [trace], "$slice": -HISTORY_MAX}}

    async def drop_other(s):
        gone = await bk.mongo.learning_patterns.delete_one({"_id": other["_id"], "updated_at": other["updated_at"]},
                                                           session=s)
        if not gone.deleted_count:
            raise Conflict("The other pattern changed meanwhile; reload it and try again", code="CONCURRENT_UPDATE")

    return await _write(bk, current, update, user=user, action="merge", audit={"merged": other["_id"]},
                        extra=drop_other)


async def statistics(bk: Backends, *, user: User, weeks: int = 12) -> dict[str, Any]:
    """By type, validated share, most applied, success rates, and how often each pattern's incidents
    occurred per week over the window (a trend a dashboard can plot: by when they happened, `detected_at`,
    never when they were imported; a duplicate whose canonical is also a source counts once) — over what the
    user may see."""
    if not 1 <= weeks <= 104:
        raise ValidationFailed("weeks must be between 1 and 104", {"field": "weeks"})
    visible = classification.mongo_filter(user)
    since = utcnow() - timedelta(weeks=weeks)
    docs = await bk.mongo.learning_patterns.find(visible, {"name": 1, "pattern_type": 1, "is_validated": 1,
                                                           "times_applied": 1, "success_rate": 1,
                                                           "source_incidents": 1}).to_list(None)
    by_type = {t.value: [d for d in docs if d.get("pattern_type") == t.value] for t in PatternType}
    ids = list({i for d in docs for i in d.get("source_incidents") or []})
    when: dict[str, Any] = {}  # when each source incident happened: detected_at (created_at when unknown)
    canonical: dict[str, str] = {}  # a duplicate's canonical incident: twins count once
    if ids:
        async for d in bk.mongo.incidents.find({"_id": {"$in": ids}, **visible},
                                               {"detected_at": 1, "created_at": 1, "duplicate_of": 1}):
            at = d.get("detected_at") or d.get("created_at")
            if at is not None and (at if at.tzinfo else at.replace(tzinfo=since.tzinfo)) >= since:
                when[d["_id"]] = at
            if d.get("duplicate_of"):
                canonical[d["_id"]] = d["duplicate_of"]
    trend = []
    for d in docs:
        counts: dict[str, int] = {}
        sources = set(d.get("source_incidents") or [])
        for i in dict.fromkeys(d.get("source_incidents") or []):
            if i in when and canonical.get(i) not in sources:
                monday = (when[i] - timedelta(days=when[i].weekday())).date().isoformat()
                counts[monday] = counts.get(monday, 0) + 1
        if counts:
            trend.append({"pattern": d["_id"], "name": d["name"],
                          "weeks": [{"week": w, "occurrences": n} for w, n in sorted(counts.items())]})
    return {
        "total_patterns": len(docs),
        "by_type": {t: len(v) for t, v in by_type.items()},
        "validated_count": sum(1 for d in docs if d.get("is_validated")),
        "validated_share": round(sum(1 for d in docs if d.get("is_validated")) / len(docs), 4) if docs else 0.0,
        "most_applied": [{"id": d["_id"], "name": d["name"], "times_applied": d.get("times_applied") or 0}
                         for d in sorted(docs, key=lambda d: (-(d.get("times_applied") or 0), d["_id"]))[:5]
                         if d.get("times_applied")],
        "average_success_rate_by_type": {t: (round(sum(d.get("success_rate") or 0 for d in v) / len(v), 4) if v else None)
                                         for t, v in by_type.items()},
        "weekly_occurrences": trend,
        "window_weeks": weeks,
    }
