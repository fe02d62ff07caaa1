"""Incident embeddings: computed by workers on write, searched in-process by meaning.

Every write to an incident records an `embeddings` job in the outbox in the same transaction
(app/indexing/outbox.py `FOLLOW_UPS`; an added event records one too), so none is lost; a worker runs
`embed_incidents`, which embeds the incident's text (`embedding_text`: title, root cause, resolution,
first event, cut at 24 word pieces: about 15 ms an incident; bench/embedding_length_study.py measured the
hybrid ranking's quality the same as with the full text at 256, 66–89 ms) and stores the vector on the document (app/embeddings/store.py: `embedding`,
`embedding_model`, `embedding_hash`, `embedded_at`; `updated_at` untouched; an unchanged text is not
embedded again). `backfill` (each worker's sweep) embeds incidents written before, or by another model version.

Queries never wait on a worker: `query_vector` takes the incident's stored vector, or embeds its text
in-process (about 15 ms). `nearest` searches by k-NN in the search server where it offers it (the
vectors ride in the incidents index, indexers/base.py `VectorField`; an embedded incident is synced there
through the outbox), else the process's own vector index (app/vectors), which follows MongoDB by
`updated_at`/`embedded_at`. Both answer the same question the same way: the `k` nearest by cosine among
what the reader may see, of the current model only, optionally in one namespace and of some statuses, some
ids left out. `not_in_vector_index` names the incidents `nearest` may not find by their current text yet
(the similar-incident text query adds them to its bounded pool: app/incidents/similarity.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import numpy as np

from app import classification, periodic, vectors
from app.backends import Backends
from app.embeddings import store
from app.indexing import outbox
from app.users.models import User
from indexers import incidents as incidents_index
from indexers.base import uses_knn

log = logging.getLogger(__name__)
KIND = "embeddings"
TEXT_FIELDS = {"title": 1, "root_cause": 1, "resolution": 1, "timeline": {"$slice": 20}}
MAX_TOKENS = 24  # word pieces: one incident embeds in about 15 ms (bench/embedding_length_study.py)
REFRESH_SECONDS = 2.0  # how stale the process's vector index may be when a query uses it


def embedding_text(doc: Mapping[str, Any]) -> str:
    """What an incident is about, most telling first: its title, root cause, resolution and first event."""
    events = sorted((e for e in doc.get("timeline") or [] if isinstance(e, dict) and e.get("message")),
                    key=lambda e: str(e.get("timestamp")))[:1]
    parts = [doc.get("title"), doc.get("root_cause"), doc.get("resolution"), *(e["message"] for e in events)]
    return "\n".join(" ".join(str(p).split()) for p in parts if p)[:2000]


PROFILE = store.Profile("incident", embedding_text, MAX_TOKENS)


@outbox.job_handler(KIND)
async def embed_incidents(bk: Backends, ids: list[str]) -> None:
    """The outbox job: embed these incidents' current text (gone ones are skipped)."""
    docs = await bk.mongo.incidents.find({"_id": {"$in": ids}}, {**TEXT_FIELDS, **store.FIELDS}).to_list(None)
    await _to_search_index(bk, await store.embed_documents(bk, "incidents", docs, PROFILE))


@periodic.every(periodic.maintenance_interval, name="incident embeddings backfill")
async def backfill(bk: Backends) -> int:
    """Embed incidents written before, or embedded by another model or profile version; returns how many."""
    done = await store.backfill(bk, "incidents", TEXT_FIELDS, PROFILE)
    await _to_search_index(bk, done)
    return len(done)


async def _to_search_index(bk: Backends, ids: list[Any]) -> None:
    """Where the search index carries vectors (k-NN), incidents just embedded are synced to it through
    the outbox: recorded first, so a failed sync is retried by the sweep, then synced now."""
    if not ids or not await uses_knn(bk, incidents_index.INDEX):
        return
    for doc_id in ids:
        await outbox.record(bk, incidents_index.INDEX.name, str(doc_id))
    await outbox.drain(bk, index=incidents_index.INDEX.name, limit=len(ids))


async def query_vector(doc: Mapping[str, Any]) -> np.ndarray | None:
    """The incident's stored vector when it is current for its text, else its text embedded now; None
    when there is no text or the model is not installed (similarity then ranks without meaning)."""
    return await PROFILE.current_vector(doc)


