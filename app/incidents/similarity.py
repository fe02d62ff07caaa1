"""Which past incidents are like this one, and why: the hybrid ranking every domain uses.

Candidates come from the search engine's text relevance (more_like_this over the
incident's text, indexers/incidents.py) and, when incident vectors exist, from the nearest embeddings
(app/vectors); MongoDB then checks each against the reader's clearance. Each candidate is scored

    score = W_TEXT * text + W_SEMANTIC * semantic + W_STRUCTURE * structure

- `text`: the engine's relevance divided by the best candidate's (0-1);
- `semantic`: cosine of the two incidents' embeddings, clipped at 0 (0-1); for a candidate not embedded
  yet (or without the model installed) its weight moves to `text`;
- `structure`: 0.4 × Jaccard of affected services + 0.25 × same category + 0.15 × same namespace +
  0.1 × same severity + 0.1 × Jaccard of the timeline's event types.

Duplicates (`duplicate_of` set) and the incident's own canonical are never candidates: the same
outage tells the reader nothing new. Ties are broken by id, so results never depend on write order. Every part is reported as a matching
factor `{factor, weight, value, detail}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from app import classification
from app.backends import Backends
from app.incidents import embeddings
from app.users.models import User
from indexers import incidents as incidents_index

W_TEXT, W_SEMANTIC, W_STRUCTURE = 0.45, 0.35, 0.20
STRUCTURE = {"services": 0.4, "category": 0.25, "namespace": 0.15, "severity": 0.1, "event_types": 0.1}
CANDIDATES = 50
MAX_CANDIDATES = 200  # the widest window asked for when duplicates or hidden incidents thin out the first


@dataclass
class Match:
    doc: dict[str, Any]
    score: float
    factors: list[dict[str, Any]] = field(default_factory=list)


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
    w_text, w_sem = (W_TEXT, W_SEMANTIC) if semantic is not None else (W_TEXT + W_SEMANTIC, 0.0)
    score = w_text * text + w_sem * (semantic or 0.0) + W_STRUCTURE * struct
    head = [{"factor": "text", "weight": w_text, "value": round(text, 4), "detail": "words in common"}]
    if semantic is not None:
        head.append({"factor": "semantic", "weight": w_sem, "value": round(semantic, 4),
                     "detail": "meaning of the descriptions (sentence embeddings)"})
    return Match(doc=dict(candidate), score=round(min(1.0, score), 4), factors=head + factors)


async def similar(bk: Backends, doc: Mapping[str, Any], *, user: User, limit: int,
                  namespace: str | None = None, semantic: bool = True) -> list[Match]:
    """The `limit` past incidents most like `doc` that `user` may see (optionally in one namespace), best
    first. `semantic=False` ranks by text and structure alone (what the benchmark compares against).

    Duplicates (`duplicate_of` set) are never candidates, nor is `doc`'s own canonical: they are the
    same outage and tell the reader nothing new. The text part is normalised by the best candidate
    kept, and the window widens while the candidates kept are fewer than `limit`, so the answer is the
    one the caller would get without the twins."""
    visible = classification.search_filter(user)
    if namespace:  # filtered in the search, so the candidates are all of that namespace
        visible = {"bool": {"filter": [visible, {"term": {"namespace": namespace}}]}}
    exclude = tuple(x for x in (doc["_id"], doc.get("duplicate_of")) if x)
    if len(exclude) > 1:  # the canonical is left out in the search too, so it takes no place in the window
        visible = {"bool": {"filter": [visible], "must_not": [{"ids": {"values": list(exclude[1:])}}]}}
    qvec = await embeddings.query_vector(doc) if semantic else None
    window = CANDIDATES
    while True:
        matches, full = await _candidates(bk, doc, user=user, namespace=namespace, visible=visible, qvec=qvec,
                                          exclude=exclude, window=window)
        if len(matches) >= limit or not full or window >= MAX_CANDIDATES:
            break
        window *= 2
    matches.sort(key=lambda m: (-m.score, m.doc["_id"]))
    return matches[:limit]


async def _candidates(bk: Backends, doc: Mapping[str, Any], *, user: User, namespace: str | None,
                      visible: dict[str, Any], qvec, exclude: tuple[str, ...], window: int) -> tuple[list[Match], bool]:
    """The scored candidates of one window, and whether a source filled it (more may be behind)."""
    hits = await incidents_index.similar_incidents(bk, dict(doc), limit=window, visible=visible)
    raw = {h["id"]: h["score"] or 0.0 for h in hits}
    near = await embeddings.nearest(bk, qvec, window, user, namespace=namespace,
                                    exclude=exclude) if qvec is not None else {}
    ids = (set(raw) | set(near)) - set(exclude)
    flt: dict[str, Any] = {"_id": {"$in": sorted(ids)}, "duplicate_of": None, **classification.mongo_filter(user)}
    if namespace:
        flt["namespace"] = namespace
    found = await bk.mongo.incidents.find(flt, {"timeline_bytes": 0, "embedding_hash": 0}).to_list(None)
    top = max((raw.get(c["_id"], 0.0) for c in found), default=0.0) or 1.0
    matches = []
    for c in found:
        # meaning from the candidate's own vector (exact, not only for the nearest k); one not embedded
        # yet is ranked without it rather than as if it meant nothing alike
        vec = embeddings.stored_vector(c) if qvec is not None else None
        sem = None if vec is None else max(0.0, float(vec @ qvec))
        c.pop("embedding", None)
        matches.append(fuse(doc, c, text=round(raw.get(c["_id"], 0.0) / top, 4), semantic=sem))
    return matches, len(hits) >= window or len(near) >= window
