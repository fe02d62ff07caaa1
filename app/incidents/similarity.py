"""Which past incidents are like this one, and why: the hybrid ranking every domain uses.

Candidates come from the search engine's text relevance (more_like_this over the
incident's text, indexers/incidents.py) and, when incident vectors exist, from the nearest embeddings
(app/vectors); MongoDB then checks each against the reader's clearance. Each candidate is scored

    score = W_TEXT * text + W_SEMANTIC * semantic + W_STRUCTURE * structure

- `text`: the engine's relevance divided by the best candidate's (0-1);
- `semantic`: cosine of the two incidents' embeddings, clipped at 0 (0-1); a candidate not embedded yet
  (or embedded before its text changed) is embedded on the spot (`embeddings.current_vectors`); only
  without the model installed does its weight move to `text`;
- `structure`: 0.4 × Jaccard of affected services + 0.25 × same category + 0.15 × same namespace +
  0.1 × same severity + 0.1 × Jaccard of the timeline's event types.

**The text query's work is bounded** when the incident has a vector (`_text_pool`): it scores only the
TEXT_POOL (300) incidents nearest by meaning, plus every incident the vector index may not hold by its
current text yet (an embedding job pending, none of the current model, embedded moments ago:
`embeddings.not_in_vector_index`), sent as an `ids` filter — a Lucene engine then scores those, not the
corpus. The engine's relevance of a pooled incident is the one the unbounded query gives it (the term
statistics are the index's). What it cannot find: an incident whose words match but whose meaning is
farther than the 300th nearest (e.g. the same log line in another kind of outage) is no longer a text
candidate. The unbounded query is kept where the pool would be all there is anyway (fewer than
TEXT_POOL by meaning in scope), without a vector (model not installed, no text), with a `since` scope
(the vector index has no detection dates), or while more than NOT_INDEXED_MAX incidents of a kind lack
a current vector (a bulk import or a model change: the vector index does not stand for the corpus).
Every other promise below holds inside the pool as before. osmem, the test server, evaluates each clause
over the whole index before filtering, so it gains nothing there; quality and time of both paths:
docs/benchmarks.md (recommendations latency).

Duplicates (`duplicate_of` set) and the incident's own canonical are never candidates: the same
outage tells the reader nothing new. Ties are broken by name, then id. Each match also carries absolute
`signals` (semantic, lexical — words in common computed here, services, category) for confidences. Every part is reported as a matching
factor `{factor, weight, value, detail}`.

Measured (bench/similarity_quality.py, fusions chosen on one half of the dataset, judged on the other):
this formula beats the text relevance alone on same-cause nDCG@10 through its structure part; the semantic
part adds +0.005 [-0.013, +0.023] over text + structure (within noise), and rank fusion, min-max or
z-scored signals tuned on the other half all did worse held out, so the formula stays (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from app import classification
from app.backends import Backends
from app.incidents import embeddings
from app.users.models import User
from indexers import incidents as incidents_index

W_TEXT, W_SEMANTIC, W_STRUCTURE = 0.45, 0.35, 0.20
FUSION = "max"  # how the parts are put on one scale (bench/similarity_fusion.py): text over the best hit's
STRUCTURE = {"services": 0.4, "category": 0.25, "namespace": 0.15, "severity": 0.1, "event_types": 0.1}
CANDIDATES = 50
MAX_CANDIDATES = 200  # the widest window asked for when duplicates or hidden incidents thin out the first
# Bounded text scoring: with the incident's vector known, the text query scores only the TEXT_POOL nearest
# by meaning plus the incidents not in the vector index yet (at most NOT_INDEXED_MAX of each kind:
# embeddings.not_in_vector_index), not the whole corpus (docs/benchmarks.md). At least MAX_CANDIDATES, so
# that a widened window's nearest by meaning still come from the pool (0: always the unbounded query).
TEXT_POOL = 300
NOT_INDEXED_MAX = 500
# Written but maybe not searchable yet: a write reaches the search index through the outbox (a worker
# syncs it, then the engine refreshes, about a second), and the vector index once the embedding job has
# run. An incident with a pending index sync, or written within RECENT_SECONDS, is a candidate straight
# from MongoDB (at most RECENT_MAX, the newest), its text part being its words in common (`lexical`).
RECENT_SECONDS = 10.0
RECENT_MAX = 32


@dataclass
class Match:
    doc: dict[str, Any]
    score: float
    factors: list[dict[str, Any]] = field(default_factory=list)
    # absolute evidence, independent of the other candidates and of the search engine's statistics:
    # semantic (cosine), lexical (words in common), services (Jaccard, None when either has none), category
    signals: dict[str, Any] = field(default_factory=dict)


# --- words in common, computed here (not the engine's BM25: its scores depend on how the index was
# written, per-shard statistics, and are only relative to the best hit) ---------------------------------
_STOP = frozenset("""a an and are as at be been but by can could did do does for from had has have in into is it its
of on or our over so than that the their then there these this those to up was we were when which while with
after before during all any some our us via out not no new since""".split())
_GENERIC = frozenset("""incident incidents issue issues error errors service services failure failures failed fail
failing outage outages problem problems impact impacted customer customers user users request requests system
systems degraded degradation down unavailable elevated rate rates some many""".split())
_WORD = re.compile(r"[a-z0-9]+")


def _stem(w: str) -> str:
    for suffix in ("ations", "ation", "ments", "ment", "ings", "ing", "ies", "ied", "es", "ed", "s", "y", "e"):
        if len(w) - len(suffix) >= 4 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def words(text: str) -> dict[str, float]:
    """Stemmed content words of `text` with their weights (ops-generic words count 0.3)."""
    out: dict[str, float] = {}
    for w in _WORD.findall((text or "").lower()):
        if w in _STOP or len(w) < 2 or w.isdigit():
            continue
        out[_stem(w)] = 0.3 if w in _GENERIC else 1.0
    return out


def _head(doc: Mapping[str, Any]) -> str:
    """What an incident says it is: title, services, category, its first events' messages."""
    events = sorted((e for e in doc.get("timeline") or [] if isinstance(e, dict) and e.get("message")),
                    key=lambda e: str(e.get("timestamp")))[:2]
    return " ".join([doc.get("title") or "", " ".join(doc.get("affected_services") or []),
                     *(e["message"][:300] for e in events)])


