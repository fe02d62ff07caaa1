"""Postmortems and their review workflow: every rule about them lives here.

A postmortem belongs to one incident and carries a `data_classification` (default: its incident's);
a reader sees it only at or below their clearance, and a hidden one is answered like a missing one.
Status moves DRAFT → IN_REVIEW → APPROVED → PUBLISHED → ARCHIVED, and IN_REVIEW → DRAFT when changes
are requested; any other move is a 409 naming the current status and the allowed moves. Every
change is audit-logged. `completion_percentage` and `is_overdue` are derived when read.

Separation of duties: whoever answers for the content — the owner, the author (who created it) and
everyone who owned it before — never approves it nor is named its approver. Action items are edited one
by one, or written whole only on the condition that the list is still the one the writer read
(`action_items_version`). An ARCHIVED postmortem is read-only. Every write applies only while the
postmortem is still visible to the writer.

Completion, overdue and the default due date are app/postmortems/completion.py; the knowledge-base article a
published postmortem becomes is app/postmortems/knowledge_article.py. Both are read through this module too."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import timedelta
from typing import Any, Mapping

from pydantic import BaseModel
from pymongo import ReturnDocument

from app import classification
from app.activity.service import record_audit, record_read
from app.backends import Backends
from app.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from app.incidents import service as incidents
from app.incidents.models import Severity
from app.listing import Filter, ListSpec, Page
from app.repository import Repository
from app.permissions import Rule
# completion and the published article have their own modules; callers (REST, GraphQL, jobs) still read
# complete_sections, completion_percentage, is_overdue and sync_pending_articles through the service
from app.postmortems import automation
from app.postmortems.completion import (CLOSED_STATUSES, complete_sections, completion_percentage,  # noqa: F401
                                        default_due_date, is_overdue)
from app.postmortems.knowledge_article import prepare_article, sync_article, sync_pending_articles  # noqa: F401
from app.postmortems.models import (SETTLED_ITEM_STATUSES, ActionItemUpdate, PostmortemCreate,
                                    PostmortemStatus, item_changes, items_version_sent, plain_changes)
from app.timefmt import isoz, utcnow
from app.users import service as users
from app.users.models import Role, User, require_role

log = logging.getLogger(__name__)
SEVERITY_RANK = incidents.SEVERITY_RANK
S = PostmortemStatus
# status -> {target: action}
MOVES: dict[str, dict[str, str]] = {
    S.DRAFT.value: {S.IN_REVIEW.value: "submit_for_review"},
    S.IN_REVIEW.value: {S.APPROVED.value: "approve", S.DRAFT.value: "request_changes"},
    S.APPROVED.value: {S.PUBLISHED.value: "publish"},
    S.PUBLISHED.value: {S.ARCHIVED.value: "archive"},
    S.ARCHIVED.value: {},
}
ACTION_TARGET = {action: target for moves in MOVES.values() for target, action in moves.items()}

# Who may call what beyond a role (app/permissions.py): the REST operations and GraphQL fields declare these.
UPDATE_RULE = Rule(Role.EDITOR, ownership="changing its owner or approver: the owner or an admin")
APPROVE_RULE = Rule(Role.EDITOR, ownership="its approver or an admin; never its owner, author or a former owner "
                                           "(an admin's override is audit-logged)")
MOVE_RULES = {action: APPROVE_RULE if action == "approve" else Rule(Role.EDITOR) for action in ACTION_TARGET}

LIST_SPEC = ListSpec(
    collection="postmortems",
    filters=(Filter("status", "status", PostmortemStatus), Filter("severity", "severity", Severity),
             Filter("is_automated", "is_automated", bool),
             Filter("owner", "owner", description="The owner: a username or a user id"),
             Filter("incident", "incident", description="The incident: its name or its id", indexed=True)),
    search_fields=("title", "executive_summary", "root_cause_analysis"),
    ordering={"created_at": "created_at", "updated_at": "updated_at", "due_date": "due_date",
              "severity": "severity_rank"},
    default_ordering=("-created_at",),
)


POSTMORTEMS = Repository("Postmortem", "POSTMORTEM_NOT_FOUND", LIST_SPEC)


def has_content(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, dict)):
        return any(has_content(v) if isinstance(v, (str, list, dict)) else v is not None for v in
                   (value.values() if isinstance(value, dict) else value))
    return value is not None


PEOPLE = ("owner", "approver", "reviewers")


async def _people(bk: Backends, values: dict[str, Any]) -> None:
    """The people a write names (`owner`, `approver`, `reviewers`: a user id or a username each) as user
    ids, in place — before any rule compares them; 400 UNKNOWN_USER for one that names nobody."""
    refs = [v for f in PEOPLE for v in (values.get(f) if isinstance(values.get(f), list) else [values.get(f)]) if v]
    if not refs:
        return
    ids = await users.ids_of(bk, refs)
    for field in PEOPLE:
        value = values.get(field)
        named = value if isinstance(value, list) else [value]
        if missing := [v for v in named if v and v not in ids]:
            raise ValidationFailed(f"Unknown user in '{field}'", {"field": field, "unknown": missing},
                                   code="UNKNOWN_USER")
        if field in values and value:
            values[field] = [ids[v] for v in value] if isinstance(value, list) else ids[value]


def check_editable(current: Mapping[str, Any]) -> None:
    """An ARCHIVED postmortem is the record as it was closed: read-only (409 `POSTMORTEM_ARCHIVED`);
    an admin may still delete it."""
    if current.get("status") == S.ARCHIVED.value:
        raise Conflict("This postmortem is archived and can no longer be edited",
                       {"status": S.ARCHIVED.value}, code="POSTMORTEM_ARCHIVED")


def responsible(doc: Mapping[str, Any]) -> set[str]:
    """Who answers for a postmortem's content: its owner, its author (who created it) and everyone who
    owned it before (`former_owners`). None of them approves it."""
    return {p for p in (doc.get("owner"), doc.get("created_by"), *(doc.get("former_owners") or [])) if p}


def check_duties(current: Mapping[str, Any], changes: Mapping[str, Any], user: User) -> None:
    """Separation of duties, whatever the order of calls: only the owner or an admin changes who owns or
    approves a postmortem (403 `NOT_OWNER`), and its approver is never one of those who answer for it —
    its owner, new or current, its author, a former owner (400 `SELF_APPROVAL`); so nobody names
    themselves, even while handing the postmortem to someone else. `current` is the stored postmortem
    ({} when creating; one stored without its author counts the caller as such)."""
    moved = [k for k in ("owner", "approver") if k in changes and changes[k] != current.get(k)]
    if current and moved and not user.has_role(Role.ADMIN) and user.id != current.get("owner"):
        raise PermissionDenied("Only the postmortem's owner or an admin may change who owns or approves it",
                               {"fields": moved, "required": "owner or admin"}, code="NOT_OWNER")
    if current and not moved:
        return
    approver = changes.get("approver", current.get("approver"))
    authors = responsible(current) | {changes.get("owner", current.get("owner")), current.get("created_by", user.id)}
    if approver and approver in authors:
        raise ValidationFailed("The approver cannot be the postmortem's owner, its author or a former owner",
                               {"field": "approver"}, code="SELF_APPROVAL")


def action_items_version(items: Any) -> str:
    """The version of an action item list: a digest of the list as clients read it. It changes with any
    change of the list or of one of its items, by whatever path (a whole-list write, a single-item edit,
    a draft), and only then."""
    text = json.dumps(public_action_items({"action_items": items}), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _items_condition(current: Mapping[str, Any], changes: dict[str, Any], sent: str | None) -> dict[str, Any]:
    """What a whole-list write of `action_items` (PUT, or a PATCH carrying the list) is conditional on,
    as a MongoDB filter: the list the service just read. A list sent as it is stored is no change at all
    (dropped from `changes`, nothing to lose). Otherwise the writer's `sent` version must be the current
    one (409 `ACTION_ITEMS_CHANGED`: a single-item edit, or another write, came after the writer read);
    without one the write is accepted only while no item was ever edited one by one — clients written
    before versions keep working until someone tracks items (409 `ACTION_ITEMS_VERSION_REQUIRED`)."""
    if "action_items" not in changes:
        return {}
    now = action_items_version(current.get("action_items"))
    if action_items_version(changes["action_items"]) == now:
        del changes["action_items"]
        return {}
    if sent is not None and sent != now:
        raise _items_changed()
    if sent is None and current.get("action_item_edits"):
        raise Conflict("Action items of this postmortem are edited one by one: a write of the whole list must send "
                       "the `action_items_version` it read (reload the postmortem, apply your change, send both)",
                       {"field": "action_items_version"}, code="ACTION_ITEMS_VERSION_REQUIRED")
    return {"action_items": current.get("action_items")}


def _items_changed() -> Conflict:
    return Conflict("The action items changed since you read them; reload the postmortem and apply your change "
                    "again", {"field": "action_items_version"}, code="ACTION_ITEMS_CHANGED")


async def get_postmortem(bk: Backends, *, pm_id: str, user: User) -> dict:
    """One postmortem; a 404 when there is none or the user may not see it."""
    return await POSTMORTEMS.get(bk, pm_id, user)


async def view_postmortem(bk: Backends, *, pm_id: str, user: User) -> dict:
    """One postmortem read by a person (its detail, REST and GraphQL): `get_postmortem`, audit-logged."""
    doc = await get_postmortem(bk, pm_id=pm_id, user=user)
    await record_read(bk, user=user, subject_type="postmortem", subject_id=doc["_id"])
    return doc


async def _list_params(bk: Backends, params: Mapping[str, Any], user: User) -> dict[str, Any]:
    """`owner` is a username or a user id, `incident` an incident's name or id; an unknown one matches nothing."""
    out = await incidents.incident_filter_param(bk, params, user=user)
    if out.get("owner"):
        out["owner"] = (await users.ids_of(bk, [str(out["owner"])])).get(str(out["owner"]), incidents.NOTHING)
    return out


