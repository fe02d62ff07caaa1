"""Versioned indices behind aliases: creation, bulk loading from MongoDB, zero-gap reindex."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import numpy as np
from opensearchpy.helpers import async_bulk

from app.backends import Backends
from app.vectors import DIM, knn_field, knn_supported
from indexers.analysis import ANALYSIS, KEYWORD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VectorField:
    """An embedding stored on the MongoDB document (float32 bytes, app/embeddings/store.py), copied into
    the index as a `knn_vector` with the version of the model that made it, when the search server
    serves k-NN. Where it does not, the index has neither field and the in-process index is used."""
    field: str = "embedding"
    model_field: str = "embedding_model"
    dim: int = DIM

    def mappings(self) -> dict[str, Any]:
        return {self.field: knn_field(self.dim), self.model_field: KEYWORD}

    def source(self, doc: dict) -> dict[str, Any]:
        raw = doc.get(self.field)
        if not raw or len(raw) != self.dim * 4 or not doc.get(self.model_field):
            return {}
        vec = np.frombuffer(bytes(raw), dtype="<f4")
        if not np.isfinite(vec).all() or not vec.any():
            return {}
        return {self.field: vec.tolist(), self.model_field: doc[self.model_field]}


@dataclass(frozen=True)
class IndexDefinition:
    name: str                                   # logical name; the alias is "<prefix>-<name>"
    collection: str                             # the MongoDB collection it is derived from
    mappings: dict[str, Any]
    build: Callable[[dict], dict | None]        # Mongo document -> index source (None: keep out of the index)
    # Optional: fields that need the search server to compute (e.g. analysed terms), added to the source.
    enrich: Callable[[Backends, str, dict], Awaitable[dict]] | None = None
    # Optional: an embedding searched by k-NN where the search server offers it (see `uses_knn`).
    vector: VectorField | None = None

    def _mappings(self, knn: bool) -> dict[str, Any]:
        if not (knn and self.vector):
            return self.mappings
        return {**self.mappings, "properties": {**self.mappings["properties"], **self.vector.mappings()}}

    def fingerprint(self, knn: bool = False) -> str:
        """Changes whenever the mapping or the analysis does, and with k-NN on or off: an index built
        from another definition is rebuilt at start (see ensure_index)."""
        text = json.dumps({"mappings": self._mappings(knn), "analysis": ANALYSIS}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def body(self, knn: bool = False, replicas: int = 0) -> dict[str, Any]:
        """One primary shard (reproducible BM25 statistics, docs/deployment.md), `replicas` copies."""
        settings: dict[str, Any] = {"number_of_shards": 1, "number_of_replicas": replicas, "analysis": ANALYSIS}
        if knn and self.vector:
            settings["index.knn"] = True
        return {"settings": settings,
                "mappings": {**self._mappings(knn), "_meta": {"definition": self.fingerprint(knn)}}}


async def uses_knn(bk: Backends, index: IndexDefinition) -> bool:
    """Whether `index` carries its vectors for k-NN search: it has a vector field and the search server
    serves k-NN (asked once per process; app/vectors/knn.py)."""
    return index.vector is not None and await knn_supported(bk)


async def alias_targets(bk: Backends, index: IndexDefinition) -> list[str]:
    alias = bk.index_alias(index.name)
    if not await bk.search.indices.exists_alias(name=alias):
        return []
    return sorted((await bk.search.indices.get_alias(name=alias)).keys())


async def _actions(bk: Backends, index: IndexDefinition, target: str, docs: list[dict]) -> list[dict]:
    actions = []
    vector = index.vector if await uses_knn(bk, index) else None
    for doc in docs:
        source = index.build(doc)
        if source is None:
            actions.append({"_op_type": "delete", "_index": target, "_id": str(doc["_id"])})
            continue
        if vector is not None:
            source.update(vector.source(doc))
        if index.enrich is not None:
            source.update(await index.enrich(bk, target, source))
        actions.append({"_op_type": "index", "_index": target, "_id": str(doc["_id"]), "_source": source})
    return actions


async def write_docs(bk: Backends, index: IndexDefinition, docs: list[dict], deleted_ids: list[str] = (),
                     target: str | None = None, refresh: bool = False) -> None:
    """Upsert these Mongo documents and delete these ids; raises when any action fails
    (a delete of a document that is not there is not a failure). Writes through the alias
    require it to exist, so a lost index is never silently re-created without its mapping."""
    through_alias = target is None
    target = target or bk.index_alias(index.name)
    actions = await _actions(bk, index, target, docs)
    actions += [{"_op_type": "delete", "_index": target, "_id": i} for i in deleted_ids]
    if not actions:
        return
    params = {"require_alias": "true"} if through_alias else {}
    _, errors = await async_bulk(bk.search, actions, raise_on_error=False, raise_on_exception=True,
                                 refresh=refresh, max_retries=0, params=params)
    real = [e for e in errors if not ("delete" in e and e["delete"].get("status") == 404)]
    if real:
        raise RuntimeError(f"{len(real)} index actions failed: {str(real[:3])[:500]}")


async def reindex(bk: Backends, index: IndexDefinition, *, batch: int = 500,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Build a new versioned index from MongoDB and swap the alias onto it in one atomic step.

    Search keeps answering from the old index until the swap. While the copy runs, the build is
    registered in `index_builds`, and index sync writes every change (deletes included) to the new
    index as well as to the live one; documents updated during the copy are also copied again after
    the swap. So nothing written meanwhile is lost or resurrected."""
    alias = bk.index_alias(index.name)
    target = f"{alias}-v{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S%f')}"
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    await bk.search.indices.create(index=target, body=index.body(await uses_knn(bk, index),
                                                                 bk.settings.search_replicas))
    await bk.mongo.index_builds.insert_one({"_id": target, "index": index.name, "started_at": started})
    try:
        stats = await _build_and_swap(bk, index, alias, target, started, t0, batch, progress)
    except BaseException:
        await bk.mongo.index_builds.delete_one({"_id": target})
        await bk.search.indices.delete(index=target, ignore_unavailable=True)
        raise
    await bk.mongo.index_builds.delete_one({"_id": target})
    return stats