def _body(doc: Mapping[str, Any]) -> str:
    return " ".join([_head(doc), (doc.get("description") or "")[:1500], doc.get("root_cause") or "",
                     doc.get("resolution") or ""])


def _contained(part: dict[str, float], whole: dict[str, float]) -> float:
    total = sum(part.values())
    return sum(w for t, w in part.items() if t in whole) / total if total else 0.0


def lexical(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """0-1, symmetric: the share of each incident's head words (title, services, first events) found in
    the other's text, averaged."""
    ha, hb, ba, bb = words(_head(a)), words(_head(b)), words(_body(a)), words(_body(b))
    if not ha or not hb:
        return 0.0
    return round((_contained(ha, bb) + _contained(hb, ba)) / 2, 4)


def _jaccard(a: Any, b: Any) -> float:
    sa, sb = {x for x in a or [] if isinstance(x, str)}, {x for x in b or [] if isinstance(x, str)}
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def _event_types(doc: Mapping[str, Any]) -> set[str]:
    return {e.get("type") for e in doc.get("timeline") or [] if isinstance(e, dict) and e.get("type")}


def structure(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[float, list[dict[str, Any]]]:
    """The structural likeness of two incidents (0-1) and what matched."""
    parts = {
        "services": (_jaccard(a.get("affected_services"), b.get("affected_services")),
                     "shared services: " + ", ".join(sorted(set(a.get("affected_services") or [])
                                                            & set(b.get("affected_services") or [])))),
        "category": (float(bool(a.get("category")) and a.get("category") == b.get("category")),
                     f"same category ({a.get('category')})"),
        "namespace": (float(bool(a.get("namespace")) and a.get("namespace") == b.get("namespace")),
                      f"same namespace ({a.get('namespace')})"),
        "severity": (float(bool(a.get("severity")) and a.get("severity") == b.get("severity")),
                     f"same severity ({a.get('severity')})"),
        "event_types": (_jaccard(_event_types(a), _event_types(b)), "similar timeline steps"),
    }
    total = sum(STRUCTURE[k] * v for k, (v, _) in parts.items())
    factors = [{"factor": k, "weight": round(W_STRUCTURE * STRUCTURE[k], 4), "value": round(v, 4),
                "detail": detail} for k, (v, detail) in parts.items() if v > 0]
    return total, factors


def fuse(doc: Mapping[str, Any], candidate: Mapping[str, Any], *, text: float,
         semantic: float | None) -> Match:
    """The documented formula for one candidate."""
    struct, factors = structure(doc, candidate)
    services = (_jaccard(doc.get("affected_services"), candidate.get("affected_services"))
                if doc.get("affected_services") and candidate.get("affected_services") else None)
    signals = {"semantic": round(semantic or 0.0, 4), "lexical": lexical(doc, candidate), "services": services,
               "category": float(bool(doc.get("category")) and doc.get("category") == candidate.get("category"))}
    w_text, w_sem = (W_TEXT, W_SEMANTIC) if semantic is not None else (W_TEXT + W_SEMANTIC, 0.0)
    score = w_text * text + w_sem * (semantic or 0.0) + W_STRUCTURE * struct
    head = [{"factor": "text", "weight": w_text, "value": round(text, 4), "detail": "words in common"}]
    if semantic is not None:
        head.append({"factor": "semantic", "weight": w_sem, "value": round(semantic, 4),
                     "detail": "meaning of the descriptions (sentence embeddings)"})
    return Match(doc=dict(candidate), score=round(min(1.0, score), 4), factors=head + factors, signals=signals)


@dataclass(frozen=True)
class Scope:
    """Which incidents may be candidates, besides what the reader may see: one namespace, some statuses,
    detected since a time (each optional), as a search-engine filter and as a MongoDB filter alike."""

    namespace: str | None = None
    statuses: tuple[str, ...] = ()
    since: datetime | None = None

    def search_clauses(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.namespace:
            out.append({"term": {"namespace": self.namespace}})
        if self.statuses:
            out.append({"terms": {"status": list(self.statuses)}})
        if self.since is not None:
            out.append({"range": {"detected_at": {"gte": self.since.isoformat()}}})
        return out

    def mongo(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.statuses:
            out["status"] = {"$in": list(self.statuses)}
        if self.since is not None:
            out["detected_at"] = {"$gte": self.since}
        return out


async def similar(bk: Backends, doc: Mapping[str, Any], *, user: User, limit: int,
                  namespace: str | None = None, semantic: bool = True, statuses: tuple[str, ...] = (),
                  since: datetime | None = None) -> list[Match]:
    """The `limit` past incidents most like `doc` that `user` may see (optionally in one namespace, of some
    statuses, detected since a time: `Scope`), best first. `semantic=False` ranks by text and structure
    alone (what the benchmark compares against).

    Duplicates (`duplicate_of` set) are never candidates, nor is `doc`'s own canonical: they are the
    same outage and tell the reader nothing new. The text part is normalised by the best candidate
    kept, and the window widens while the candidates kept are fewer than `limit`, so the answer is the
    one the caller would get without the twins. With a vector (and no `since`), the text query scores
    only the text pool (`_text_pool`, the module docstring); the window's nearest by meaning come from it."""
    scope = Scope(namespace=namespace, statuses=tuple(statuses), since=since)
    visible = classification.search_filter(user)
    if clauses := scope.search_clauses():  # filtered in the search, so every candidate is in the scope
        visible = {"bool": {"filter": [visible, *clauses]}}
    exclude = tuple(x for x in (doc["_id"], doc.get("duplicate_of")) if x)
    if len(exclude) > 1:  # the canonical is left out in the search too, so it takes no place in the window
        visible = {"bool": {"filter": [visible], "must_not": [{"ids": {"values": list(exclude[1:])}}]}}
    qvec = await embeddings.query_vector(doc) if semantic else None
    pool = await _text_pool(bk, qvec, user=user, scope=scope, exclude=exclude) if qvec is not None else None
    window = CANDIDATES
    while True:
        matches, full = await _candidates(bk, doc, user=user, scope=scope, visible=visible, qvec=qvec,
                                          exclude=exclude, window=window, pool=pool)
        if len(matches) >= limit or not full or window >= MAX_CANDIDATES:
            break
        window *= 2
    matches.sort(key=order_key)
    return matches[:limit]


def order_key(m: Match) -> tuple:
    """Best first; ties by the incident's name (derived from its data), then id."""
    return (-m.score, str(m.doc.get("name") or ""), str(m.doc["_id"]))


@dataclass(frozen=True)
class TextPool:
    """What the bounded text query scores: the nearest by meaning (cosine by id, best first) and the
    incidents the vector index may not hold by their current text yet."""

    near: dict[str, float]
    late: frozenset[str]

    def ids(self) -> list[str]:
        return sorted(set(self.near) | self.late)

    def nearest(self, k: int) -> dict[str, float]:
        """The `k` nearest: what `embeddings.nearest` with `k` answers (the same order, ties by id)."""
        return dict(sorted(self.near.items(), key=lambda kv: (-kv[1], kv[0]))[:k])


async def _text_pool(bk: Backends, qvec, *, user: User, scope: Scope, exclude: tuple[str, ...]) -> TextPool | None:
    """The incidents the text query may score, or None for the unbounded query (see the module docstring)."""
    if not TEXT_POOL or scope.since is not None:
        return None
    near = await embeddings.nearest(bk, qvec, TEXT_POOL, user, namespace=scope.namespace, statuses=scope.statuses,
                                    exclude=exclude)
    if len(near) < TEXT_POOL:  # every incident in scope in the vector index is in the pool: no bound needed
        return None
    late = await embeddings.not_in_vector_index(bk, limit=NOT_INDEXED_MAX)
    return None if late is None else TextPool(near=near, late=frozenset(late))


async def _candidates(bk: Backends, doc: Mapping[str, Any], *, user: User, scope: Scope, visible: dict[str, Any],
                      qvec, exclude: tuple[str, ...], window: int,
                      pool: TextPool | None = None) -> tuple[list[Match], bool]:
    """The scored candidates of one window, and whether a source filled it (more may be behind). With a
    `pool`, the text query scores only its incidents and the nearest by meaning come from it."""
    hits = await incidents_index.similar_incidents(bk, dict(doc), limit=window, visible=visible,
                                                   ids=pool.ids() if pool is not None else None)
    raw = {h["id"]: h["score"] or 0.0 for h in hits}
    if pool is not None:
        near = pool.nearest(window)
    else:
        near = await embeddings.nearest(bk, qvec, window, user, namespace=scope.namespace, statuses=scope.statuses,
                                        exclude=exclude) if qvec is not None else {}
    ids = (set(raw) | set(near)) - set(exclude)
    flt: dict[str, Any] = {"_id": {"$in": sorted(ids)}, "duplicate_of": None, **classification.mongo_filter(user),
                           **scope.mongo()}
    found = await bk.mongo.incidents.find(flt, {"timeline_bytes": 0}).to_list(None)
    # written moments ago: neither search source may know it yet (outbox and refresh lag, embedding job);
    # first, so that embedding on the spot (a bounded number) reaches them
    unsearchable = await not_yet_searchable(bk, user=user, namespace=None, scope=scope,
                                            exclude=set(exclude) | {c["_id"] for c in found} | set(raw))
    found = unsearchable + found
    top = max((raw.get(c["_id"], 0.0) for c in found), default=0.0) or 1.0
    # meaning from each candidate's own vector (exact, not only for the nearest k); one not embedded yet,
    # or embedded before its text changed, is embedded now (a few, in one batch): the answer never waits
    # on or depends on the embedding job
    fresh = await embeddings.current_vectors(found) if qvec is not None else {}
    # words in common stand in for the engine's score only where the engine does not hold the incident as
    # it is (one ids query): one it holds scored what it scored, nothing included (a CI run saw a weak
    # match's score move when it left the recent window)
    held = await incidents_index.searchable_now(bk, unsearchable)
    late = {c["_id"] for c in unsearchable if str(c["_id"]) not in held}
    matches = []
    for c in found:
        vec = fresh.get(c["_id"]) if qvec is not None else None
        sem = None if vec is None else max(0.0, float(vec @ qvec))
        for k in ("embedding", "embedding_hash"):
            c.pop(k, None)
        text = raw.get(c["_id"], 0.0) / top if c["_id"] in raw else None
        m = fuse(doc, c, text=0.0 if text is None else round(text, 4), semantic=sem)
        if text is None and c["_id"] in late:  # the engine cannot score it yet: words in common stand in
            m = fuse(doc, c, text=m.signals["lexical"], semantic=sem)
            m.factors[0]["detail"] = "words in common (written moments ago: not searchable yet)"
        matches.append(m)
    return matches, len(hits) >= window or len(near) >= window


async def not_yet_searchable(bk: Backends, *, user: User, namespace: str | None,
                             exclude: set[Any], scope: Scope | None = None) -> list[dict[str, Any]]:
    """Incidents the search engine may not answer for yet — a sync to the index still pending in the
    outbox, or written within RECENT_SECONDS (synced but not yet refreshed) — that `user` may see, in
    `namespace` (and `scope`), not duplicates, not in `exclude`: at most RECENT_MAX, the newest. A near-duplicate
    resolved a moment ago is then found at once, not once the workers have caught up."""
    pending = [e["doc_id"] async for e in bk.mongo.outbox.find({"index": incidents_index.INDEX.name},
                                                                {"doc_id": 1}).limit(500)]
    since = datetime.now(timezone.utc) - timedelta(seconds=RECENT_SECONDS)
    flt: dict[str, Any] = {"duplicate_of": None, **classification.mongo_filter(user)}
    if exclude:
        flt["_id"] = {"$nin": sorted(str(x) for x in exclude)}
    if namespace:
        flt["namespace"] = namespace
    if scope is not None:
        flt.update(scope.mongo())
    # two reads, each on its index (the pending by id; the recent in (updated_at, _id) order), merged here
    waiting = await bk.mongo.incidents.find({"$and": [flt, {"_id": {"$in": pending}}]},
                                            {"timeline_bytes": 0}).to_list(None) if pending else []
    recent = await bk.mongo.incidents.find({"$and": [flt, {"updated_at": {"$gte": since}}]}, {"timeline_bytes": 0},
                                           hint=[("updated_at", 1), ("_id", 1)]).sort(
        [("updated_at", -1), ("_id", -1)]).limit(RECENT_MAX).to_list(None)
    merged = {d["_id"]: d for d in (*waiting, *recent)}.values()
    never = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(merged, key=lambda d: (-(d.get("updated_at") or never).timestamp(), d["_id"]))[:RECENT_MAX]