async def list_postmortems(bk: Backends, *, params: Mapping[str, Any], user: User,
                           overdue: bool = False) -> Page:
    """A page of the postmortems the user may see, by DRF-style list parameters (`overdue`: only
    those past their due date and not yet published or archived)."""
    base = {"due_date": {"$lt": utcnow()}, "status": {"$nin": list(CLOSED_STATUSES)}} if overdue else None
    return await POSTMORTEMS.page(bk, await _list_params(bk, params, user), user, base_filter=base)


async def create_postmortem(bk: Backends, *, data: PostmortemCreate, user: User) -> dict:
    """Create a DRAFT postmortem for an incident the user may see (editor)."""
    require_role(user, Role.EDITOR)
    incident = await incidents.referenced_incident(bk, incident_id=data.incident, user=user, field="incident")
    values = plain_changes(data, replace=True)
    values["data_classification"] = values["data_classification"] or incident.get(
        "data_classification", classification.DEFAULT.value)
    classification.check_may_classify(user, values["data_classification"], what="a postmortem")
    values["incident"] = incident["_id"]  # named by its id or its name
    values["owner"] = values["owner"] or user.id
    values["severity"] = values["severity"] or incident["severity"]
    await _people(bk, values)
    check_duties({}, values, user)
    now = utcnow()
    if values["due_date"] is None:
        values["due_date"] = default_due_date(bk, severity=values["severity"], incident=incident, now=now)
    doc = {**values, "_id": str(uuid.uuid4()), "status": S.DRAFT.value, "severity_rank": SEVERITY_RANK[values["severity"]],
           "is_automated": False, "generation_confidence": None, "auto_generated_sections": [],
           "created_at": now, "updated_at": now, "published_at": None, "created_by": user.id}

    async def op(s):
        await bk.mongo.postmortems.insert_one(doc, session=s)
        await automation.items_created(bk, None, doc, session=s)
        await record_audit(bk, action="create", user=user, subject_type="postmortem", subject_id=doc["_id"],
                           changes={"title": doc["title"], "incident": doc["incident"]}, session=s)

    await bk.transaction(op)
    return doc


