"""Article embeddings, for the knowledge base's ranking by meaning.

Every write to an article records an `article-embeddings` job in the outbox in the same transaction
(app/indexing/outbox.py `FOLLOW_UPS`); a worker embeds the article's text (`embedding_text`: title,
summary, search keywords, the start of the content) onto the document (app/embeddings/store.py), and
each worker's sweep backfills older articles. Search embeds the query in-process and compares it with
the candidates' stored vectors (app/articles/ranking.py)."""

from __future__ import annotations

from typing import Any, Mapping

from app import periodic
from app.backends import Backends
from app.embeddings import store
from app.indexing import outbox

KIND = "article-embeddings"
TEXT_FIELDS = {"title": 1, "summary": 1, "search_keywords": 1, "content": {"$substrCP": ["$content", 0, 3000]}}
CONTENT_CHARS = 3000


def embedding_text(doc: Mapping[str, Any]) -> str:
    keywords = " ".join(k for k in doc.get("search_keywords") or [] if isinstance(k, str))
    parts = [doc.get("title"), doc.get("summary"), keywords, (doc.get("content") or "")[:CONTENT_CHARS]]
    return "\n".join(" ".join(str(p).split()) for p in parts if p)


PROFILE = store.Profile("article", embedding_text)  # the model's full 256 word pieces
QUERY = store.Profile("query", lambda doc: doc.get("query") or "")  # a search's text, at the same length


@outbox.job_handler(KIND)
async def embed_articles(bk: Backends, ids: list[str]) -> None:
    """The outbox job: embed these articles' current text (gone ones are skipped)."""
    docs = await bk.mongo.articles.find({"_id": {"$in": ids}}, {**TEXT_FIELDS, **store.FIELDS}).to_list(None)
    await store.embed_documents(bk, "articles", docs, PROFILE)


@periodic.every(periodic.maintenance_interval, name="article embeddings backfill")
async def backfill(bk: Backends) -> int:
    """Embed articles written before, or embedded by another model or profile version; returns how many."""
    return len(await store.backfill(bk, "articles", TEXT_FIELDS, PROFILE))
