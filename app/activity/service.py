"""Usage events and the audit log, shared by every domain.

Usage events (`usage_events`) record what people do with knowledge — views, searches (query and
result count), ratings, bookmarks — for analytics. Each event also records the actor's clearance and
role at that moment, so figures can be limited to the events of people who could see no more than
the reader of the figures (see app/articles/service.usage_scope), and the request it came with
(`request_id`, `auth_method`), which finds its audit entry.

The audit log (`audit_log`) records, for compliance, every change of a document, every read of an
article or a postmortem, every knowledge-base search and every sign-in: who (user id and username), what
(action, subject type and id, changes), when (`at`), from where (client address `ip`, `user_agent`,
`request_id`) and how the caller signed in (`auth_method`). The request's part is captured once per request
(app/activity/context.py), so callers pass only who did what. A change is recorded inside the caller's
transaction when it has one (no change without its entry); otherwise — reads, searches, writes that
are a single atomic update — recording never fails the caller's request (a failure is logged). Admins
read it through `GET /api/knowledge/audit-log/` and GraphQL `auditLog`; nothing changes or deletes
entries but the retention job (`IKL_AUDIT_RETENTION_DAYS`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Mapping

from app import periodic, permissions
from app.activity import context
from app.backends import Backends
from app.errors import ValidationFailed
from app.listing import Filter, ListSpec, Page, fetch_page, parse_list_params
from app.repository import Repository
from app.permissions import Rule
from app.timefmt import as_utc, isoz, utcnow
from app.users.models import CLASSIFICATION_ORDER, Role, User

log = logging.getLogger(__name__)

READ, SEARCH = "read", "search"  # the actions of reads and searches (changes are named by their services)
RETENTION_BATCH = 1000           # entries removed per delete
RETENTION_PERIOD = 3600.0        # seconds between two runs of the retention job

LIST_SPEC = ListSpec(
    collection="audit_log", classified=False,  # admins only: entries carry no classification of their own
    filters=(Filter("subject_id", "subject_id", indexed=True,
                    description="Only the entries about this object (its id)"),
             Filter("subject_type", "subject_type", indexed=True,
                    description="Only the entries about this kind of object: incident, knowledge_article, "
                                "postmortem, postmortem_generation, recommendation, learning_pattern, "
                                "pattern_mining_run, knowledge_base (searches), user"),
             Filter("action", "action", indexed=True,
                    description="Only the entries of this action: create, update, delete, read, search, …")),
    ordering={"at": "at"}, default_ordering=("-at",))


async def record_usage(bk: Backends, *, kind: str, user: User, subject: str | None = None,
                       **data: Any) -> str:
    """Record one usage event (`kind` like "article.view", "article.search"), with the actor's
    clearance and role as they are now; returns its id."""
    event_id = str(uuid.uuid4())
    request = context.fields()
    try:
        await bk.mongo.usage_events.insert_one({**data, "_id": event_id, "kind": kind, "user_id": user.id,
                                                "clearance": user.clearance.value, "role": user.role.value,
                                                "subject": subject, "at": utcnow(),
                                                "request_id": request["request_id"],
                                                "auth_method": request["auth_method"]})
    except Exception as exc:  # noqa: BLE001 - analytics must not break the request
        log.warning("usage event not recorded", extra={"kind": kind, "error": str(exc)[:200]})
    return event_id


async def record_audit(bk: Backends, *, action: str, user: User | None, subject_type: str, subject_id: str | None,
                       changes: dict[str, Any] | None = None, session=None, username: str | None = None,
                       auth_method: str | None = None) -> None:
    """Record who did what to which object, from where and signed in how (the current request's address,
    user agent, request id and sign-in method; `username`/`auth_method` override them — a failed sign-in
    names who it tried to be). With `session`, inside the caller's transaction: a failure aborts it.
    Without, a failure is logged and the caller's request goes on."""
    entry = {"_id": str(uuid.uuid4()), "action": action, "subject_type": subject_type, "subject_id": subject_id,
             "user_id": user.id if user is not None else None,
             "username": username or (user.username if user is not None else None),
             "at": utcnow(), "changes": changes or {}, **context.fields()}
    if auth_method:
        entry["auth_method"] = auth_method
    if session is not None:
        await bk.mongo.audit_log.insert_one(entry, session=session)
        return
    try:
        await bk.mongo.audit_log.insert_one(entry)
    except Exception as exc:  # noqa: BLE001 - logged in full: an action done without its entry
        log.error("audit entry not recorded", extra={"action": action, "subject_type": subject_type,
                                                     "subject_id": subject_id, "error": str(exc)[:300]})


