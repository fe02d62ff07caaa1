"""The one list helper: filters, search, ordering and DRF-style pagination for every list,
REST and GraphQL alike.

A resource declares a `ListSpec`; callers hand `parse_list_params` the raw parameters (query
string values, or GraphQL arguments) and get back a `ListQuery` whose Mongo filter only ever
holds literal values: a caller can never smuggle an operator into it.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import bson
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError

from app import classification
from app.errors import NotFound, ValidationFailed
from app.inputs import ascii_int, search_text

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class Filter:
    """An exact-match filter: `?param=value` becomes `{field: value}` after a type check.

    `kind` is str, bool, int, "uuid" or an Enum class; enum filters accept a comma list (`$in`)."""

    param: str
    field: str
    kind: Any = str
    description: str = ""  # for the document, when not "only those whose <field> is this value"
    # a selective filter: one value of it is read from an index it leads, in the default ordering
    indexed: bool = False

    def coerce(self, raw: Any) -> Any:
        if isinstance(self.kind, type) and issubclass(self.kind, Enum):
            values = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
            allowed, by_lower = _enum_values(self.kind)
            out = []
            for v in values:
                v = v.value if isinstance(v, Enum) else str(v).strip()
                match = by_lower.get(v.lower())
                if match is None:
                    raise ValidationFailed(f"Invalid value for '{self.param}': {v!r}",
                                           {"field": self.param, "allowed": list(allowed)}, code="INVALID_FILTER")
                out.append(match)
            return out[0] if len(out) == 1 else {"$in": out}
        if self.kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise ValidationFailed(f"Invalid value for '{self.param}': expected true or false",
                                   {"field": self.param, "allowed": ["true", "false"]}, code="INVALID_FILTER")
        if self.kind is int:
            if (value := ascii_int(raw)) is None:
                raise ValidationFailed(f"Invalid value for '{self.param}': expected an integer",
                                       {"field": self.param}, code="INVALID_FILTER")
            return value
        if self.kind == "uuid":
            try:
                return str(uuid.UUID(str(raw)))
            except ValueError:
                raise ValidationFailed(f"Invalid value for '{self.param}': expected a UUID",
                                       {"field": self.param}, code="INVALID_FILTER") from None
        if not isinstance(raw, str):
            raise ValidationFailed(f"Invalid value for '{self.param}': expected a string",
                                   {"field": self.param}, code="INVALID_FILTER")
        return raw


@functools.cache
def _enum_values(kind: type[Enum]) -> tuple[tuple[str, ...], dict[str, str]]:
    """An enum filter's values, and each by its lower case (the first of any that differ only by case): read
    from the enum once, not on every list request."""
    allowed = tuple(m.value for m in kind)
    by_lower: dict[str, str] = {}
    for value in allowed:
        by_lower.setdefault(value.lower(), value)
    return allowed, by_lower


SPECS: list["ListSpec"] = []  # every list declared with its collection: app/db.py makes their indexes


@dataclass(frozen=True)
class ListSpec:
    """A list: its filters, search fields and orderings — and, from those, the indexes that serve its pages
    (`indexes`): one per ordering, `(data_classification, field, _id)`, so that a page in either direction
    is read in index order for any clearance (the `$in` over the visible classifications is merged by the
    index, no in-memory sort) and counted from the index."""

    filters: tuple[Filter, ...] = ()
    search_fields: tuple[str, ...] = ()
    # ordering name -> Mongo field
    ordering: Mapping[str, str] = field(default_factory=dict)
    default_ordering: tuple[str, ...] = ("-created_at",)
    collection: str = ""  # set: its indexes are made (app/db.py)
    classified: bool = True  # its documents carry data_classification (every reader's filter names it)

    def __post_init__(self) -> None:
        if self.collection:
            SPECS.append(self)

    def filter_named(self, param: str) -> Filter | None:
        return next((f for f in self.filters if f.param == param), None)

    @functools.cached_property
    def default_sort(self) -> list[tuple[str, int]]:
        return parse_ordering(self, None)

    def sorts(self) -> list[list[tuple[str, int]]]:
        """Every sort a page of this list can be read in, up to direction: each ordering, and the default."""
        return [*(parse_ordering(self, name) for name in sorted(self.ordering)), self.default_sort]

    def indexes(self) -> list[list[tuple[str, int]]]:
        """The key patterns serving `sorts()` (a pattern serves its sort both ways: the first key ascending),
        and the default ordering led by each `indexed` filter's field."""
        return self._indexes

    @functools.cached_property
    def _indexes(self) -> list[list[tuple[str, int]]]:  # derived once: every list request looks its hint up here
        out: list[list[tuple[str, int]]] = []
        for keys in [*(self.index_for(sort) for sort in self.sorts()),
                     *(self.index_for(self.default_sort, f.field) for f in self.filters if f.indexed)]:
            if keys not in out:
                out.append(keys)
        return out

    def index_for(self, sort: list[tuple[str, int]], led_by: str | None = None) -> list[tuple[str, int]]:
        flip = sort[0][1]
        return ([(led_by, 1)] if led_by else []) + ([(classification.FIELD, 1)] if self.classified else []) + \
            [(f, d * flip) for f, d in sort]

    def hint(self, sort: list[tuple[str, int]], equal: set[str]) -> list[tuple[str, int]] | None:
        """The index to read a page in `sort` from, with these fields filtered to one value each."""
        if not self.collection:
            return None
        if sort == self.default_sort:
            for f in self.filters:
                if f.indexed and f.field in equal:
                    return self.index_for(sort, f.field)
        keys = self.index_for(sort)
        return keys if keys in self.indexes() else None


