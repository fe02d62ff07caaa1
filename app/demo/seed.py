"""Writing the demo data through the services, each collection only when it is empty: incidents, then
the users and articles, then what the demo's people did (activity.py)."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any, Callable, Iterable

from pymongo import UpdateOne

from app.articles import service as articles
from app.articles.models import ArticleCreate, RateInput
from app.backends import Backends
from app.demo import activity, writing
from app.demo.build import build
from app.demo.spec import IMPORTER, USERS, DemoData
from app.errors import NotFound, PermissionDenied
from app.incidents import service as incidents
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import User, UserCreate

log = logging.getLogger(__name__)
Progress = Callable[[int], None] | None
LOOK_BACK = 14  # days: how far back `demo_data` looks for the day the stored demo incidents were built for


async def ensure_users(bk: Backends, people: Iterable[UserCreate] = USERS) -> dict[str, User]:
    """The demo users by username, created when missing (existing ones are left as they are)."""
    return {p.username: await users.ensure_user(bk, data=p) for p in people}


def _scaled(progress: Progress, total: int, units: int) -> Callable[[int], None]:
    """Progress in `units` (the caller's bar counts dataset rows) for `total` steps."""
    def report(done: int) -> None:
        if progress:
            progress(min(units, round(done * units / max(total, 1))))
    return report


async def demo_data(bk: Backends, rows: list[dict[str, Any]], today: date | None = None) -> DemoData:
    """The demo data for `today` (default: the day the demo incidents already stored were built for, found
    among the last LOOK_BACK days, else today's date), so that articles and people's work seeded after
    the incidents (even on another day) name the incidents as they were created."""
    if today is not None:
        return build(rows, today=today)
    now = utcnow().date()
    stored = {d["name"] async for d in bk.mongo.incidents.find({"name": {"$regex": "^INC-"}}, {"name": 1})}
    for back in range(LOOK_BACK if stored else 0):
        data = build(rows, today=now - timedelta(days=back))
        if all(i.name in stored for i in data.incidents):
            return data
    return build(rows, today=now)


async def seed_incidents(bk: Backends, *, user: User, rows: Iterable[dict[str, Any]],
                         progress: Progress = None, today: date | None = None) -> int:
    """Create the demo incidents unless any incident exists; returns how many were created. Their dates
    end in the seven days before `today` (default: today's date, UTC)."""
    if await bk.mongo.incidents.estimated_document_count() > 0:
        return 0
    rows = list(rows)
    data = build(rows, today=today or utcnow().date())
    report = _scaled(progress, len(data.incidents), len(rows))
    for n, inc in enumerate(data.incidents, 1):  # oldest first: a canonical exists before its duplicates
        await incidents.create_incident(bk, data=inc, user=user, duplicate_of=data.duplicates.get(inc.name or ""))
        report(n)
    return len(data.incidents)


async def seed_articles(bk: Backends, *, user: User, rows: Iterable[dict[str, Any]],
                        progress: Progress = None, today: date | None = None, revised: bool = False) -> int:
    """Create the demo users (when missing) and articles unless any article exists, then their
    views, ratings and bookmarks; returns how many articles were created. `user` writes what the
    importer writes; runbooks and guides are written by the demo editors, as they were before the
    responders' history (`seed_activity` revises them meanwhile) or, `revised`, as it left them (every
    revision applied: for tools that seed the knowledge base without the people's work, the benchmarks)."""
    if await bk.mongo.articles.estimated_document_count() > 0:
        return 0
    rows = list(rows)
    data = await demo_data(bk, rows, today)
    people = await ensure_users(bk, data.users)
    people[IMPORTER.username] = people[user.username] = user
    names = sorted({n for a in data.every_article() for n in a.related})
    ids = {d["name"]: d["_id"] async for d in bk.mongo.incidents.find({"name": {"$in": names}}, {"name": 1})}
    report = _scaled(progress, len(data.articles), len(rows))
    slugs: dict[str, str] = {}   # key -> the slug the service gave the article
    for n, a in enumerate(data.articles, 1):
        doc = await articles.create_article(bk, data=ArticleCreate.model_validate(
            writing.fields(a, slugs=slugs, people=people, ids=ids)), user=people[a.author])
        slugs[a.key] = doc["slug"]
        report(n)
    # Views are an imported baseline (the counter is not in the search index); usage events start empty.
    views = [UpdateOne({"slug": slugs[a.key]}, {"$set": {"view_count": a.views}}) for a in data.articles if a.views]
    if views:
        await bk.mongo.articles.bulk_write(views, ordered=False)
    for a in data.articles:
        slug = slugs[a.key]
        try:
            for username, stars in a.ratings.items():
                await articles.rate_article(bk, slug=slug, user=people[username], data=RateInput(rating=stars))
            for username in a.bookmarks:
                await articles.set_bookmark(bk, slug=slug, user=people[username], on=True)
        except (NotFound, PermissionDenied) as exc:  # the visibility rules changed under the demo
            log.warning("demo engagement skipped", extra={"slug": slug, "error": str(exc)})
    for revision in data.revisions if revised else []:
        await activity.revise_guides(bk, revision.articles, data=data, people=people, ids=ids)
    return len(data.articles)


async def seed_activity(bk: Backends, *, user: User, rows: Iterable[dict[str, Any]],
                        today: date | None = None) -> dict[str, int]:
    """What the demo's people did (app/demo/activity.py): learning patterns, postmortems with their
    generation logs, recommendations with ratings and applications, each only while its collection is
    empty; how many of each were created. Seed the incidents and articles first."""
    data = await demo_data(bk, list(rows), today)
    people = await ensure_users(bk, data.users)
    people[IMPORTER.username] = people[user.username] = user
    return await activity.seed_activity(bk, data=data, people=people)


async def seed(bk: Backends, *, user: User, rows: Iterable[dict[str, Any]], progress: Progress = None,
               today: date | None = None) -> dict[str, int]:
    """Everything, in order: incidents, users and articles, then the people's work. How many of each
    were created (0: the collection held data already)."""
    rows = list(rows)
    today = today or utcnow().date()
    counts = {"incidents": await seed_incidents(bk, user=user, rows=rows, progress=progress, today=today),
              "articles": await seed_articles(bk, user=user, rows=rows, progress=progress, today=today)}
    return counts | await seed_activity(bk, user=user, rows=rows, today=today)
