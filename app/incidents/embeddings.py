"""Incident embeddings: computed by workers on write, searched in-process by meaning.

Every write to an incident records an `embeddings` job in the outbox in the same transaction
(app/indexing/outbox.py `FOLLOW_UPS`; an added event records one too), so none is lost; a worker runs
`embed_incidents`, which embeds the incident's text (`embedding_text`: title, root cause, resolution,
description, category, services, the first events — what matters first, as the model reads at most
256 word pieces) and stores `embedding` (1536 bytes), `embedding_model`, `embedding_hash` and
`embedded_at` on the document, without touching `updated_at`; an unchanged text is not embedded
again. `backfill` (each worker's sweep) embeds incidents written before, or by another model version.

Queries never wait on a worker: `query_vector` takes the incident's stored vector, or embeds its text
in-process (about 10 ms); `nearest` searches the process's vector index (app/vectors), which follows
MongoDB by `updated_at`/`embedded_at`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Mapping

import numpy as np

from app import embeddings, vectors
from app.backends import Backends
from app.timefmt import utcnow
from app.users.models import User

log = logging.getLogger(__name__)
KIND = "embeddings"
FIRST_EVENTS = 5
TEXT_FIELDS = {"title": 1, "root_cause": 1, "resolution": 1, "description": 1, "category": 1, "affected_services": 1,
               "timeline": {"$slice": FIRST_EVENTS * 4}, "embedding_hash": 1, "embedding_model": 1}
BACKFILL_BATCH = 64
REFRESH_SECONDS = 2.0  # how stale the process's vector index may be when a query uses it


def embedding_text(doc: Mapping[str, Any]) -> str:
    events = sorted((e for e in doc.get("timeline") or [] if isinstance(e, dict) and e.get("message")),
                    key=lambda e: str(e.get("timestamp")))[:FIRST_EVENTS]
    parts = [doc.get("title"), doc.get("root_cause"), doc.get("resolution"), doc.get("description"),
             doc.get("category"), " ".join(s for s in doc.get("affected_services") or [] if isinstance(s, str)),
             *(e["message"] for e in events)]
    return "\n".join(" ".join(str(p).split()) for p in parts if p)[:4000]


def _hash(text: str) -> str:
    return hashlib.sha256(f"{embeddings.MODEL_VERSION}\n{text}".encode()).hexdigest()[:32]


async def _embed_docs(bk: Backends, docs: list[dict]) -> int:
    todo = []
    for d in docs:
        text = embedding_text(d)
        digest = _hash(text)
        if d.get("embedding_hash") != digest or d.get("embedding_model") != embeddings.MODEL_VERSION:
            todo.append((d["_id"], text, digest))
    if not todo:
        return 0
    vecs = await asyncio.to_thread(embeddings.embed, [t for _, t, _ in todo])
    now = utcnow()
    for (doc_id, _, digest), vec in zip(todo, vecs):
        if not vec.any():  # nothing to embed: no vector rather than a zero one
            update: dict[str, Any] = {"$unset": {"embedding": ""},
                                      "$set": {"embedding_hash": digest, "embedding_model": embeddings.MODEL_VERSION,
                                               "embedded_at": now}}
        else:
            update = {"$set": {"embedding": embeddings.to_bytes(vec), "embedding_hash": digest,
                               "embedding_model": embeddings.MODEL_VERSION, "embedded_at": now}}
        await bk.mongo.incidents.update_one({"_id": doc_id}, update)
    return len(todo)


async def embed_incidents(bk: Backends, ids: list[str]) -> None:
    """The outbox job: embed these incidents' current text (gone ones are skipped)."""
    docs = await bk.mongo.incidents.find({"_id": {"$in": ids}}, TEXT_FIELDS).to_list(None)
    await _embed_docs(bk, docs)


async def backfill(bk: Backends, *, limit: int = BACKFILL_BATCH) -> int:
    """Embed up to `limit` incidents that have no embedding of the current model (older writes, a new model)."""
    docs = await bk.mongo.incidents.find({"embedding_model": {"$ne": embeddings.MODEL_VERSION}},
                                         TEXT_FIELDS).limit(limit).to_list(None)
    return await _embed_docs(bk, docs)


async def query_vector(doc: Mapping[str, Any]) -> np.ndarray | None:
    """The incident's stored vector when it is current for its text, else its text embedded now; None
    when there is no text or the model is not installed (similarity then ranks without meaning)."""
    if not embeddings.available():
        return None
    if doc.get("embedding_hash") == _hash(embedding_text(doc)) and (stored := stored_vector(doc)) is not None:
        return stored
    vec = (await asyncio.to_thread(embeddings.embed, [embedding_text(doc)]))[0]
    return vec if vec.any() else None


async def nearest(bk: Backends, vec: np.ndarray, k: int, user: User, *, namespace: str | None = None,
                  exclude: tuple[str, ...] = ()) -> dict[str, float]:
    """Cosine similarity of the `k` incidents nearest `vec` that `user` may see (optionally in one namespace)."""
    index = await vectors.get_index(bk, "incidents", refresh_seconds=REFRESH_SECONDS, model=embeddings.MODEL_VERSION)
    return dict(await asyncio.to_thread(index.search, vec, k, max_rank=user.clearance.rank, namespace=namespace,
                                        exclude_ids=exclude))


def stored_vector(doc: Mapping[str, Any]) -> np.ndarray | None:
    """The document's embedding when it is the current model's (the text may have moved on since)."""
    if doc.get("embedding") and doc.get("embedding_model") == embeddings.MODEL_VERSION:
        return embeddings.from_bytes(doc["embedding"])
    return None
