"""The knowledge-base article a published postmortem becomes (one POSTMORTEM_SUMMARY article per
postmortem, written through the articles service), and the periodic sweep that writes the articles of
postmortems published while theirs could not be written."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Mapping

from pydantic import ValidationError as PydanticValidationError
from pymongo import ReturnDocument

from app import classification, periodic
from app.articles import service as articles
from app.articles.models import ArticleCreate, ArticleStatus, ArticleType, ArticleUpdate
from app.backends import Backends
from app.errors import ValidationFailed
from app.incidents import service as incidents
from app.postmortems.models import PostmortemStatus
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import User

log = logging.getLogger(__name__)
S = PostmortemStatus

ARTICLE_CONTENT_MAX = 200_000


def _article_content(doc: Mapping[str, Any]) -> str:
    parts = [f"# {doc['title']}"]
    for heading, key in (("Executive summary", "executive_summary"), ("Root cause analysis", "root_cause_analysis"),
                         ("Impact", "impact_assessment"), ("Lessons learned", "lessons_learned")):
        if (doc.get(key) or "").strip():
            parts.append(f"## {heading}\n\n{doc[key].strip()}")
    items = [i for i in doc.get("action_items") or [] if isinstance(i, dict)]
    if items:
        lines = []
        for i in items:
            extra = ", ".join(x for x in (i.get("priority"), i.get("status"), i.get("category")) if x)
            line = f"- {i.get('title', '')}" + (f" ({extra})" if extra else "")
            if (i.get("description") or "").strip():
                line += f": {i['description'].strip()}"
            lines.append(line)
        parts.append("## Action items\n\n" + "\n".join(lines))
    text = "\n\n".join(parts)
    return text[:ARTICLE_CONTENT_MAX]


def _article_fields(doc: Mapping[str, Any], incident: Mapping[str, Any] | None) -> dict[str, Any]:
    """The article of a published postmortem, at the postmortem's classification. What it would copy from
    the incident (its category and id) is left out when the incident is classified above the postmortem:
    what a document copies takes its source's classification, or stays out."""
    level = doc["data_classification"]
    if incident is not None and classification.most_secret([incident, doc]) != level:
        incident = None
    category = ((incident or {}).get("category") or "").strip()[:100] or "Postmortem"
    return {"title": doc["title"], "content": _article_content(doc), "article_type": ArticleType.POSTMORTEM_SUMMARY,
            "category": category, "summary": (doc.get("executive_summary") or "")[:5_000],
            "status": ArticleStatus.PUBLISHED, "data_classification": level,
            "related_services": list(doc.get("affected_services") or []),
            "source_postmortems": [doc["_id"]], "related_incidents": [incident["_id"]] if incident else []}


async def prepare_article(bk: Backends, doc: Mapping[str, Any], user: User) -> dict[str, Any]:
    """The article's fields, validated by the articles' own models before anything changes."""
    found = await incidents.incidents_by_ids(bk, ids=[doc["incident"]], user=user)
    fields = _article_fields(doc, found.get(doc["incident"]))
    try:
        ArticleCreate.model_validate(fields)
    except PydanticValidationError as exc:  # refuse the publication, nothing changed
        raise ValidationFailed("This postmortem cannot become a knowledge-base article",
                               {"reason": str(exc)[:500]}, code="ARTICLE_INVALID") from None
    return fields


async def sync_article(bk: Backends, *, doc: Mapping[str, Any], user: User) -> dict:
    """Create or update the POSTMORTEM_SUMMARY article of a published postmortem (one per postmortem,
    found by `source_postmortems`) through the articles service, and record it on the postmortem."""
    fields = await prepare_article(bk, doc, user)
    linked = (doc.get("knowledge_article") or {}).get("id")
    existing = await bk.mongo.articles.find_one({"_id": linked}, {"slug": 1}) if linked else None
    if existing is None:
        existing = await bk.mongo.articles.find_one(
            {"source_postmortems": doc["_id"], "article_type": ArticleType.POSTMORTEM_SUMMARY.value},
            {"slug": 1}, sort=[("created_at", 1)])
    if existing is None:
        article = await articles.create_article(bk, data=ArticleCreate.model_validate(fields), user=user)
    else:
        article = await articles.update_article(bk, slug=existing["slug"], data=ArticleUpdate.model_validate(fields),
                                                user=user)
    link = {"id": article["_id"], "slug": article["slug"]}
    return await bk.mongo.postmortems.find_one_and_update(
        {"_id": doc["_id"]}, {"$set": {"knowledge_article": link}, "$unset": {"article_pending": ""}},
        return_document=ReturnDocument.AFTER) or doc


@periodic.every(periodic.maintenance_interval, name="articles of published postmortems")
async def sync_pending_articles(bk: Backends, *, older_than: float = 10.0, limit: int = 50) -> int:
    """Write the articles of postmortems published while the article could not be written (a crash or
    an outage between the two steps), as the user who published each. Returns how many were written."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    docs = await bk.mongo.postmortems.find({"status": S.PUBLISHED.value, "article_pending": True,
                                            "published_at": {"$lte": cutoff}}).limit(limit).to_list(None)
    people = await users.users_by_ids(bk, ids=[d["published_by"] for d in docs if d.get("published_by")])
    done = 0
    for doc in docs:
        publisher = people.get(doc.get("published_by"))
        if publisher is None or not publisher.is_active:
            publisher = await users.bot(bk, users.Bot.POSTMORTEMS)  # the service's own user stands in
        try:
            await sync_article(bk, doc=doc, user=publisher)
            done += 1
        except Exception as exc:  # noqa: BLE001 - tried again on the next sweep
            log.warning("postmortem article still not written", extra={"postmortem": doc["_id"],
                                                                       "error": str(exc)[:300]})
    return done
