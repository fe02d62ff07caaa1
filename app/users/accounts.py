"""Users and their API tokens, managed by admins (REST `/api/auth/users/`, GraphQL `users`, `createUser`, …).

- Admins list, create, change (role, clearance, team, email) and deactivate or reactivate users; nobody else
  (`MANAGE_RULE`). An admin grants no clearance above their own, and does not demote or deactivate themselves
  (an organisation is never left without the admin who could undo it).
- Deactivating a user (`is_active: false`) ends at once what signs them in: every session, every API token
  (revoked — reactivation does not bring them back) and this process's cached credentials; other API
  processes stop accepting a cached token or SSO token within AUTH_CACHE_SECONDS.
- Service accounts (bots, importers) are marked `service_account` and never sign in interactively (no password,
  no session); they work with tokens.
- Tokens: created with a name, the key shown once (only its SHA-256 is stored); listed without secrets; revoked.
- Every change is audit-logged (`user.create`, `user.update`, `token.create`, `token.revoke`).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping

from bson import ObjectId
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Conflict, NotFound, PermissionDenied
from app.listing import Filter, ListSpec, Page
from app.repository import Repository
from app.permissions import Rule
from app.users import passwords, signin
from app.users.models import Classification, Role, User, UserCreate
from app.users.service import _hash, _to_user, create_user

MANAGE_RULE = Rule(Role.ADMIN, classified=False, note="users and their tokens carry no classification")

LIST_SPEC = ListSpec(
    collection="users", classified=False,
    filters=(Filter("role", "role", Role, description="Only the users of these roles (a comma list)"),
             Filter("clearance", "clearance", Classification, description="Only the users of these clearances"),
             Filter("is_active", "is_active", bool, description="Only active (true) or deactivated (false) users"),
             Filter("service_account", "service_account", bool,
                    description="Only service accounts (true: bots, importers) or people (false)"),
             Filter("team", "team")),
    search_fields=("username", "email", "team"),
    ordering={"username": "username", "created_at": "created_at"}, default_ordering=("username",))

TOKEN_FIELDS = {"key_hash": 0}
MAX_TOKENS = 1000  # listed per user (schema/limits.py bounds the GraphQL list by it)


class NewUser(UserCreate):
    """A user to create (admins): a person signs in with a password (optional here; `ikl set_password` or the
    user's own change later) or by SSO; a service account with tokens only."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"username": "alice", "email": "alice@example.com", "team": "sre", "role": "editor",
         "clearance": "CONFIDENTIAL"}]})
    password: str | None = Field(None, min_length=1, max_length=1024)


class UserChange(BaseModel):
    """What an admin changes on a user: role, clearance, team, email, whether it is active."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"is_active": False},
                                                                               {"role": "editor"}]})
    role: Role | None = None
    clearance: Classification | None = None
    team: str | None = Field(None, max_length=100)
    email: EmailStr | None = None
    is_active: bool | None = None


class NewToken(BaseModel):
    """A token's name (what it is for)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "ci-importer"}]})
    name: str = Field("default", min_length=1, max_length=100)


def _may_grant(actor: User, clearance: Classification | None) -> None:
    if clearance is not None and clearance.rank > actor.clearance.rank:
        raise PermissionDenied(f"Nobody grants a clearance above their own ({actor.clearance.value})",
                               {"field": "clearance", "clearance": actor.clearance.value}, code="CLEARANCE_TOO_HIGH")


USERS = Repository("User", "USER_NOT_FOUND", LIST_SPEC)  # unclassified: admins manage every user


async def list_users(bk: Backends, *, params: Mapping[str, Any]) -> Page:
    return await USERS.page(bk, params, None)


async def get_user(bk: Backends, *, user_id: str) -> dict[str, Any]:
    return await USERS.get(bk, user_id, None)


async def create(bk: Backends, *, actor: User, data: NewUser) -> dict[str, Any]:
    """Create a user (admins); a password, when given, is checked and hashed (service accounts take none)."""
    _may_grant(actor, data.clearance)
    if data.password is not None and data.service_account:
        raise Conflict("A service account does not sign in with a password", {"field": "password"},
                       code="PASSWORD_NOT_ALLOWED")
    if data.password is not None:
        passwords.check_strength(data.password)
    user = await create_user(bk, data=UserCreate(**data.model_dump(exclude={"password"})))
    if data.password is not None:
        await bk.mongo.users.update_one({"_id": user.id}, {"$set": {
            "password_hash": await passwords.hash_password(data.password),
            "password_changed_at": datetime.now(timezone.utc)}})
    await record_audit(bk, action="user.create", user=actor, subject_type="user", subject_id=user.id,
                       changes={"username": user.username, "role": user.role.value,
                                "clearance": user.clearance.value, "service_account": user.service_account,
                                "password": data.password is not None})
    return await get_user(bk, user_id=user.id)