BUILD_MAX_AGE = timedelta(hours=6)  # a registration older than this is a crashed reindex: ignored


async def building(bk: Backends, index: IndexDefinition) -> list[str]:
    """Versioned indices being built for `index` right now (index sync writes to them too)."""
    recent = {"index": index.name, "started_at": {"$gte": datetime.now(timezone.utc) - BUILD_MAX_AGE}}
    return [b["_id"] async for b in bk.mongo.index_builds.find(recent, {"_id": 1})]


async def _build_and_swap(bk: Backends, index: IndexDefinition, alias: str, target: str, started: datetime,
                          t0: float, batch: int, progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    coll = bk.mongo[index.collection]
    total = await coll.count_documents({})
    done = 0
    chunk: list[dict] = []
    async for doc in coll.find({}):
        chunk.append(doc)
        if len(chunk) >= batch:
            await write_docs(bk, index, chunk, target=target)
            done += len(chunk)
            chunk = []
            if progress:
                progress(done, total)
    if chunk:
        await write_docs(bk, index, chunk, target=target)
        done += len(chunk)
    if progress:
        progress(done, total)
    old = await alias_targets(bk, index)
    actions: list[dict] = [{"add": {"index": target, "alias": alias}}]
    actions += [{"remove": {"index": o, "alias": alias}} for o in old]
    # A concrete index that has the alias's own name (auto-created by a stray write) must go first.
    if not old and await bk.search.indices.exists(index=alias):
        actions.append({"remove_index": {"index": alias}})
    await bk.search.indices.update_aliases(body={"actions": actions})
    caught_up = await coll.find({"updated_at": {"$gte": started}}).to_list(None)
    await write_docs(bk, index, caught_up)
    for o in old:
        await bk.search.indices.delete(index=o, ignore_unavailable=True)
    await bk.search.indices.refresh(index=alias)
    stats = {"index": target, "alias": alias, "documents": done, "replaced": old, "caught_up": len(caught_up),
             "seconds": round(time.monotonic() - t0, 3)}
    log.info("reindexed", extra=stats)
    return stats


async def apply_replicas(bk: Backends, index: IndexDefinition) -> list[str]:
    """Give the index behind the alias the replicas of `IKL_SEARCH_REPLICAS` when it has another number (a
    dynamic setting: no rebuild); the indices changed."""
    changed = []
    for target in await alias_targets(bk, index):
        current = await bk.search.indices.get_settings(index=target, name="index.number_of_replicas")
        value = current.get(target, {}).get("settings", {}).get("index", {}).get("number_of_replicas")
        if value is None or int(value) != bk.settings.search_replicas:
            await bk.search.indices.put_settings(index=target,
                                                 body={"index": {"number_of_replicas": bk.settings.search_replicas}})
            changed.append(target)
    if changed:
        log.info("search index replicas set", extra={"indices": changed, "replicas": bk.settings.search_replicas})
    return changed


async def needs_rebuild(bk: Backends, index: IndexDefinition) -> str | None:
    """Why the index must be rebuilt from MongoDB — its alias is missing (a new or emptied search cluster)
    or points at an index built from another definition (a field added to the mapping, k-NN now offered
    or no longer, say) — or None when it is current."""
    targets = await alias_targets(bk, index)
    if not targets:
        return "missing"
    mapping = await bk.search.indices.get_mapping(index=targets[0])
    meta = (mapping.get(targets[0], {}).get("mappings") or {}).get("_meta") or {}
    if meta.get("definition") == index.fingerprint(await uses_knn(bk, index)):
        return None
    return "definition changed"


async def ensure_index(bk: Backends, index: IndexDefinition) -> dict[str, Any] | None:
    """Rebuild the index from MongoDB when it needs it (`needs_rebuild`), here and now; the rebuild is the
    zero-gap reindex, so search keeps answering from the old index meanwhile. Services and the start go
    through the leased rebuild job instead (app/indexing/outbox.py `rebuild`), so that a large rebuild runs
    once, on a worker, however many processes find the index missing."""
    reason = await needs_rebuild(bk, index)
    if reason is None:
        return None
    log.info("search index rebuilding", extra={"index": index.name, "reason": reason})
    return await reindex(bk, index)
