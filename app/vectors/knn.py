"""Whether the search server can serve OpenSearch k-NN (`knn_vector` fields, `knn` queries), and
the query for it.

The probe creates a throw-away index `<prefix>-knn-probe-<random>` with a 384-d `knn_vector`
field (HNSW, cosine, Lucene engine), writes one vector, asks a filtered `knn` query for it and
deletes the index. Creating the index alone is not proof: osmem (the local test server) accepts the
mapping but answers every `knn` query with 400 "[knn] query is not supported by osmem".
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from opensearchpy.exceptions import ConnectionError as SearchConnectionError

from app.vectors.index import DIM

log = logging.getLogger(__name__)

# An answer from the server is kept for the life of the process; a server that could not be reached
# counts as "no" for this long, then is asked again.
UNREACHABLE_RETRY_SECONDS = 60.0

_CACHE: dict[str, tuple[bool, float]] = {}   # opensearch url -> (supported, expires at; inf = never)
_LOCKS: dict[str, asyncio.Lock] = {}


def knn_field(dim: int = DIM) -> dict[str, Any]:
    """The mapping of an embedding field for the k-NN path."""
    return {"type": "knn_vector", "dimension": dim,
            "method": {"name": "hnsw", "space_type": "cosinesimil", "engine": "lucene"}}


def knn_index_settings() -> dict[str, Any]:
    return {"index.knn": True}


def cosine_from_score(score: float) -> float:
    """The cosine behind a `knn` hit's score: the Lucene engine scores `cosinesimil` as (1 + cos) / 2."""
    return 2.0 * float(score) - 1.0


def knn_query(field: str, vector: Any, k: int, filter: dict[str, Any] | None = None) -> dict[str, Any]:
    """A search body: the k nearest documents to `vector` on `field` among those matching `filter`
    (Lucene engine: the filter is applied during the graph search, so k hits come back when k
    documents match)."""
    clause: dict[str, Any] = {"vector": [float(x) for x in vector], "k": k}
    if filter is not None:
        clause["filter"] = filter
    return {"size": k, "query": {"knn": {field: clause}}}


async def _probe(bk: Any) -> bool:
    name = f"{bk.settings.index_prefix}-knn-probe-{uuid.uuid4().hex[:12]}"
    body = {"settings": {**knn_index_settings(), "number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"embedding": knn_field(DIM), "tag": {"type": "keyword"}}}}
    vector = [0.0] * DIM
    vector[0] = 1.0
    created = False
    try:
        await bk.search.indices.create(index=name, body=body)
        created = True
        await bk.search.index(index=name, id="probe", body={"embedding": vector, "tag": "probe"}, refresh=True)
        resp = await bk.search.search(index=name, body=knn_query("embedding", vector, 1, {"term": {"tag": "probe"}}))
        hits = resp.get("hits", {}).get("hits", [])
        return bool(hits) and hits[0].get("_id") == "probe"
    finally:
        if created:
            try:
                await bk.search.indices.delete(index=name, ignore_unavailable=True)
            except Exception as exc:  # noqa: BLE001 - a leftover probe index is harmless
                log.warning("could not delete the knn probe index", extra={"index": name, "error": str(exc)[:300]})


async def knn_supported(bk: Any) -> bool:
    """True when the search server serves k-NN; asked once per process and server (any error: False).
    `IKL_SEARCH_KNN=false` says no without asking (the in-process index is then used everywhere)."""
    if not bk.settings.search_knn:
        return False
    key = bk.settings.opensearch_url
    cached = _CACHE.get(key)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    lock = _LOCKS.setdefault(key, asyncio.Lock())
    async with lock:
        cached = _CACHE.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        expires = float("inf")
        try:
            ok = await _probe(bk)
        except SearchConnectionError as exc:  # includes timeouts: not an answer, ask again later
            ok, expires = False, time.monotonic() + UNREACHABLE_RETRY_SECONDS
            log.warning("knn probe: search server unreachable", extra={"error": str(exc)[:300]})
        except Exception as exc:  # noqa: BLE001 - any refusal means no
            ok = False
            log.info("knn probe: not supported", extra={"error": str(exc)[:300]})
        _CACHE[key] = (ok, expires)
        return ok


def clear_knn_cache() -> None:
    _CACHE.clear()
    _LOCKS.clear()
