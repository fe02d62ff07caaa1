"""Evidence of meaning for confidences: does what a candidate says caused it (or what an article is about)
mean what this incident says is going on? Cosines of sentence embeddings (app/embeddings), 0-1.

- `cause` (SIMILAR_INCIDENT, SOLUTION, EXPERT): the incident's account — its root cause when known, else
  its title — against the candidate's recorded root cause (placeholders never count). Two incidents with
  the same cause are what a responder wants; the fused similarity, which embeds each incident's title
  with its company, service and first event, mostly finds incidents of the same service or wording.
- `semantic` for KNOWLEDGE_ARTICLE: the incident's account against the article's title and summary (the
  article search ranks words only).

Both are 0 when either side has no text or the model is not installed (confidences then rest on the
other evidence, as they did before). Vectors of texts seen lately come from the process's recent vectors
(app/embeddings/store.py `embed_texts`); new ones are embedded in one batch on a thread.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from app.embeddings import store
from app.recommendations import engine

MAX_TOKENS = 64      # a root cause or an article title and summary: one or two sentences


def account(incident: Mapping[str, Any]) -> str:
    """What the incident says is going on: its root cause when one is recorded, else its title."""
    cause = (incident.get("root_cause") or "").strip()
    return cause if engine.is_known_fix(cause) else (incident.get("title") or "").strip()


def recorded_cause(doc: Mapping[str, Any]) -> str:
    cause = (doc.get("root_cause") or "").strip()
    return cause if engine.is_known_fix(cause) else ""


def article_text(article: Mapping[str, Any]) -> str:
    return " ".join(x for x in [(article.get("title") or "").strip(), (article.get("summary") or "").strip()] if x)


async def vectors(texts: Iterable[str]) -> dict[str, np.ndarray]:
    """Each distinct non-empty text's unit vector (none when the model is not installed)."""
    return await store.embed_texts(texts, MAX_TOKENS)


def cosine(vecs: Mapping[str, np.ndarray], a: str, b: str) -> float:
    va, vb = vecs.get(a), vecs.get(b)
    if va is None or vb is None:
        return 0.0
    return round(max(0.0, min(1.0, float(va @ vb))), 4)


async def agreement(incident: Mapping[str, Any], *, causes_of: list[Mapping[str, Any]],
                    articles: list[Mapping[str, Any]]) -> tuple[dict[Any, float], dict[Any, float]]:
    """(`cause` by candidate incident id, `semantic` by article id) for this incident."""
    mine = account(incident)
    if not mine:
        return {}, {}
    texts = {d["_id"]: recorded_cause(d) for d in causes_of}
    atexts = {a["_id"]: article_text(a) for a in articles}
    vecs = await vectors([mine, *texts.values(), *atexts.values()])
    return ({k: cosine(vecs, mine, t) for k, t in texts.items()},
            {k: cosine(vecs, mine, t) for k, t in atexts.items()})
