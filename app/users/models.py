from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from app.errors import PermissionDenied


class Role(str, Enum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]


_ROLE_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


class Classification(str, Enum):
    PUBLIC = "PUBLIC"
    INTERNAL = "INTERNAL"
    CONFIDENTIAL = "CONFIDENTIAL"
    RESTRICTED = "RESTRICTED"

    @property
    def rank(self) -> int:
        return CLASSIFICATION_ORDER.index(self)

    def visible(self) -> list[str]:
        """The classifications a holder of this clearance may read."""
        return [c.value for c in CLASSIFICATION_ORDER[: self.rank + 1]]


CLASSIFICATION_ORDER = [Classification.PUBLIC, Classification.INTERNAL, Classification.CONFIDENTIAL,
                        Classification.RESTRICTED]


class User(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    username: str
    email: str | None = None
    team: str = ""
    role: Role = Role.VIEWER
    clearance: Classification = Classification.INTERNAL
    is_active: bool = True
    service_account: bool = False  # a bot or importer acting for the service, never a person to consult
    sso_provider: str | None = None  # created by this OpenID Connect provider (signs in by SSO only)
    created_at: datetime | None = None

    def has_role(self, role: Role) -> bool:
        return self.role.rank >= role.rank


def require_role(user: User, role: Role) -> User:
    """403 unless the user's role is at least `role` (every layer: REST, GraphQL, services)."""
    if not user.has_role(role):
        raise PermissionDenied(f"This action requires the '{role.value}' role", {"role": user.role.value,
                                                                                  "required": role.value})
    return user


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=r"^[A-Za-z0-9_.@+-]{1,150}$")
    email: EmailStr | None = None
    team: str = Field("", max_length=100)
    role: Role = Role.VIEWER
    clearance: Classification = Classification.INTERNAL
    service_account: bool = False  # bots and importers (never recommended as experts)
