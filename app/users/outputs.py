"""What the sign-in and user REST APIs answer (app/users/rest.py), as output models for the OpenAPI document:
the signed-in user (`Me`, also the answer of a sign-in), users and tokens as admins manage them, and the
permission matrix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.outputs import Output, Timestamp, examples
from app.users.models import Classification, Role


class Me(Output):
    """The signed-in user, and how they signed in."""

    model_config = examples({
        "id": "0b6f1c1e-8a3f-4e0e-9a51-2f4f5f0d7c11", "username": "alice", "email": "alice@example.com",
        "team": "sre", "role": "editor", "clearance": "CONFIDENTIAL", "auth_method": "session",
        "is_service_account": False, "sso_provider": None})

    id: str = Field(description="The user's id (a UUID)")
    username: str
    email: str | None
    team: str
    role: Role = Field(description="What the user may do: viewer reads, editor writes, admin everything")
    clearance: Classification = Field(description="The most secret classification the user may see")
    auth_method: Literal["token", "session", "sso"] = Field(
        description="How this request signed in: an API token, a session cookie, or an SSO bearer token")
    is_service_account: bool = Field(description="A bot or importer (never signs in with a password)")
    sso_provider: str | None = Field(description="The SSO provider that created the user (null: a local user)")


class UserAccount(Output):
    """A user, as admins manage it (never its password or tokens)."""

    model_config = examples({
        "id": "0b6f1c1e-8a3f-4e0e-9a51-2f4f5f0d7c11", "username": "alice", "email": "alice@example.com",
        "team": "sre", "role": "editor", "clearance": "CONFIDENTIAL", "is_active": True,
        "is_service_account": False, "sso_provider": None, "has_password": True,
        "created_at": "2026-03-19T15:20:00Z", "updated_at": None})

    id: str
    username: str
    email: str | None
    team: str
    role: Role
    clearance: Classification
    is_active: bool = Field(description="false: deactivated — its sessions ended and its tokens revoked")
    is_service_account: bool = Field(description="A bot or importer: signs in with tokens only")
    sso_provider: str | None = Field(description="The SSO provider that created the user (null: a local user)")
    has_password: bool = Field(description="Whether the user can sign in with a password")
    created_at: Timestamp | None
    updated_at: Timestamp | None


class ApiToken(Output):
    """An API token, without its secret."""

    model_config = examples({"id": "5d0c7a52-0f8e-4a51-b7a4-2b1f0e3c9d10", "name": "ci-importer",
                             "created_at": "2026-03-19T15:20:00Z", "created_by": None})

    id: str
    name: str
    created_at: Timestamp | None
    created_by: str | None = Field(description="The admin who created it (null: made with `ikl create_token`)")


class NewApiToken(ApiToken):
    """A token just created: `key` is shown this once (send it as `Authorization: Token <key>`)."""

    model_config = examples({"id": "5d0c7a52-0f8e-4a51-b7a4-2b1f0e3c9d10", "name": "ci-importer",
                             "created_at": "2026-03-19T15:20:00Z", "created_by": "0b6f1c1e-8a3f-4e0e-9a51-2f4f5f0d7c11",
                             "key": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"})

    key: str


class Permission(Output):
    """Who may call one REST operation or GraphQL root field."""

    model_config = examples({
        "api": "rest", "operation": "DELETE", "target": "/api/knowledge/knowledge-articles/{slug}/",
        "summary": "Delete an article.", "role": "editor", "clearance": None,
        "ownership": "the article's author or an admin", "classified": True, "signed_in": True, "note": None,
        "allowed": {"viewer": False, "editor": True, "admin": True}})

    api: Literal["rest", "graphql"]
    operation: str = Field(description="The HTTP method, or the GraphQL operation type (query, mutation, "
                                       "subscription)")
    target: str = Field(description="The path, or the GraphQL field")
    summary: str
    role: Role = Field(description="The least role that may call it")
    clearance: Classification | None = Field(description="The least clearance, when it needs one")
    ownership: str | None = Field(description="The rule on the document its service checks once loaded")
    classified: bool = Field(description="What it answers or changes is limited to the caller's clearance")
    signed_in: bool = Field(description="false: reached without signing in (signing in itself)")
    note: str | None
    allowed: dict[Role, bool] = Field(description="Whether each role may call it")


class PermissionMatrix(Output):
    """Every REST operation and GraphQL root field with its rule."""

    model_config = examples({"count": 1, "roles": ["viewer", "editor", "admin"], "results": [
        Permission.model_config["json_schema_extra"]["examples"][0]]})

    count: int
    roles: list[Role]
    results: list[Permission]
