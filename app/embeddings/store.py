"""Embeddings stored on MongoDB documents, for any collection.

Each use embeds its own text at its own length (a `Profile`: incidents a compact text cut short, so one
embeds in about 15 ms; articles their full text). A document's vector is `embedding` (1536 bytes of
float32) with `embedding_model` (the profile's version: the model's, plus the profile's name and length),
`embedding_hash` (of the model version and the text embedded) and `embedded_at`; `updated_at` is not
touched, so an embedding never looks like an edit. An unchanged text is not embedded again; a text with
nothing to embed gets no vector (rather than a zero one). Embedding runs in a thread: the event loop
keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from app.backends import Backends
from app.embeddings.model import MAX_TOKENS, MODEL_VERSION, available, embed, from_bytes, to_bytes
from app.recent import Recent
from app.timefmt import utcnow

FIELDS = {"embedding_hash": 1, "embedding_model": 1}
BACKFILL_BATCH = 64
RECENT_TEXTS = 4096  # texts whose vectors a process keeps (1.5 KB each)
_recent = Recent(RECENT_TEXTS)  # (max_tokens, text) -> vector


async def embed_texts(texts: Iterable[str], max_tokens: int = MAX_TOKENS) -> dict[str, np.ndarray]:
    """Each distinct non-empty text's vector (none for a text with nothing to embed, none at all when the
    model is not installed). The process keeps the last RECENT_TEXTS texts' vectors: a search paged
    through or repeated, a root cause compared again, costs no second forward pass (about 9 ms of CPU for
    a short text); the others are embedded in one batch on a thread, so the event loop keeps serving."""
    want = list(dict.fromkeys(t for t in texts if t and t.strip()))
    if not want or not available():
        return {}
    todo = [t for t in want if (max_tokens, t) not in _recent]
    if todo:
        for t, vec in zip(todo, await asyncio.to_thread(embed, todo, max_tokens)):
            vec.setflags(write=False)  # shared by every caller that asks for this text
            _recent[(max_tokens, t)] = vec
    out = {}
    for t in want:
        vec = _recent.use((max_tokens, t))
        if vec is not None and vec.any():
            out[t] = vec
    _recent.trim()
    return out


@dataclass(frozen=True)
class Profile:
    """How one kind of document is embedded: its text (`text_of`) cut at `max_tokens` word pieces."""

    name: str
    text_of: Callable[[Mapping[str, Any]], str]
    max_tokens: int = MAX_TOKENS

    @property
    def version(self) -> str:
        """Stored with each vector: vectors of another version are recomputed (the backfill)."""
        return f"{MODEL_VERSION}/{self.name}{self.max_tokens}"

    def text_hash(self, text: str) -> str:
        return hashlib.sha256(f"{self.version}\n{text}".encode()).hexdigest()[:32]

    def has_vector(self, doc: Mapping[str, Any]) -> bool:
        """Whether the document holds an embedding of this profile (without decoding it)."""
        return bool(doc.get("embedding")) and doc.get("embedding_model") == self.version

    def stored_vector(self, doc: Mapping[str, Any]) -> np.ndarray | None:
        """The document's embedding when it is this profile's (its text may have moved on since)."""
        return from_bytes(doc["embedding"]) if self.has_vector(doc) else None

    async def embed_text(self, text: str) -> np.ndarray | None:
        """One text embedded now (None: nothing to embed, or the model is not installed); a text embedded
        lately comes from the process's recent vectors (`embed_texts`)."""
        return (await embed_texts([text], self.max_tokens)).get(text)

    async def current_vector(self, doc: Mapping[str, Any]) -> np.ndarray | None:
        """The stored vector when it is current for the document's text, else that text embedded now."""
        text = self.text_of(doc)
        if doc.get("embedding_hash") == self.text_hash(text) and (stored := self.stored_vector(doc)) is not None:
            return stored
        return await self.embed_text(text)


async def embed_documents(bk: Backends, collection: str, docs: list[dict], profile: Profile) -> list[Any]:
    """Embed the documents whose text changed since their last embedding; returns their ids."""
    todo = []
    for d in docs:
        text = profile.text_of(d)
        digest = profile.text_hash(text)
        if d.get("embedding_hash") != digest or d.get("embedding_model") != profile.version:
            todo.append((d["_id"], text, digest))
    if not todo:
        return []
    vecs = await asyncio.to_thread(embed, [t for _, t, _ in todo], profile.max_tokens)
    now = utcnow()
    for (doc_id, _, digest), vec in zip(todo, vecs):
        stamp = {"embedding_hash": digest, "embedding_model": profile.version, "embedded_at": now}
        update: dict[str, Any] = ({"$set": {"embedding": to_bytes(vec), **stamp}} if vec.any()
                                  else {"$set": stamp, "$unset": {"embedding": ""}})
        await bk.mongo[collection].update_one({"_id": doc_id}, update)
    return [doc_id for doc_id, _, _ in todo]


async def backfill(bk: Backends, collection: str, projection: Mapping[str, Any], profile: Profile, *,
                   limit: int = BACKFILL_BATCH) -> list[Any]:
    """Embed up to `limit` documents with no embedding of this profile's version (older writes, a new model);
    returns their ids."""
    docs = await bk.mongo[collection].find({"embedding_model": {"$ne": profile.version}},
                                           {**projection, **FIELDS}).limit(limit).to_list(None)
    return await embed_documents(bk, collection, docs, profile)