async def record_read(bk: Backends, *, user: User, subject_type: str, subject_id: str,
                      changes: dict[str, Any] | None = None) -> None:
    """A read of one object (an article, a postmortem): one insert, never failing the read."""
    await record_audit(bk, action=READ, user=user, subject_type=subject_type, subject_id=subject_id, changes=changes)


# --- reading the audit log (admins) ---------------------------------------------------------------------

def plain(value: Any) -> Any:
    """An entry's `changes` as JSON: datetimes as ISO 8601 in UTC, everything else as stored."""
    if isinstance(value, datetime):
        return isoz(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def parse_time(name: str, raw: str | datetime | None) -> datetime | None:
    """A `since`/`until` bound: an ISO 8601 date or timestamp (no offset: UTC); a 400 naming it otherwise."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        return as_utc(raw)
    try:
        return as_utc(datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00")))
    except ValueError:
        raise ValidationFailed(f"{name} must be an ISO 8601 timestamp, e.g. 2026-03-19T15:20:00Z",
                               {"field": name}, code="INVALID_PARAMETER") from None


# Admins cleared for every classification: entries name and quote documents of any classification (a title
# changed, a search term, a subject id), and they carry none of their own to filter by.
READ_RULE = Rule(Role.ADMIN, clearance=CLASSIFICATION_ORDER[-1], classified=False,
                 note="entries quote documents of every classification")


def _check_reader(user: User) -> None:
    permissions.check(user, READ_RULE)


ENTRIES = Repository("Audit entry", "AUDIT_ENTRY_NOT_FOUND", LIST_SPEC)  # unclassified: admins only


async def list_entries(bk: Backends, *, user: User, params: Mapping[str, Any], who: str | None = None,
                       since: str | datetime | None = None, until: str | datetime | None = None) -> Page:
    """A page of the audit log, newest first (admins): by subject, action, user (`who`: an id or a username;
    one no user has is taken as the username a failed sign-in tried), and time (`since`/`until`, inclusive)."""
    _check_reader(user)
    query = parse_list_params(LIST_SPEC, params, default_size=bk.settings.page_size, max_size=bk.settings.max_page_size)
    clauses: list[dict[str, Any]] = []
    if who:
        found = await bk.mongo.users.find_one({"$or": [{"_id": who}, {"username": who}]}, {"_id": 1})
        key, value = ("user_id", found["_id"]) if found else ("username", who)
        clauses.append({key: value})
        if query.hint == LIST_SPEC.index_for(query.sort):  # no subject or action: read from (user, at)
            query.hint = LIST_SPEC.index_for(query.sort, key)
    window = {op: bound for op, bound in (("$gte", parse_time("since", since)), ("$lte", parse_time("until", until)))
              if bound is not None}
    if window:
        clauses.append({"at": window})
    base = {"$and": clauses} if len(clauses) > 1 else (clauses[0] if clauses else None)
    return await fetch_page(bk.mongo.audit_log, query, base_filter=base)


async def get_entry(bk: Backends, *, entry_id: str, user: User) -> dict:
    _check_reader(user)
    return await ENTRIES.get(bk, entry_id, user)


# --- retention ------------------------------------------------------------------------------------------

@periodic.every(lambda s: RETENTION_PERIOD if s.audit_retention_days > 0 else 0, name="audit log retention")
async def remove_expired(bk: Backends, *, batch: int = RETENTION_BATCH, max_batches: int = 100) -> int:
    """Delete the entries older than `IKL_AUDIT_RETENTION_DAYS` (0: kept forever), oldest first, `batch` at a
    time (read from the `at` index); returns how many. What is left over waits for the next run."""
    days = bk.settings.audit_retention_days
    if days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    removed = 0
    for _ in range(max_batches):
        ids = [d["_id"] async for d in bk.mongo.audit_log.find({"at": {"$lt": cutoff}}, {"_id": 1})
               .sort([("at", 1), ("_id", 1)]).limit(batch)]
        if ids:
            removed += (await bk.mongo.audit_log.delete_many({"_id": {"$in": ids}})).deleted_count
        if len(ids) < batch:
            break
    if removed:
        log.info("audit entries past retention removed", extra={"removed": removed, "days": days})
    return removed