@dataclass
class ListQuery:
    filter: dict[str, Any]
    sort: list[tuple[str, int]]
    page: int
    page_size: int
    # the index that serves `sort` (one of the spec's `indexes`): the page is read in its order, whatever the
    # planner would pick on a small sample; None for a list that is better served by its filter
    hint: list[tuple[str, int]] | None = None

    @property
    def skip(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass
class Page:
    items: list[Any]
    count: int
    page: int
    page_size: int

    @property
    def has_next(self) -> bool:
        return self.page * self.page_size < self.count

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def search_filter(fields: tuple[str, ...], text: str) -> dict[str, Any] | None:
    """DRF SearchFilter semantics: every whitespace-separated term must appear (case-insensitively)
    in at least one of the fields."""
    terms = [t for t in text.split() if t]
    if not terms or not fields:
        return None
    clauses = [{"$or": [{f: {"$regex": re.escape(t), "$options": "i"}} for f in fields]} for t in terms]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def parse_ordering(spec: ListSpec, raw: str | None) -> list[tuple[str, int]]:
    names = [n.strip() for n in raw.split(",") if n.strip()] if raw else list(spec.default_ordering)
    sort: list[tuple[str, int]] = []
    for name in names:
        key = name.lstrip("-")
        if key not in spec.ordering:
            raise ValidationFailed(f"Invalid ordering field: {key!r}", {"field": "ordering", "allowed": sorted(spec.ordering)},
                                   code="INVALID_ORDERING")
        sort.append((spec.ordering[key], -1 if name.startswith("-") else 1))
    if all(f != "_id" for f, _ in sort):
        # a total order, so pages never overlap or skip; in the last key's direction, so that one index
        # (`ListSpec.indexes`) serves the ordering both ways
        sort.append(("_id", sort[-1][1] if sort else 1))
    return sort


def parse_page(raw_page: Any, raw_size: Any, *, default_size: int, max_size: int) -> tuple[int, int]:
    page = ascii_int(raw_page) if raw_page not in (None, "") else 1
    if page is None or page < 1:
        raise NotFound("Invalid page.", {"page": raw_page, "reason": "page must be a positive integer"},
                       code="INVALID_PAGE")
    size = ascii_int(raw_size) if raw_size not in (None, "") else default_size
    if size is None or not 1 <= size <= max_size:
        raise ValidationFailed(f"page_size must be an integer between 1 and {max_size}",
                               {"field": "page_size", "max": max_size}, code="INVALID_PAGE_SIZE")
    return page, size


def parse_list_params(spec: ListSpec, params: Mapping[str, Any], *, default_size: int = 20,
                      max_size: int = 100) -> ListQuery:
    """Turn raw list parameters into a safe Mongo query. Parameters not declared are ignored."""
    clauses: list[dict[str, Any]] = []
    equal: set[str] = set()
    for f in spec.filters:
        raw = params.get(f.param)
        if raw is None or raw == "":
            continue
        value = f.coerce(raw)
        clauses.append({f.field: value})
        if not isinstance(value, dict):
            equal.add(f.field)
    text = params.get("search")
    if text is not None:
        if (sf := search_filter(spec.search_fields, search_text(text))) is not None:
            clauses.append(sf)
    sort = parse_ordering(spec, params.get("ordering"))
    page, size = parse_page(params.get("page"), params.get("page_size"), default_size=default_size, max_size=max_size)
    flt: dict[str, Any] = {"$and": clauses} if clauses else {}
    return ListQuery(filter=flt, sort=sort, page=page, page_size=size, hint=spec.hint(sort, equal))


# Counting costs one index key per match (about 55 ms for 50,000 on this machine) on every page. A count of
# at least COUNT_EXACT_BELOW is reused by this process (keyed by the exact filter, the reader's clearance included,
# so nothing is shared across clearances) for COUNT_CACHE_SECONDS, longer in proportion past COUNT_CACHE_SCALE
# matches (a recount's cost grows with them: 500,000 are half a second of the database's CPU) up to
# COUNT_CACHE_MAX_SECONDS; a smaller one is always exact. A request in the last COUNT_REFRESH_SHARE of a count's
# window starts its recount in the background and answers with the count it has, so a list in use is recounted
# before its count runs out and no request waits for it (at a million incidents the one that did was the slowest,
# 415 ms against a p99 of 98; 111 and 54 ms now, docs/benchmarks.md); a count is never older than its window.
COUNT_EXACT_BELOW = 10_000
COUNT_CACHE_SECONDS = 5.0
COUNT_CACHE_SCALE = 100_000
COUNT_CACHE_MAX_SECONDS = 30.0
COUNT_REFRESH_SHARE = 0.2


def count_reuse_seconds(count: int) -> float:
    """How long a count this large is reused (`_count`)."""
    return min(COUNT_CACHE_MAX_SECONDS, COUNT_CACHE_SECONDS * max(1.0, count / COUNT_CACHE_SCALE))

_COUNTS: dict[tuple[str, bytes], tuple[float, float, int]] = {}  # key -> (recount from, reuse until, count)
_COUNTS_MAX = 1_000


_COUNTING: dict[tuple[str, bytes], asyncio.Task] = {}  # counts under way: one per list at a time in a process


async def _count(collection: AsyncCollection, flt: dict[str, Any], hint: dict[str, Any]) -> int:
    # the filter's BSON: exact (a value's type included) and written in C
    key = (collection.full_name, bson.encode(flt, codec_options=collection.codec_options))
    now = time.monotonic()
    if (hit := _COUNTS.get(key)) is not None and hit[1] > now:
        if hit[0] <= now:
            _counting(collection, key, flt, hint, now)  # recounted meanwhile, in the background
        return hit[2]
    # requests for the same list while its count runs wait for that count instead of each counting (at a
    # million incidents 32 concurrent first pages each counting 500,000 keys all ran past their deadline, so
    # no count was ever cached); the count is a task of its own, so a waiter that goes away stops no other
    return await asyncio.shield(_counting(collection, key, flt, hint, now))


def _counting(collection: AsyncCollection, key: tuple[str, bytes], flt: dict[str, Any], hint: dict[str, Any],
              now: float) -> asyncio.Task:
    """The list's count under way in this process, started now if there is none."""
    loop = asyncio.get_running_loop()
    running = _COUNTING.get(key)
    if running is None or running.get_loop() is not loop:
        running = _COUNTING[key] = loop.create_task(collection.count_documents(flt, **hint))
        running.add_done_callback(lambda task: _counted(key, task, now))
    return running


def _counted(key: tuple[str, bytes], task: asyncio.Task, started: float) -> None:
    if _COUNTING.get(key) is task:
        del _COUNTING[key]
    if task.cancelled() or task.exception() is not None:  # its waiters got the error; the next one counts again
        return
    if (count := task.result()) >= COUNT_EXACT_BELOW:
        if len(_COUNTS) >= _COUNTS_MAX:
            _COUNTS.clear()
        reuse = count_reuse_seconds(count)
        _COUNTS[key] = (started + reuse * (1 - COUNT_REFRESH_SHARE), started + reuse, count)
    else:
        _COUNTS.pop(key, None)  # fallen below: exact again from now on


async def fetch_page(collection: AsyncCollection, query: ListQuery, *, base_filter: dict[str, Any] | None = None,
                     projection: Mapping[str, Any] | None = None,
                     convert: Callable[[dict], Any] = lambda d: d) -> Page:
    """Count and fetch one page; a page past the end is a 404 (the first page may be empty)."""
    parts = [p for p in (base_filter, query.filter) if p]
    flt = {"$and": parts} if len(parts) > 1 else (parts[0] if parts else {})
    hint = {"hint": query.hint} if query.hint else {}
    count = await _count(collection, flt, hint)
    if query.page > 1 and query.skip >= count:
        raise NotFound("Invalid page.", {"page": query.page, "count": count}, code="INVALID_PAGE")
    items = [convert(d) for d in await _read(collection, flt, projection, query)]
    return Page(items=items, count=count, page=query.page, page_size=query.page_size)


async def _read(collection: AsyncCollection, flt: dict[str, Any], projection: Mapping[str, Any] | None,
                query: ListQuery) -> list[dict]:
    """The page's documents, by the `find` command itself: the driver's cursor layers cost about 0.05 ms a
    page, a tenth of a list request's CPU (docs/benchmarks.md). A first batch cut short by the server's 16 MiB
    reply limit is read on from where it stopped, in the same session (`_find`); tried once more after a lost
    connection (`_once_more`)."""
    cmd: dict[str, Any] = {"find": collection.name, "filter": flt, "sort": dict(query.sort), "skip": query.skip,
                           "limit": query.page_size}
    if projection is not None:
        cmd["projection"] = projection
    if query.hint:
        cmd["hint"] = dict(query.hint)
    return await _once_more(_find, collection, cmd)


async def find_one(collection: AsyncCollection, flt: Mapping[str, Any],
                   projection: Mapping[str, Any] | None = None) -> dict | None:
    """The first document `flt` matches (the driver's `find_one`), by the `find` command in one batch, so no
    cursor is left open: the driver's cursor layers cost about 0.08 ms of CPU a read, a tenth of a detail GET's.
    Tried once more as a page is (`_read`)."""
    cmd: dict[str, Any] = {"find": collection.name, "filter": flt, "limit": 1, "singleBatch": True, "batchSize": 1}
    if projection is not None:
        cmd["projection"] = projection
    found = await _once_more(_first_batch, collection, cmd)
    return found[0] if found else None


async def _once_more(read: Callable[[AsyncCollection, dict[str, Any]], Awaitable[list[dict]]],
                     collection: AsyncCollection, cmd: dict[str, Any]) -> list[dict]:
    """`read(collection, cmd)`, tried once more after a lost connection or a primary that stepped down, as the
    driver's retryable reads are — not after a read that ran out of its deadline."""
    try:
        return await read(collection, cmd)
    except (NetworkTimeout, ServerSelectionTimeoutError):
        raise
    except AutoReconnect:
        return await read(collection, cmd)


async def _first_batch(collection: AsyncCollection, cmd: dict[str, Any]) -> list[dict]:
    reply = await collection.database.command(cmd, codec_options=collection.codec_options,
                                              read_preference=collection.read_preference)
    return reply["cursor"]["firstBatch"]


async def _find(collection: AsyncCollection, cmd: dict[str, Any]) -> list[dict]:
    """`cmd`'s documents, read on past a cut batch. Each find asks for one more document per batch than its
    limit: with a batch exactly as large, a sorted read's cursor stays open after its last document."""
    db, options, limit = collection.database, collection.codec_options, cmd["limit"]
    docs: list[dict] = []
    async with db.client.start_session(causal_consistency=False) as session:
        while True:
            left = limit - len(docs)
            batch = (await db.command({**cmd, "skip": cmd["skip"] + len(docs), "limit": left, "batchSize": left + 1},
                                      codec_options=options, read_preference=collection.read_preference,
                                      session=session))["cursor"]
            docs += batch["firstBatch"]
            if not batch["id"]:
                return docs
            # cut short by the reply limit: its cursor closed here, and the rest read by another find from there
            # (a getMore would carry the driver's maxTimeMS, which the server refuses on a getMore)
            await db.command({"killCursors": collection.name, "cursors": [batch["id"]]}, session=session)
            if len(docs) >= limit or not batch["firstBatch"]:
                return docs


def _with_page(url: str, page: int | None) -> str:
    # the same list's next and previous links are asked on every request for its pages; a long URL is not kept
    return _with_page_kept(url, page) if len(url) <= 1024 else _with_page_made(url, page)


def _with_page_made(url: str, page: int | None) -> str:
    parts = urlsplit(url)
    q = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    if page is not None:
        q.append(("page", str(page)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(q), ""))


_with_page_kept = functools.lru_cache(maxsize=1024)(_with_page_made)


def drf_response(url: str, page: Page, results: list[Any]) -> dict[str, Any]:
    """`{"count", "next", "previous", "results"}` with absolute next/previous URLs, as DRF does."""
    nxt = _with_page(url, page.page + 1) if page.has_next else None
    prev = None
    if page.has_previous:
        prev = _with_page(url, page.page - 1 if page.page > 2 else None)
    return {"count": page.count, "next": nxt, "previous": prev, "results": results}
