"""REST routes under /api/knowledge/audit-log/ (admins): the audit log, read only — the resource declares GET
alone, so any other method on its paths is a 405 (nobody changes or deletes entries through the API)."""

from __future__ import annotations

from typing import Any


from app.activity import service
from app.activity.outputs import AuditEntry
from app.backends import Backends
from app.http.resources import Call, Op, Resource
from app.inputs import Param
from app.listing import Page
from app.timefmt import isoz
from app.users.models import User

REQUEST_FIELDS = ("auth_method", "ip", "user_agent", "request_id")


def entry_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "at": isoz(doc.get("at")),
            **{k: doc.get(k) for k in ("action", "subject_type", "subject_id", "user_id", "username",
                                       *REQUEST_FIELDS)},
            "changes": service.plain(doc.get("changes") or {})}


async def serialize(bk: Backends, user: User, docs: list[dict]) -> list[dict[str, Any]]:
    return [entry_json(d) for d in docs]


QUERY = (
    Param("user", str, "Only the entries of this user: an id or a username (one no user has: the entries of "
                       "failed sign-ins that tried it)"),
    Param("since", str, "Only the entries at or after this time (ISO 8601, e.g. 2026-03-19T00:00:00Z)", max_length=40),
    Param("until", str, "Only the entries at or before this time (ISO 8601)", max_length=40),
)


async def list_entries(call: Call) -> Page:
    """List the audit log, newest first: by subject, action, user and time range."""
    return await service.list_entries(call.bk, user=call.user, params=call.params, who=call.arg("user"),
                                      since=call.arg("since"), until=call.arg("until"))


async def detail(call: Call) -> dict:
    """Get one audit entry."""
    return await call.one(await service.get_entry(call.bk, entry_id=call.key, user=call.user))


RESOURCE = Resource(
    base="/api/knowledge/audit-log", serialize=serialize, tag="audit-log",
    description="Who did what, when, from where and signed in how: every change of a document, every read of an "
                "article or postmortem, every knowledge-base search, every sign-in (admins; read only).",
    collection={"GET": Op(list_entries, service.READ_RULE, response=AuditEntry, listing=service.LIST_SPEC, query=QUERY)},
    item={"GET": Op(detail, service.READ_RULE, response=AuditEntry)})
RESOURCES = [RESOURCE]
