"""The per-request GraphQL context: backends, the caller, and DataLoaders made for this request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info as _Info

from app.backends import Backends
from app.users import service as users
from app.users.models import Role, User, require_role


@dataclass
class Context:
    request: Any
    response: Any
    backends: Backends
    user: User
    document: Any = None  # the parsed document the endpoint measured (see schema.schema.PreParsed)
    loaders: dict[str, DataLoader] = field(default_factory=dict)

    def require(self, role: Role) -> User:
        return require_role(self.user, role)

    def loader(self, name: str, factory) -> DataLoader:
        """One DataLoader per name per request."""
        if name not in self.loaders:
            self.loaders[name] = factory(self)
        return self.loaders[name]


def UserByIdLoader(ctx: Context) -> DataLoader:
    async def load(ids: list[str]) -> list[User | None]:
        found = await users.users_by_ids(ctx.backends, ids=ids)
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)


Info = _Info[Context, None]