async def update_postmortem(bk: Backends, *, pm_id: str, data: BaseModel, user: User, replace: bool = False) -> dict:
    """PATCH (only the fields sent) or PUT (`replace`: every field, defaults for those left out; the
    owner stays when not given). Status changes only through the workflow actions."""
    require_role(user, Role.EDITOR)
    current = await get_postmortem(bk, pm_id=pm_id, user=user)
    check_editable(current)
    sent_version = items_version_sent(data)
    changes = plain_changes(data, replace=replace)
    if replace:
        changes["owner"] = changes["owner"] or current["owner"]
        changes["severity"] = changes["severity"] or current["severity"]
        changes["data_classification"] = changes["data_classification"] or current["data_classification"]
        changes["due_date"] = changes["due_date"] or current.get("due_date")
    classification.check_may_classify(user, changes.get("data_classification"), what="a postmortem")
    await _people(bk, changes)
    check_duties(current, changes, user)
    condition = _items_condition(current, changes, sent_version)
    if not changes:
        return current
    # written only while still visible to the writer, not archived, and (for the list) as read; a change of
    # owner or approver only while both are as read, the owner handing over joining the former owners
    where = {"_id": current["_id"], "status": {"$ne": S.ARCHIVED.value}, **classification.mongo_filter(user),
             **condition}
    update: dict[str, Any] = {}
    if any(k in changes and changes[k] != current.get(k) for k in ("owner", "approver")):
        where.update(owner=current.get("owner"), approver=current.get("approver"))
        if current.get("owner") and changes.get("owner", current["owner"]) != current["owner"]:
            update["$addToSet"] = {"former_owners": current["owner"]}
    if "severity" in changes:
        changes["severity_rank"] = SEVERITY_RANK[changes["severity"]]
    audit = {k: v for k, v in changes.items() if current.get(k) != v and k != "severity_rank"}
    auto = current.get("auto_generated_sections") or []
    if any(s in audit for s in auto):  # a section a person edited is no longer auto-generated
        changes["auto_generated_sections"] = [s for s in auto if s not in audit]
    changes["updated_at"] = utcnow()
    update["$set"] = changes

    async def op(s):
        updated = await bk.mongo.postmortems.find_one_and_update(where, update, session=s,
                                                                 return_document=ReturnDocument.AFTER)
        if updated is not None:
            await automation.items_created(bk, current, updated, session=s)
            await record_audit(bk, action="update", user=user, subject_type="postmortem", subject_id=current["_id"],
                               changes=audit, session=s)
        return updated

    updated = await bk.transaction(op)
    if updated is None:  # deleted, reclassified above the writer, archived or changed meanwhile
        now = await get_postmortem(bk, pm_id=pm_id, user=user)
        check_editable(now)
        if condition and action_items_version(now.get("action_items")) != action_items_version(
                current.get("action_items")):
            raise _items_changed()
        raise Conflict("The postmortem changed meanwhile; reload it and try again", code="CONCURRENT_UPDATE")
    return updated