async def nearest(bk: Backends, vec: np.ndarray, k: int, user: User, *, namespace: str | None = None,
                  statuses: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> dict[str, float]:
    """Cosine similarity of the `k` incidents nearest `vec` that `user` may see (optionally in one
    namespace, of some statuses), best first (ties by id): by the search server's k-NN where it offers it,
    else in-process. A k-NN query that fails (the server lost the capability, an index being rebuilt) is
    answered in-process."""
    if await uses_knn(bk, incidents_index.INDEX):
        try:
            return await nearest_by_knn(bk, vec, k, user, namespace=namespace, statuses=statuses, exclude=exclude)
        except Exception as exc:  # noqa: BLE001 - the in-process index answers the same question
            log.warning("k-NN search failed; using the in-process vector index", extra={"error": str(exc)[:300]})
    return await nearest_in_process(bk, vec, k, user, namespace=namespace, statuses=statuses, exclude=exclude)


async def nearest_by_knn(bk: Backends, vec: np.ndarray, k: int, user: User, *, namespace: str | None = None,
                         statuses: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> dict[str, float]:
    field = incidents_index.INDEX.vector
    flt: list[dict[str, Any]] = [classification.search_filter(user), {"term": {field.model_field: PROFILE.version}}]
    if namespace is not None:
        flt.append({"term": {"namespace": namespace}})
    if statuses:
        flt.append({"terms": {"status": list(statuses)}})
    query = {"bool": {"filter": flt, "must_not": [{"ids": {"values": [str(i) for i in exclude]}}]}}
    body = {**vectors.knn_query(field.field, vec, k, query), "_source": False}
    resp = await bk.search.search(index=bk.index_alias(incidents_index.INDEX.name), body=body)
    hits = [(h["_id"], vectors.cosine_from_score(h["_score"])) for h in resp["hits"]["hits"][:k]]
    return dict(sorted(hits, key=lambda h: (-h[1], h[0])))


async def warm(bk: Backends) -> None:
    """Load this process's vector index now (the API starts it in the background), so the first query by
    meaning does not pay the full load: 13 s at 100k incidents (bench/recommendation_latency.py). A query
    arriving meanwhile waits for this same load. Nothing to load where the search server serves k-NN."""
    try:
        if await uses_knn(bk, incidents_index.INDEX):
            return
        index = await vectors.get_index(bk, "incidents", refresh_seconds=REFRESH_SECONDS, model=PROFILE.version)
        log.info("vector index loaded", extra={"rows": len(index), "bytes": index.nbytes()})
    except Exception as exc:  # noqa: BLE001 - the first query loads it instead
        log.warning("vector index not loaded at start", extra={"error": str(exc)[:300]})


async def nearest_in_process(bk: Backends, vec: np.ndarray, k: int, user: User, *, namespace: str | None = None,
                             statuses: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> dict[str, float]:
    index = await vectors.get_index(bk, "incidents", refresh_seconds=REFRESH_SECONDS, model=PROFILE.version)
    return dict(await asyncio.to_thread(index.search, vec, k, max_rank=user.clearance.rank, namespace=namespace,
                                        statuses=list(statuses) or None, exclude_ids=exclude))


# An incident embedded within this many seconds may not be in the vector index yet: the process's index
# refreshes on use every REFRESH_SECONDS; where the server serves k-NN, the vector is synced through the
# outbox, then the engine refreshes (about a second).
JUST_EMBEDDED_SECONDS = 10.0


async def not_in_vector_index(bk: Backends, *, limit: int) -> set[str] | None:
    """Incidents `nearest` may not find by their current text's meaning: an embedding job still pending
    (written, or its text changed, and not embedded since), no vector of the current model (written
    before it, the backfill not there yet), or embedded within JUST_EMBEDDED_SECONDS. Three reads, each
    on an index, at most `limit` + 1 ids each; None when any holds more than `limit` (a bulk import or
    a model change under way: the vector index does not stand for the corpus then)."""
    since = datetime.now(timezone.utc) - timedelta(seconds=JUST_EMBEDDED_SECONDS)
    reads = [
        (bk.mongo.outbox.find({"index": KIND}, {"doc_id": 1, "_id": 0}), "doc_id"),
        (bk.mongo.incidents.find({"embedding_model": {"$ne": PROFILE.version}}, {"_id": 1}), "_id"),
        (bk.mongo.incidents.find({"embedded_at": {"$gte": since}}, {"_id": 1}), "_id"),
    ]
    out: set[str] = set()
    for cursor, key in reads:
        ids = [d[key] async for d in cursor.limit(limit + 1)]
        if len(ids) > limit:
            return None
        out.update(str(i) for i in ids)
    return out


stored_vector = PROFILE.stored_vector
ON_THE_SPOT = 32  # at most this many candidates embedded during one query (about 15 ms each)


async def current_vectors(docs: list[Mapping[str, Any]]) -> dict[Any, np.ndarray]:
    """Each document's vector for its current text: the stored one when current, else embedded now (at
    most ON_THE_SPOT of them, in one batch; the rest keep a stale stored vector or have none). Nothing is
    written: the embedding job stores vectors."""
    out: dict[Any, np.ndarray] = {}
    todo: list[tuple[Any, str]] = []
    for d in docs:
        text = PROFILE.text_of(d)
        stored = PROFILE.stored_vector(d)
        if stored is not None and d.get("embedding_hash") == PROFILE.text_hash(text):
            out[d["_id"]] = stored
        elif text.strip() and len(todo) < ON_THE_SPOT:
            todo.append((d["_id"], text))
        elif stored is not None:
            out[d["_id"]] = stored
    if todo and store.available():
        vecs = await asyncio.to_thread(store.embed, [t for _, t in todo], PROFILE.max_tokens)
        for (doc_id, _), vec in zip(todo, vecs):
            if vec.any():
                out[doc_id] = vec
    return out
