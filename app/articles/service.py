"""Knowledge-base articles: every rule about them lives here (search ranking in ranking.py,
statistics in stats.py)."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Mapping

from pydantic import BaseModel
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.activity.service import record_audit, record_read, record_usage
from app.articles.models import (NULLABLE, ArticleCreate, ArticleStatus, ArticleType, Difficulty, RateInput,
                                 RunbookLinkKind)
from app import classification, permissions
from app.backends import Backends
from app.errors import PermissionDenied, ValidationFailed
from app.indexing import outbox
from app.listing import Filter, ListSpec, Page, fetch_page, parse_list_params
from app.repository import Repository
from app.permissions import Rule
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import Classification, Role, User, require_role
from indexers import articles as articles_index

INDEX = articles_index.INDEX.name
SUBJECT = "knowledge_article"  # its audit entries' subject_type

LIST_SPEC = ListSpec(
    collection="articles",
    filters=(Filter("article_type", "article_type", ArticleType), Filter("category", "category"),
             Filter("subcategory", "subcategory"), Filter("status", "status", ArticleStatus),
             Filter("is_featured", "is_featured", bool), Filter("difficulty_level", "difficulty_level", Difficulty),
             Filter("data_classification", "data_classification", Classification)),
    search_fields=("title", "content", "summary", "tags", "search_keywords"),
    ordering={"created_at": "created_at", "updated_at": "updated_at", "view_count": "view_count", "title": "title"},
    default_ordering=("-created_at",),
)
REVIEW_SPEC = ListSpec(collection="articles", filters=LIST_SPEC.filters, search_fields=LIST_SPEC.search_fields,
                       ordering={**LIST_SPEC.ordering, "next_review_due": "next_review_due"},
                       default_ordering=("next_review_due",))
REVIEWABLE = [ArticleStatus.PUBLISHED.value, ArticleStatus.APPROVED.value]


# --- who sees what -------------------------------------------------------------------------

def sees_unpublished(user: User) -> bool:
    return user.has_role(Role.EDITOR)


def visibility(user: User) -> dict[str, Any]:
    """The MongoDB filter for articles this user may see: never above their clearance, and only
    published ones unless they are an editor/admin or the author."""
    flt: dict[str, Any] = classification.mongo_filter(user)
    if not sees_unpublished(user):
        flt["$or"] = [{"status": ArticleStatus.PUBLISHED.value}, {"author": user.id}]
    return flt


def search_visibility(user: User) -> list[dict[str, Any]]:
    """The same rule as `visibility`, as OpenSearch filters."""
    out: list[dict[str, Any]] = [classification.search_filter(user)]
    if not sees_unpublished(user):
        out.append({"bool": {"should": [{"term": {"status": ArticleStatus.PUBLISHED.value}},
                                        {"term": {"author": user.id}}], "minimum_should_match": 1}})
    return out


def usage_scope(user: User) -> dict[str, Any]:
    """The MongoDB filter for the usage events this user's figures are computed over: those of
    people who, when they acted, could see no more than this user — a clearance at or below theirs
    and, for a user who sees only published articles, a viewer too. Events recorded before the
    actor's clearance was kept count only for users who see everything."""
    clearances: list[str | None] = list(user.clearance.visible())
    if user.clearance == Classification.RESTRICTED:
        clearances.append(None)  # older events without a recorded clearance
    flt: dict[str, Any] = {"clearance": {"$in": clearances}}
    if not sees_unpublished(user):
        flt["role"] = Role.VIEWER.value
    return flt


# an article's URL names it by slug; readers see it under `visibility`
ARTICLES = Repository("Article", "ARTICLE_NOT_FOUND", LIST_SPEC, key="slug", rule=visibility)


async def get_visible(bk: Backends, *, slug: str, user: User) -> dict:
    """The article if this user may see it; otherwise a 404 (hidden articles do not exist for them)."""
    return await ARTICLES.get(bk, slug, user)


async def articles_by_ids(bk: Backends, *, ids: list[str], user: User) -> dict[str, dict]:
    """The articles this user may see, keyed by id, in one query."""
    return await ARTICLES.by_ids(bk, ids, user)


# --- writing -------------------------------------------------------------------------------

SLUG_MAX, SLUG_ID_DIGITS = 80, 8


def slugify(title: str, limit: int = SLUG_MAX) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-")
    return slug or "article"