async def delete_postmortem(bk: Backends, *, pm_id: str, user: User) -> None:
    """Delete a postmortem (admin)."""
    current = await get_postmortem(bk, pm_id=pm_id, user=user)
    if not user.has_role(Role.ADMIN):
        raise PermissionDenied("This action requires the 'admin' role",
                               {"role": user.role.value, "required": Role.ADMIN.value})

    async def op(s):
        await bk.mongo.postmortems.delete_one({"_id": current["_id"]}, session=s)
        await record_audit(bk, action="delete", user=user, subject_type="postmortem", subject_id=current["_id"],
                           changes={"title": current["title"], "incident": current["incident"]}, session=s)

    await bk.transaction(op)


def moves_before(status: str, action: str) -> list[str] | None:
    """The moves (actions) that lead from `status` to one where `action` is allowed ([] when it is
    allowed now), None when none leads there."""
    paths, seen = [(status, [])], {status}
    while paths:
        at, path = paths.pop(0)
        if action in MOVES[at].values():
            return path
        for target, move in MOVES[at].items():
            if target not in seen:
                seen.add(target)
                paths.append((target, path + [move]))
    return None


def _refuse(doc: Mapping[str, Any], action: str) -> Conflict:
    """409 INVALID_TRANSITION naming the moves allowed now and, when `action` can be reached, the moves
    needed first (`needs`: approving a DRAFT needs `submit_for_review`)."""
    status = doc["status"]
    allowed = list(MOVES[status])
    needs = moves_before(status, action)
    first = (f": {' then '.join(m + '/' for m in needs)} first" if needs else
             ": it can no longer be done" if needs is None else "")
    return Conflict(f"Cannot {action.replace('_', ' ')} a postmortem in status {status}{first}; allowed moves from "
                    f"{status}: {', '.join(f'{m} (to {t})' for t, m in MOVES[status].items()) or 'none'}",
                    {"status": status, "allowed": allowed, "action": action, "needs": needs or []},
                    code="INVALID_TRANSITION")


