"""Embeddings stored on MongoDB documents, for any collection.

A document's vector is `embedding` (1536 bytes of float32) with `embedding_model` (the model version),
`embedding_hash` (of the model version and the text embedded) and `embedded_at`; `updated_at` is not
touched, so an embedding never looks like an edit. An unchanged text is not embedded again; a text with
nothing to embed gets no vector (rather than a zero one). Embedding runs in a thread: the event loop
keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Callable, Mapping

import numpy as np

from app.backends import Backends
from app.embeddings.model import MODEL_VERSION, available, embed, from_bytes, to_bytes
from app.timefmt import utcnow

FIELDS = {"embedding_hash": 1, "embedding_model": 1}
BACKFILL_BATCH = 64


def text_hash(text: str) -> str:
    return hashlib.sha256(f"{MODEL_VERSION}\n{text}".encode()).hexdigest()[:32]


def stored_vector(doc: Mapping[str, Any]) -> np.ndarray | None:
    """The document's embedding when it is the current model's (its text may have moved on since)."""
    if doc.get("embedding") and doc.get("embedding_model") == MODEL_VERSION:
        return from_bytes(doc["embedding"])
    return None


async def embed_text(text: str) -> np.ndarray | None:
    """One text embedded now (None: nothing to embed, or the model is not installed)."""
    if not available() or not text.strip():
        return None
    vec = (await asyncio.to_thread(embed, [text]))[0]
    return vec if vec.any() else None


async def current_vector(doc: Mapping[str, Any], text: str) -> np.ndarray | None:
    """The stored vector when it is current for `text`, else `text` embedded now."""
    if doc.get("embedding_hash") == text_hash(text) and (stored := stored_vector(doc)) is not None:
        return stored
    return await embed_text(text)


async def embed_documents(bk: Backends, collection: str, docs: list[dict],
                          text_of: Callable[[Mapping[str, Any]], str]) -> int:
    """Embed the documents whose text changed since their last embedding; returns how many."""
    todo = []
    for d in docs:
        text = text_of(d)
        digest = text_hash(text)
        if d.get("embedding_hash") != digest or d.get("embedding_model") != MODEL_VERSION:
            todo.append((d["_id"], text, digest))
    if not todo:
        return 0
    vecs = await asyncio.to_thread(embed, [t for _, t, _ in todo])
    now = utcnow()
    for (doc_id, _, digest), vec in zip(todo, vecs):
        stamp = {"embedding_hash": digest, "embedding_model": MODEL_VERSION, "embedded_at": now}
        update: dict[str, Any] = ({"$set": {"embedding": to_bytes(vec), **stamp}} if vec.any()
                                  else {"$set": stamp, "$unset": {"embedding": ""}})
        await bk.mongo[collection].update_one({"_id": doc_id}, update)
    return len(todo)


async def backfill(bk: Backends, collection: str, projection: Mapping[str, Any],
                   text_of: Callable[[Mapping[str, Any]], str], *, limit: int = BACKFILL_BATCH) -> int:
    """Embed up to `limit` documents with no embedding of the current model (older writes, a new model)."""
    docs = await bk.mongo[collection].find({"embedding_model": {"$ne": MODEL_VERSION}},
                                           {**projection, **FIELDS}).limit(limit).to_list(None)
    return await embed_documents(bk, collection, docs, text_of)