def slug_for(title: str, article_id: str) -> str:
    """`<title, slugified>-<first 8 hex digits of the article's own id>`. It depends on nothing but
    the article itself, so it is unique without looking at other articles and says nothing about
    articles the caller cannot see (a `-2` on collision would confirm a hidden one exists)."""
    suffix = article_id.replace("-", "")[:SLUG_ID_DIGITS]
    return f"{slugify(title, SLUG_MAX - SLUG_ID_DIGITS - 1)}-{suffix}"


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        if isinstance(v, Enum):
            v = v.value
        elif v is not None and k in ("confluence_url", "wiki_url"):
            v = str(v)
        elif v is not None and k == "runbook_links":
            # every field of a link stored (a PATCH's dump leaves out a kind left to its default)
            v = [{**link, "kind": getattr(link.get("kind"), "value", link.get("kind"))
                   or RunbookLinkKind.RUNBOOK.value} for link in v]
        out[k] = v
    return out


def _check_clearance(user: User, value: str | None) -> None:
    classification.check_may_classify(user, value, what="an article")


async def _check_maintainer(bk: Backends, maintainer: str | None) -> None:
    if maintainer and not await users.users_by_ids(bk, ids=[maintainer]):
        raise ValidationFailed("Unknown maintainer", {"field": "maintainer"}, code="UNKNOWN_USER")


def _review_due(bk: Backends, doc: Mapping[str, Any]) -> datetime | None:
    """The configured interval after the last review or publication, whichever is later."""
    base = max((d for d in (doc.get("last_reviewed"), doc.get("published_at")) if d), default=None)
    return base + timedelta(days=bk.settings.review_interval_days) if base else None


async def create_article(bk: Backends, *, data: ArticleCreate, user: User) -> dict:
    """Create an article (editor); its slug comes from its title and its own id (`slug_for`)."""
    require_role(user, Role.EDITOR)
    values = _plain(data.model_dump())
    _check_clearance(user, values["data_classification"])
    await _check_maintainer(bk, values["maintainer"])
    now = utcnow()
    doc = {**values, "author": user.id, "last_updated_by": user.id,
           "maintainer": values["maintainer"] or user.id, "view_count": 0, "rating_sum": 0, "rating_count": 0,
           "rating_average": 0.0, "bookmark_count": 0, "created_at": now, "updated_at": now,
           "published_at": now if values["status"] == ArticleStatus.PUBLISHED.value else None}
    if doc["next_review_due"] is None:
        doc["next_review_due"] = _review_due(bk, doc)
    attempts = 5
    while True:
        # A clash needs the same title and the same 32 random bits (about 1 in 4 billion per pair);
        # a new id then gives a new slug, which tells the caller nothing either way.
        doc["_id"] = str(uuid.uuid4())
        doc["slug"] = slug_for(doc["title"], doc["_id"])

        async def op(s):
            await bk.mongo.articles.insert_one(doc, session=s)
            await record_audit(bk, action="create", user=user, subject_type=SUBJECT, subject_id=doc["_id"],
                               changes={"slug": doc["slug"], "title": doc["title"]}, session=s)

        try:
            await outbox.write(bk, INDEX, doc["_id"], op)
            return doc
        except DuplicateKeyError:
            attempts -= 1
            if not attempts:
                raise


async def update_article(bk: Backends, *, slug: str, data: BaseModel, user: User, replace: bool = False) -> dict:
    """PATCH (only the fields sent) or PUT (`replace`: every field, defaults for those left out).
    The slug stays stable when the title changes, so links keep working."""
    require_role(user, Role.EDITOR)
    current = await get_visible(bk, slug=slug, user=user)
    changes = _plain(data.model_dump(exclude_unset=not replace))
    nulls = [k for k, v in changes.items() if v is None and k not in NULLABLE]
    if nulls:
        raise ValidationFailed("These fields may not be null", [{"field": k, "message": "may not be null"} for k in nulls])
    _check_clearance(user, changes.get("data_classification"))
    if changes.get("maintainer"):
        await _check_maintainer(bk, changes["maintainer"])
    if replace and changes.get("maintainer") is None:
        changes["maintainer"] = current.get("maintainer")
    now = utcnow()
    merged = {**current, **changes}
    if merged["status"] == ArticleStatus.PUBLISHED.value and not current.get("published_at"):
        changes["published_at"] = merged["published_at"] = now
    if "next_review_due" not in changes and ("published_at" in changes or "last_reviewed" in changes):
        changes["next_review_due"] = _review_due(bk, merged)
    audit = {k: ("(changed)" if k == "content" else v) for k, v in changes.items() if current.get(k) != v}
    changes.update(updated_at=now, last_updated_by=user.id)

    async def op(s):
        updated = await bk.mongo.articles.find_one_and_update({"_id": current["_id"]}, {"$set": changes}, session=s,
                                                              return_document=ReturnDocument.AFTER)
        await record_audit(bk, action="update", user=user, subject_type=SUBJECT, subject_id=current["_id"],
                           changes=audit, session=s)
        return updated

    return await outbox.write(bk, INDEX, current["_id"], op)