async def transition(bk: Backends, *, pm_id: str, action: str, user: User) -> dict:
    """Move a postmortem along the workflow (`action`: submit_for_review, request_changes, approve,
    publish, archive). Approval: the approver or an admin, never its owner, its author (who created it) or a
    former owner — except an admin, whose approval of one they answer for is an override, audit-logged as
    `self_approval` (refused too when `IKL_STRICT_SEPARATION_OF_DUTIES` is set). Publishing stamps published_at. The move is atomic: a concurrent move makes this
    one a 409."""
    require_role(user, Role.EDITOR)
    current = await get_postmortem(bk, pm_id=pm_id, user=user)
    target = ACTION_TARGET[action]
    if target not in MOVES[current["status"]]:
        raise _refuse(current, action)
    where = {"_id": current["_id"], "status": current["status"], **classification.mongo_filter(user)}
    override = action == "approve" and user.id in responsible(current)
    if action == "approve":
        if override and (bk.settings.strict_separation_of_duties or not user.has_role(Role.ADMIN)):
            raise PermissionDenied("Nobody approves a postmortem they own, wrote or owned before: its approver or "
                                   "another admin must", {"required": "approver or admin, not owner or author"},
                                   code="SELF_APPROVAL")
        if not user.has_role(Role.ADMIN) and current.get("approver") != user.id:
            raise PermissionDenied("Only the postmortem's approver or an admin may approve it",
                                   {"required": "approver or admin"}, code="NOT_APPROVER")
    if action == "publish":  # refuse before anything changes when the article could not be written
        await prepare_article(bk, current, user)
    now = utcnow()
    changes: dict[str, Any] = {"status": target, "updated_at": now}
    if action == "publish":  # the article follows; until it is written the postmortem says so
        changes.update(published_at=now, published_by=user.id, article_pending=True)
    if action == "approve":
        changes["approved_at"] = now
        changes["approved_by"] = user.id
        if not current.get("approver"):  # an admin approving one nobody was named for is its approver
            changes["approver"] = user.id
        # approved only as read: same owner, approver and former owners
        where.update(owner=current.get("owner"), approver=current.get("approver"),
                     former_owners=current.get("former_owners"))

    async def op(s):
        updated = await bk.mongo.postmortems.find_one_and_update(where, {"$set": changes}, session=s,
                                                                 return_document=ReturnDocument.AFTER)
        if updated is not None:
            await automation.moved(bk, action, updated, session=s)
            await record_audit(bk, action=action, user=user, subject_type="postmortem", subject_id=current["_id"],
                               changes={"status": {"from": current["status"], "to": target},
                                        **({"self_approval": True} if override else {})}, session=s)
        return updated

    updated = await bk.transaction(op)
    if updated is None:  # moved (or reclassified above the user, or its people changed) meanwhile
        now_doc = await get_postmortem(bk, pm_id=pm_id, user=user)
        if now_doc["status"] != current["status"]:
            raise _refuse(now_doc, action)
        raise Conflict("The postmortem changed meanwhile; reload it and try again", code="CONCURRENT_UPDATE")
    if action == "publish":
        try:
            updated = await sync_article(bk, doc=updated, user=user)
        except Exception as exc:  # noqa: BLE001 - published all the same; the worker's sweep writes the article
            log.warning("postmortem article not written; left to the sweep",
                        extra={"postmortem": updated["_id"], "error": str(exc)[:300]})
    return updated


