"""Users in GraphQL: `me` (anyone: who the caller is), and, for admins, `users`, `user`, `userTokens` and the
mutations that manage users and their tokens. Resolvers only call app.users.accounts (the rules are there)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from app.http.auth import auth_method
from app.permissions import permit
from app.users import accounts
from app.users.models import Classification, Role
from schema.common import ClassificationEnum, Paginated, list_params, paginated, validate
from schema.context import Info
from schema.inputs import input_type
from schema.errors import result, typed_errors

RoleEnum = strawberry.enum(Role, name="UserRole")
MANAGE = accounts.MANAGE_RULE


@strawberry.type(description="A user, as admins manage it (never its password or tokens).")
class UserAccount:
    id: strawberry.ID
    username: str
    email: str | None
    team: str
    role: RoleEnum
    clearance: ClassificationEnum
    is_active: bool = strawberry.field(description="false: deactivated — its sessions ended, its tokens revoked.")
    is_service_account: bool = strawberry.field(description="A bot or importer: signs in with tokens only.")
    sso_provider: str | None
    has_password: bool
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "UserAccount":
        return cls(id=d["_id"], username=d["username"], email=d.get("email"), team=d.get("team") or "",
                   role=Role(d.get("role") or Role.VIEWER.value),
                   clearance=Classification(d.get("clearance") or Classification.INTERNAL.value),
                   is_active=d.get("is_active", True), is_service_account=bool(d.get("service_account")),
                   sso_provider=d.get("sso_provider"), has_password=bool(d.get("password_hash")),
                   created_at=d.get("created_at"), updated_at=d.get("updated_at"))


@strawberry.type(description="The signed-in user, and how they signed in.")
class Me:
    id: strawberry.ID
    username: str
    role: RoleEnum
    clearance: ClassificationEnum
    auth_method: str = strawberry.field(description="token, session or sso")


@strawberry.type(description="An API token, without its secret; `key` only in the answer that created it.")
class ApiToken:
    id: strawberry.ID
    name: str
    created_at: datetime | None
    created_by: str | None
    key: str | None = strawberry.field(default=None, description="The secret, shown once (createUserToken).")

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "ApiToken":
        return cls(id=str(d["_id"]), name=d.get("name") or "", created_at=d.get("created_at"),
                   created_by=d.get("created_by"), key=d.get("key"))


CreateUserInput = input_type(accounts.NewUser, "CreateUserInput",
                             description="A user to create (the REST body of POST /api/auth/users/).")


UpdateUserInput = input_type(accounts.UserChange, "UpdateUserInput", partial=True,
                             description="What changes on a user (the REST body of PATCH /api/auth/users/{id}/).")


@strawberry.type
class RevokedToken:
    id: strawberry.ID


UserResult = result("UserResult", UserAccount)
TokenResult = result("TokenResult", ApiToken)
RevokeResult = result("RevokeTokenResult", RevokedToken)


@strawberry.type
class UserQuery:
    @strawberry.field(description="Who the caller is, however they signed in.")
    async def me(self, info: Info) -> Me:
        user = info.context.user
        return Me(id=user.id, username=user.username, role=user.role, clearance=user.clearance,
                  auth_method=auth_method(info.context.request) or "token")

    @strawberry.field(description="Users (admins), filtered, searched, ordered and paginated like the REST list.")
    @permit(MANAGE)
    async def users(self, info: Info, role: list[RoleEnum] | None = None, is_active: bool | None = None,
                    service_account: bool | None = None, search: str | None = None, ordering: str | None = None,
                    page: int = 1, page_size: int = 20) -> Paginated[UserAccount]:
        params = list_params(role=role, is_active=is_active, service_account=service_account, search=search,
                             ordering=ordering, page=page, page_size=page_size)
        return paginated(await accounts.list_users(info.context.backends, params=params), UserAccount.from_doc)

    @strawberry.field(description="One user (admins).")
    @permit(MANAGE)
    async def user(self, info: Info, id: strawberry.ID) -> UserAccount:
        return UserAccount.from_doc(await accounts.get_user(info.context.backends, user_id=id))

    @strawberry.field(description="A user's API tokens, newest first, without their secrets (admins).")
    @permit(MANAGE)
    async def user_tokens(self, info: Info, user_id: strawberry.ID) -> list[ApiToken]:
        return [ApiToken.from_doc(d) for d in await accounts.tokens(info.context.backends, user_id=user_id)]


@strawberry.type
class UserMutation:
    @strawberry.mutation(description="Create a user (admins).")
    @typed_errors(role=MANAGE)
    async def create_user(self, info: Info, input: CreateUserInput) -> UserResult:
        data = validate(accounts.NewUser, input)
        return UserAccount.from_doc(await accounts.create(info.context.backends, actor=info.context.user, data=data))

    @strawberry.mutation(description="Change a user's role, clearance, team or email, or deactivate "
                                     "(isActive: false — its sessions end and its tokens are revoked) or "
                                     "reactivate it (admins).")
    @typed_errors(role=MANAGE)
    async def update_user(self, info: Info, id: strawberry.ID, input: UpdateUserInput) -> UserResult:
        data = validate(accounts.UserChange, input)
        return UserAccount.from_doc(await accounts.change(info.context.backends, actor=info.context.user,
                                                          user_id=id, data=data))

    @strawberry.mutation(description="Create an API token for a user (admins): its key is in this answer only.")
    @typed_errors(role=MANAGE)
    async def create_user_token(self, info: Info, user_id: strawberry.ID, name: str = "default") -> TokenResult:
        data = validate(accounts.NewToken, {"name": name})
        return ApiToken.from_doc(await accounts.create_token(info.context.backends, actor=info.context.user,
                                                             user_id=user_id, data=data))

    @strawberry.mutation(description="Revoke one of a user's API tokens (admins).")
    @typed_errors(role=MANAGE)
    async def revoke_user_token(self, info: Info, user_id: strawberry.ID, token_id: strawberry.ID) -> RevokeResult:
        await accounts.revoke_token(info.context.backends, actor=info.context.user, user_id=user_id,
                                    token_id=token_id)
        return RevokedToken(id=token_id)