# Who may call what beyond a role (app/permissions.py): the REST operations and GraphQL fields declare these.
DELETE_RULE = Rule(Role.EDITOR, ownership="the article's author or an admin")
OWN_BOOKMARKS = Rule(ownership="one's own bookmarks")

async def delete_article(bk: Backends, *, slug: str, user: User) -> None:
    """Delete an article (admin, or its author), with its ratings and bookmarks."""
    permissions.check(user, DELETE_RULE)
    current = await get_visible(bk, slug=slug, user=user)
    if not (user.has_role(Role.ADMIN) or current.get("author") == user.id):
        raise PermissionDenied("Only an admin or the author may delete this article", {"required": "admin or author"})

    async def op(s):
        await bk.mongo.articles.delete_one({"_id": current["_id"]}, session=s)
        await bk.mongo.article_ratings.delete_many({"article_id": current["_id"]}, session=s)
        await bk.mongo.bookmarks.delete_many({"article_id": current["_id"]}, session=s)
        await record_audit(bk, action="delete", user=user, subject_type=SUBJECT, subject_id=current["_id"],
                           changes={"slug": slug, "title": current["title"]}, session=s)

    await outbox.write(bk, INDEX, current["_id"], op)


async def mark_reviewed(bk: Backends, *, slug: str, user: User) -> dict:
    """Record a review now (editor); the next one falls due after the configured interval."""
    require_role(user, Role.EDITOR)
    current = await get_visible(bk, slug=slug, user=user)
    now = utcnow()
    due = now + timedelta(days=bk.settings.review_interval_days)

    async def op(s):
        updated = await bk.mongo.articles.find_one_and_update(
            {"_id": current["_id"]}, {"$set": {"last_reviewed": now, "next_review_due": due, "updated_at": now,
                                              "last_updated_by": user.id}},
            session=s, return_document=ReturnDocument.AFTER)
        await record_audit(bk, action="review", user=user, subject_type=SUBJECT, subject_id=current["_id"],
                           changes={"last_reviewed": now, "next_review_due": due}, session=s)
        return updated

    return await outbox.write(bk, INDEX, current["_id"], op)


# --- reading and using ---------------------------------------------------------------------

async def view_article(bk: Backends, *, slug: str, user: User, search_id: str | None = None,
                       count: bool = True) -> dict:
    """Read an article, counting the view atomically and recording it (with the search it came
    from, when known, for click-through figures), and audit-logging the read. `count=False`: a read
    that is not a view (GraphQL `countView: false`), audit-logged all the same."""
    if count:
        doc = await bk.mongo.articles.find_one_and_update(ARTICLES.visible(user, {"slug": slug}),
                                                          {"$inc": {"view_count": 1}},
                                                          return_document=ReturnDocument.AFTER)
    else:
        doc = await ARTICLES.find(bk, slug, user)
    if doc is None:
        raise ARTICLES.not_found(slug)
    extra = {"search_id": search_id} if search_id else {}
    if count:
        await record_usage(bk, kind="article.view", user=user, subject=doc["_id"], **extra)
    await record_read(bk, user=user, subject_type=SUBJECT, subject_id=doc["_id"], changes={"slug": slug, **extra})
    return doc


async def list_articles(bk: Backends, *, user: User, params: Mapping[str, Any]) -> Page:
    """A page of the articles this user may see, with the documented filters, search and ordering."""
    return await ARTICLES.page(bk, params, user)


