"""Incident embeddings: computed by workers on write, searched in-process by meaning.

Every write to an incident records an `embeddings` job in the outbox in the same transaction
(app/indexing/outbox.py `FOLLOW_UPS`; an added event records one too), so none is lost; a worker runs
`embed_incidents`, which embeds the incident's text (`embedding_text`: title, root cause, resolution,
first event, cut at 24 word pieces: about 15 ms an incident; bench/embedding_length_study.py measured the
hybrid ranking's quality the same as with the full text at 256, 66–89 ms) and stores the vector on the document (app/embeddings/store.py: `embedding`,
`embedding_model`, `embedding_hash`, `embedded_at`; `updated_at` untouched; an unchanged text is not
embedded again). `backfill` (each worker's sweep) embeds incidents written before, or by another model version.

Queries never wait on a worker: `query_vector` takes the incident's stored vector, or embeds its text
in-process (about 15 ms); `nearest` searches the process's vector index (app/vectors), which follows
MongoDB by `updated_at`/`embedded_at`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

import numpy as np

from app import vectors
from app.backends import Backends
from app.embeddings import store
from app.users.models import User

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


async def embed_incidents(bk: Backends, ids: list[str]) -> None:
    """The outbox job: embed these incidents' current text (gone ones are skipped)."""
    docs = await bk.mongo.incidents.find({"_id": {"$in": ids}}, {**TEXT_FIELDS, **store.FIELDS}).to_list(None)
    await store.embed_documents(bk, "incidents", docs, PROFILE)


async def backfill(bk: Backends) -> int:
    """Embed incidents written before, or embedded by another model or profile version."""
    return await store.backfill(bk, "incidents", TEXT_FIELDS, PROFILE)


async def query_vector(doc: Mapping[str, Any]) -> np.ndarray | None:
    """The incident's stored vector when it is current for its text, else its text embedded now; None
    when there is no text or the model is not installed (similarity then ranks without meaning)."""
    return await PROFILE.current_vector(doc)


async def nearest(bk: Backends, vec: np.ndarray, k: int, user: User, *, namespace: str | None = None,
                  exclude: tuple[str, ...] = ()) -> dict[str, float]:
    """Cosine similarity of the `k` incidents nearest `vec` that `user` may see (optionally in one namespace)."""
    index = await vectors.get_index(bk, "incidents", refresh_seconds=REFRESH_SECONDS, model=PROFILE.version)
    return dict(await asyncio.to_thread(index.search, vec, k, max_rank=user.clearance.rank, namespace=namespace,
                                        exclude_ids=exclude))


stored_vector = PROFILE.stored_vector
