"""The audit log in GraphQL (admins, read only): `auditLog` and `auditEntry`. Resolvers only call
app.activity.service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.activity import service
from app.permissions import permit
from schema.common import Paginated, list_params, paginated
from schema.context import Info


@strawberry.type(description="One entry of the audit log: who did what to which object, when, from where and "
                             "signed in how (the REST `GET /api/knowledge/audit-log/` entry).")
class AuditEntry:
    id: strawberry.ID
    at: datetime
    action: str = strawberry.field(description="create, update, delete, read, search, resolve, auth.login, …")
    subject_type: str = strawberry.field(description="incident, knowledge_article, postmortem, "
                                                     "knowledge_base (a search), user, …")
    subject_id: str | None
    user_id: str | None = strawberry.field(description="Who did it (null: a failed sign-in of no known user).")
    username: str | None
    auth_method: str | None = strawberry.field(description="token, session or sso (null outside a request).")
    ip: str | None = strawberry.field(description="The client's address.")
    user_agent: str | None
    request_id: str | None
    changes: JSON = strawberry.field(description="What changed, or what the action concerned (snake_case keys, "
                                                 "as stored).")

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "AuditEntry":
        return cls(id=d["_id"], at=d["at"], action=d.get("action") or "", subject_type=d.get("subject_type") or "",
                   subject_id=d.get("subject_id"), user_id=d.get("user_id"), username=d.get("username"),
                   auth_method=d.get("auth_method"), ip=d.get("ip"), user_agent=d.get("user_agent"),
                   request_id=d.get("request_id"), changes=service.plain(d.get("changes") or {}))


@strawberry.type
class AuditQuery:
    @strawberry.field(description="The audit log, newest first (admins): by user (an id or a username), action, "
                                  "subject type and id, and time (since/until, inclusive), paginated like the "
                                  "REST list.")
    @permit(service.READ_RULE)
    async def audit_log(self, info: Info, user: str | None = None, action: str | None = None,
                        subject_type: str | None = None, subject_id: str | None = None,
                        since: datetime | None = None, until: datetime | None = None, page: int = 1,
                        page_size: int = 20) -> Paginated[AuditEntry]:
        params = list_params(action=action, subject_type=subject_type, subject_id=subject_id, page=page,
                             page_size=page_size)
        return paginated(await service.list_entries(info.context.backends, user=info.context.user, params=params,
                                                    who=user, since=since, until=until), AuditEntry.from_doc)

    @strawberry.field(description="One audit entry (admins).")
    @permit(service.READ_RULE)
    async def audit_entry(self, info: Info, id: strawberry.ID) -> AuditEntry:
        return AuditEntry.from_doc(await service.get_entry(info.context.backends, entry_id=id,
                                                           user=info.context.user))
