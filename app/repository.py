"""One way to read a classified collection: a document by its key, a page of a list, many by id — each
under the reader's visibility rule (app/classification.py, or a domain's stricter one), a hidden document
answered exactly like a missing one (404 with the domain's code).

    PATTERNS = Repository("Learning pattern", "PATTERN_NOT_FOUND", LIST_SPEC)  # the list's collection
    doc = await PATTERNS.get(bk, pattern_id, user)          # or NotFound
    page = await PATTERNS.page(bk, params, user)            # the list, DRF-style parameters
    found = await PATTERNS.by_ids(bk, ids, user)            # {id: doc}, one query

Writes stay in the domain's service: they carry the domain's rules (transitions, audit, index sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from app import classification
from app.backends import Backends
from app.errors import NotFound
from app.listing import ListSpec, Page, fetch_page, find_one, parse_list_params
from app.users.models import User

Rule = Callable[[User], dict[str, Any]]  # the MongoDB filter of what a user may see


@dataclass(frozen=True)
class Repository:
    noun: str                                # "Learning pattern": the 404 says "Learning pattern 'x' not found"
    code: str                                # the 404's code, PATTERN_NOT_FOUND
    spec: ListSpec | None = None             # its list, when it has one
    collection: str = ""                     # the list's when not given
    key: str = "_id"                         # the field a detail URL names (an article's `slug`)
    projection: Mapping[str, Any] | None = None  # what pages and by-ids read (a detail reads everything)
    rule: Rule | None = None  # default: the clearance rule, none for a list declared `classified=False`

    def coll(self, bk: Backends):
        return bk.mongo[self.collection or self.spec.collection]

    def not_found(self, key: Any) -> NotFound:
        return NotFound(f"{self.noun} '{key}' not found", code=self.code)

    def visible(self, user: User | None, *also: Mapping[str, Any] | None) -> dict[str, Any]:
        """The filter of the documents `user` may see (and match every one of `also`); `user` may be None
        only where nothing is classified (the callers are admins, checked by the service)."""
        if self.rule is not None:
            rule = self.rule(user)
        elif self.spec is not None and not self.spec.classified:
            rule = {}
        else:
            rule = classification.mongo_filter(user)
        parts = [dict(p) for p in (rule, *also) if p]
        if any(k in out for i, p in enumerate(parts) for out in parts[:i] for k in p):
            return {"$and": parts}  # two parts name one field (an `$or` each, say): keep both
        return {k: v for p in parts for k, v in p.items()}

    async def find(self, bk: Backends, key: Any, user: User | None, *, by: str | None = None,
                   where: Mapping[str, Any] | None = None, projection: Mapping[str, Any] | None = None) -> dict | None:
        """The document whose `by` (the repository's key) is `key` (and that matches `where`) if `user` may
        see it, else None."""
        return await find_one(self.coll(bk), self.visible(user, {by or self.key: key}, where), projection)

    async def get(self, bk: Backends, key: Any, user: User | None, *, by: str | None = None,
                  where: Mapping[str, Any] | None = None, projection: Mapping[str, Any] | None = None) -> dict:
        """The document with this key if `user` may see it; a 404 otherwise, the same for hidden and missing."""
        if (doc := await self.find(bk, key, user, by=by, where=where, projection=projection)) is None:
            raise self.not_found(key)
        return doc

    async def page(self, bk: Backends, params: Mapping[str, Any], user: User | None, *,
                   base_filter: Mapping[str, Any] | None = None, spec: ListSpec | None = None) -> Page:
        """A page of the list (`spec`, or another view of the collection) by DRF-style parameters, of what
        `user` may see (and `base_filter` matches)."""
        query = parse_list_params(spec or self.spec, params, default_size=bk.settings.page_size,
                                  max_size=bk.settings.max_page_size)
        return await fetch_page(self.coll(bk), query, base_filter=self.visible(user, base_filter),
                                projection=self.projection)

    async def by_ids(self, bk: Backends, ids: list[str], user: User | None) -> dict[str, dict]:
        """The documents of these ids `user` may see, keyed by id, in one query."""
        docs = await self.coll(bk).find(self.visible(user, {"_id": {"$in": list(set(ids))}}),
                                        self.projection).to_list(None)
        return {d["_id"]: d for d in docs}