async def due_for_review(bk: Backends, *, user: User, params: Mapping[str, Any]) -> Page:
    """Published or approved articles whose review date has passed, most overdue first."""
    due = {"status": {"$in": REVIEWABLE}, "next_review_due": {"$lte": utcnow()}}
    return await ARTICLES.page(bk, params, user, base_filter=due, spec=REVIEW_SPEC)


async def rate_article(bk: Backends, *, slug: str, user: User, data: RateInput) -> dict:
    """One rating per user (re-rating replaces it). The rating and the article's aggregates change
    in one transaction, so they stay exact under any concurrency."""
    article = await get_visible(bk, slug=slug, user=user)
    now = utcnow()

    async def txn(s):
        before = await bk.mongo.article_ratings.find_one_and_update(
            {"article_id": article["_id"], "user_id": user.id},
            {"$set": {"rating": data.rating, "feedback": data.feedback, "updated_at": now},
             "$setOnInsert": {"_id": str(uuid.uuid4()), "created_at": now}},
            upsert=True, session=s, return_document=ReturnDocument.BEFORE)
        d_count = 0 if before else 1
        d_sum = data.rating - (before["rating"] if before else 0)
        updated = await bk.mongo.articles.find_one_and_update(
            {"_id": article["_id"]},
            [{"$set": {"rating_sum": {"$add": [{"$ifNull": ["$rating_sum", 0]}, d_sum]},
                       "rating_count": {"$add": [{"$ifNull": ["$rating_count", 0]}, d_count]}}},
             {"$set": {"rating_average": {"$cond": [{"$gt": ["$rating_count", 0]},
                                                    {"$divide": ["$rating_sum", "$rating_count"]}, 0]}}}],
            session=s, return_document=ReturnDocument.AFTER)
        await record_audit(bk, action="rate", user=user, subject_type=SUBJECT, subject_id=article["_id"],
                           changes={"rating": data.rating, "before": before["rating"] if before else None}, session=s)
        return updated

    updated = await bk.transaction(txn)
    await record_usage(bk, kind="article.rate", user=user, subject=article["_id"], rating=data.rating)
    return {"slug": slug, "rating": data.rating, "feedback": data.feedback,
            "rating_average": round(updated["rating_average"], 4), "rating_count": updated["rating_count"]}


async def set_bookmark(bk: Backends, *, slug: str, user: User, on: bool) -> dict:
    """Bookmark (idempotent) or remove the bookmark; the article's bookmark count follows."""
    article = await get_visible(bk, slug=slug, user=user)
    key = {"article_id": article["_id"], "user_id": user.id}

    async def txn(s):
        if on:
            res = await bk.mongo.bookmarks.update_one(
                key, {"$setOnInsert": {"_id": str(uuid.uuid4()), "created_at": utcnow()}}, upsert=True, session=s)
            changed = res.upserted_id is not None
        else:
            changed = (await bk.mongo.bookmarks.delete_one(key, session=s)).deleted_count == 1
        if changed:
            await bk.mongo.articles.update_one({"_id": article["_id"]}, {"$inc": {"bookmark_count": 1 if on else -1}},
                                               session=s)
            await record_audit(bk, action="bookmark" if on else "unbookmark", user=user, subject_type=SUBJECT,
                               subject_id=article["_id"], session=s)
        return changed

    changed = await bk.transaction(txn)
    if changed:
        await record_usage(bk, kind="article.bookmark" if on else "article.unbookmark", user=user,
                           subject=article["_id"])
    return {"slug": slug, "bookmarked": on, "changed": changed}


async def my_bookmarks(bk: Backends, *, user: User, params: Mapping[str, Any]) -> Page:
    """A page of the articles this user bookmarked and may still see."""
    ids = await bk.mongo.bookmarks.distinct("article_id", {"user_id": user.id})
    query = parse_list_params(LIST_SPEC, params, default_size=bk.settings.page_size, max_size=bk.settings.max_page_size)
    query.hint = None  # read by id (one reader's bookmarks), then sorted: not a walk of the whole list's index
    return await fetch_page(bk.mongo.articles, query, base_filter=ARTICLES.visible(user, {"_id": {"$in": ids}}))


async def bookmarked_ids(bk: Backends, *, user: User, article_ids: list[str]) -> set[str]:
    docs = bk.mongo.bookmarks.find({"user_id": user.id, "article_id": {"$in": article_ids}}, {"article_id": 1})
    return {d["article_id"] async for d in docs}