def public_action_items(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The action items as clients read them (dates in ISO 8601 UTC)."""
    return [{**i, "automation": i.get("automation"), "due_date": isoz(i.get("due_date"))} if isinstance(i, dict)
            else i for i in doc.get("action_items") or []]


async def update_action_item(bk: Backends, *, pm_id: str, item_id: str, data: ActionItemUpdate, user: User) -> dict:
    """Change one action item of a postmortem the user may see (editor), in one atomic update of that
    item alone (positional `$set` with an array filter on its id), audit-logged in the same transaction.
    An unknown item (or one of another postmortem) is a 404. From then on the items are tracked one by
    one: whole-list writes must send the version they read, and drafting no longer rewrites them."""
    require_role(user, Role.EDITOR)
    current = await get_postmortem(bk, pm_id=pm_id, user=user)
    check_editable(current)
    changes = item_changes(data)
    item = next((i for i in current.get("action_items") or [] if isinstance(i, dict) and i.get("id") == item_id),
                None)
    if item is None:
        raise NotFound(f"Action item '{item_id}' not found", code="ACTION_ITEM_NOT_FOUND")
    if not changes:
        return current
    now = utcnow()
    update = {f"action_items.$[i].{k}": v for k, v in changes.items()}
    update["updated_at"] = now
    audit = {"action_item": item_id, **{k: v for k, v in changes.items() if item.get(k) != v}}

    async def op(s):
        updated = await bk.mongo.postmortems.find_one_and_update(
            {"_id": current["_id"], "action_items.id": item_id, "status": {"$ne": S.ARCHIVED.value},
             **classification.mongo_filter(user)},
            {"$set": update, "$inc": {"action_item_edits": 1}, "$pull": {"auto_generated_sections": "action_items"}},
            array_filters=[{"i.id": item_id}], session=s, return_document=ReturnDocument.AFTER)
        if updated is not None:
            await record_audit(bk, action="update_action_item", user=user, subject_type="postmortem",
                               subject_id=current["_id"], changes=audit, session=s)
        return updated

    updated = await bk.transaction(op)
    if updated is None:  # the item (or the postmortem) went away, was archived or hidden meanwhile
        check_editable(await get_postmortem(bk, pm_id=pm_id, user=user))
        raise NotFound(f"Action item '{item_id}' not found", code="ACTION_ITEM_NOT_FOUND")
    return updated


# --- the knowledge-base article a published postmortem becomes -------------------------------

def _timedelta_text(seconds: float | None) -> str | None:
    """Python's str(timedelta) form: `5 days, 12:30:00` (whole seconds)."""
    return None if seconds is None else str(timedelta(seconds=round(seconds)))


async def statistics(bk: Backends, *, user: User) -> dict[str, Any]:
    """The documented figures over the postmortems the user may see."""
    now = utcnow()
    pipeline = [{"$match": classification.mongo_filter(user)}, {"$facet": {
        "status": [{"$group": {"_id": "$status", "n": {"$sum": 1}}}],
        "severity": [{"$group": {"_id": "$severity", "n": {"$sum": 1}}}],
        "automated": [{"$match": {"is_automated": True}}, {"$count": "n"}],
        "overdue": [{"$match": {"due_date": {"$lt": now}, "status": {"$nin": list(CLOSED_STATUSES)}}}, {"$count": "n"}],
        "overdue_items": [{"$unwind": "$action_items"},
                          {"$match": {"action_items.due_date": {"$lt": now},
                                      "action_items.status": {"$nin": list(SETTLED_ITEM_STATUSES)}}},
                          {"$count": "n"}],
        "completion": [{"$match": {"published_at": {"$ne": None}}},
                       {"$group": {"_id": None, "ms": {"$avg": {"$subtract": ["$published_at", "$created_at"]}}}}],
    }}]
    facets = (await (await bk.mongo.postmortems.aggregate(pipeline)).to_list(None))[0]
    by_status = {s.value: 0 for s in PostmortemStatus}
    by_status.update({f["_id"]: f["n"] for f in facets["status"] if f["_id"] in by_status})
    by_severity = {s.value: 0 for s in Severity}
    by_severity.update({f["_id"]: f["n"] for f in facets["severity"] if f["_id"] in by_severity})
    total = sum(by_status.values())
    automated = facets["automated"][0]["n"] if facets["automated"] else 0
    avg_ms = facets["completion"][0]["ms"] if facets["completion"] else None
    return {"total_postmortems": total, "by_status": by_status, "by_severity": by_severity,
            "automated_percentage": round(100.0 * automated / total, 1) if total else 0.0,
            "overdue_count": facets["overdue"][0]["n"] if facets["overdue"] else 0,
            "avg_completion_time": _timedelta_text(avg_ms / 1000 if avg_ms is not None else None),
            "overdue_action_items": facets["overdue_items"][0]["n"] if facets["overdue_items"] else 0}


async def incident_titles(bk: Backends, *, ids: list[str], user: User) -> dict[str, str]:
    """Titles of the incidents the user may see, keyed by id."""
    return {i: d["title"] for i, d in (await incidents.incidents_by_ids(bk, ids=ids, user=user)).items()}


async def postmortems_by_ids(bk: Backends, *, ids: list[str], user: User) -> dict[str, dict]:
    """The postmortems the user may see, keyed by id, in one query."""
    return await POSTMORTEMS.by_ids(bk, ids, user)
