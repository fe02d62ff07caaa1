"""The per-request GraphQL context: backends, the caller, and DataLoaders made for this request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from strawberry.dataloader import DataLoader
from strawberry.types import Info as _Info

from app.backends import Backends
from app.users import service as users
from app.users.models import User


@dataclass
class Context:
    request: Any
    response: Any
    backends: Backends
    user: User
    document: Any = None  # the parsed document the endpoint measured (see schema.schema.PreParsed)
    loaders: dict[str, DataLoader] = field(default_factory=dict)

    def loader(self, name: str, factory) -> DataLoader:
        """One DataLoader per name per request."""
        if name not in self.loaders:
            self.loaders[name] = factory(self)
        return self.loaders[name]


def by_ids(fetch: Callable[..., Awaitable[Mapping[str, Any]]]) -> Callable[[Context], DataLoader]:
    """A DataLoader factory (for `Context.loader`): objects by id, one `fetch(bk, ids=…, user=…)` per batch
    — a domain's `…_by_ids`, which applies the caller's clearance — and None for a hidden or missing one."""
    def factory(ctx: Context) -> DataLoader:
        async def load(ids: list[str]) -> list[Any]:
            found = await fetch(ctx.backends, ids=ids, user=ctx.user)
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=load)

    return factory


def by_limited_ids(fetch: Callable[..., Awaitable[Mapping[str, Any]]]) -> Callable[[Context], DataLoader]:
    """The same for lists cut at a limit: keys are (id, limit), one `fetch(bk, ids=…, limit=…, user=…)` per
    distinct limit on a page; an id with nothing gets []."""
    def factory(ctx: Context) -> DataLoader:
        async def load(keys: list[tuple[str, int]]) -> list[list[Any]]:
            found: dict[tuple[str, int], list[Any]] = {}
            for limit in {k[1] for k in keys}:
                ids = [i for i, n in keys if n == limit]
                for i, items in (await fetch(ctx.backends, ids=ids, limit=limit, user=ctx.user)).items():
                    found[(i, limit)] = items
            return [found.get(k, []) for k in keys]

        return DataLoader(load_fn=load)

    return factory


async def _users_by_ids(bk: Backends, *, ids: list[str], user: User) -> Mapping[str, User]:
    return await users.users_by_ids(bk, ids=ids)


UserByIdLoader = by_ids(_users_by_ids)


Info = _Info[Context, None]
