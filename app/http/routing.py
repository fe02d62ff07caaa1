"""The router: Starlette's, with its routes looked up by the leading segments of the path instead of tried
one by one.

Starlette tries every route in order until one matches. With both spellings of each REST path that is 145
tries (about 60 µs of CPU) before a webhook delivery's route is found, and as many for every path that matches
none. A route can only match paths that begin with the literal segments of its own path (those before its
first parameter), so each route is filed under at most `DEPTH` of them, and a request tries only the routes
filed under its path's first segments — in their declared order, so the first match is the one Starlette would
have found. A path no candidate takes fully (a 404, a 405 of a route with declared methods, a redirect) goes
to Starlette's own routing over every route, which answers it exactly as before.
"""

from __future__ import annotations

from typing import Any

from starlette._utils import get_route_path  # what every route matches against (the path without root_path)
from starlette.routing import BaseRoute, Match, Router
from starlette.types import Receive, Scope, Send

DEPTH = 3  # /api/v1/incidents/…: the first three segments name a resource
# request paths' leading segments remembered with their candidates: at most this many, each at most so long (paths
# are the caller's to choose)
_CANDIDATES_MAX = 4096
_KEY_MAX_CHARS = 200


def literal_segments(path: str) -> tuple[str, ...]:
    """The segments of a route's path before its first parameter, at most DEPTH."""
    out: list[str] = []
    for part in path.split("/")[1:]:
        if "{" in part or len(out) == DEPTH:
            break
        out.append(part)
    return tuple(out)


class IndexedRouter(Router):
    """Starlette's Router, trying for each request only the routes filed under its path's first segments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._filed: dict[tuple[str, ...], list[tuple[int, BaseRoute]]] = {}
        self._candidates: dict[tuple[str, ...], list[BaseRoute]] = {}
        self._indexed = -1

    def _index(self) -> None:
        self._filed.clear()
        self._candidates.clear()
        for i, route in enumerate(self.routes):
            path = getattr(route, "path", None)
            key = literal_segments(path) if isinstance(path, str) else ()
            self._filed.setdefault(key, []).append((i, route))
        self._indexed = len(self.routes)

    def candidates(self, scope: Scope) -> list[BaseRoute]:
        """The routes that may match the scope's path, in their declared order."""
        if self._indexed != len(self.routes):
            self._index()
        parts = tuple(get_route_path(scope).split("/")[1:DEPTH + 1])
        found = self._candidates.get(parts)
        if found is None:
            filed = [entry for k in range(len(parts) + 1) for entry in self._filed.get(parts[:k], ())]
            found = [route for _, route in sorted(filed, key=lambda entry: entry[0])]
            if sum(map(len, parts)) <= _KEY_MAX_CHARS:  # a long path is the caller's: worked out, not kept
                if len(self._candidates) >= _CANDIDATES_MAX:
                    self._candidates.clear()
                self._candidates[parts] = found
        return found

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            for route in self.candidates(scope):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await super().app(scope, receive, send)