async def change(bk: Backends, *, actor: User, user_id: str, data: UserChange) -> dict[str, Any]:
    """Change a user (admins). Deactivation ends its sessions and revokes its tokens at once."""
    current = _to_user(await get_user(bk, user_id=user_id))
    changes = {k: (v.value if hasattr(v, "value") else v) for k, v in data.model_dump(exclude_unset=True).items()
               if v is not None and v != getattr(current, k)}
    _may_grant(actor, data.clearance if "clearance" in changes else None)
    if current.id == actor.id and (changes.get("is_active") is False or
                                   ("role" in changes and changes["role"] != Role.ADMIN.value)):
        raise Conflict("An admin does not deactivate or demote themselves; another admin must",
                       {"field": "is_active" if "is_active" in changes else "role"}, code="SELF_LOCKOUT")
    if not changes:
        return await get_user(bk, user_id=user_id)
    changes["updated_at"] = datetime.now(timezone.utc)
    await bk.mongo.users.update_one({"_id": user_id}, {"$set": changes})
    ended = revoked = 0
    if changes.get("is_active") is False:
        ended = await signin.sign_out_everywhere(bk, user_id=user_id)
        revoked = (await bk.mongo.tokens.delete_many({"user_id": user_id})).deleted_count
    elif {"role", "clearance"} & changes.keys():
        signin.forget_cached(user_id)  # this process answers with the new role and clearance at once
    await record_audit(bk, action="user.update", user=actor, subject_type="user", subject_id=user_id,
                       changes={**{k: v for k, v in changes.items() if k != "updated_at"},
                                **({"sessions_ended": ended, "tokens_revoked": revoked}
                                   if changes.get("is_active") is False else {})})
    return await get_user(bk, user_id=user_id)


# --- tokens ---------------------------------------------------------------------------------------------

async def tokens(bk: Backends, *, user_id: str) -> list[dict[str, Any]]:
    """The user's tokens, newest first, without their secrets."""
    await get_user(bk, user_id=user_id)
    return await bk.mongo.tokens.find({"user_id": user_id}, TOKEN_FIELDS).sort([("created_at", -1)]).to_list(MAX_TOKENS)


async def create_token(bk: Backends, *, actor: User, user_id: str, data: NewToken) -> dict[str, Any]:
    """A new token of an active user; its key is in the answer only (`key`)."""
    user = _to_user(await get_user(bk, user_id=user_id))
    if not user.is_active:
        raise Conflict(f"User '{user.username}' is deactivated; reactivate it first", code="USER_INACTIVE")
    key = secrets.token_hex(20)
    doc = {"_id": str(uuid.uuid4()), "key_hash": _hash(key), "user_id": user.id, "name": data.name,
           "created_at": datetime.now(timezone.utc), "created_by": actor.id}
    await bk.mongo.tokens.insert_one(doc)
    await record_audit(bk, action="token.create", user=actor, subject_type="user", subject_id=user.id,
                       changes={"token": doc["_id"], "name": data.name})
    return {**{k: v for k, v in doc.items() if k != "key_hash"}, "key": key}


async def revoke_token(bk: Backends, *, actor: User, user_id: str, token_id: str) -> None:
    """Revoke one of the user's tokens (404 when it has no such token)."""
    await get_user(bk, user_id=user_id)
    ids: list[Any] = [token_id, *([ObjectId(token_id)] if ObjectId.is_valid(token_id) else [])]  # older tokens
    doc = await bk.mongo.tokens.find_one_and_delete({"_id": {"$in": ids}, "user_id": user_id})
    if doc is None:
        raise NotFound(f"Token '{token_id}' not found", code="TOKEN_NOT_FOUND")
    signin.forget_cached(user_id)
    await record_audit(bk, action="token.revoke", user=actor, subject_type="user", subject_id=user_id,
                       changes={"token": token_id, "name": doc.get("name")})
