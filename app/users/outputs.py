"""What the sign-in REST API answers (app/users/rest.py), as output models for the OpenAPI document: the
signed-in user (`Me`, also the answer of a sign-in)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.outputs import Output, examples
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
