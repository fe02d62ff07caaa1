"""Deleting an incident (admins), and what refers to it: the one place that knows every collection that
names an incident."""

from __future__ import annotations

from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Conflict
from app.incidents.service import INDEX, get_incident
from app.indexing import outbox
from app.timefmt import utcnow
from app.users.models import Role, User, require_role


async def delete_incident(bk: Backends, *, name: str, user: User) -> None:
    """Delete an incident (admin), audit-logged, gone from the search index through the outbox. What refers
    to it, deliberately: its postmortems are records of their own and its duplicates point at it, so while
    it has either the deletion is refused (409 `INCIDENT_HAS_POSTMORTEMS` / `INCIDENT_HAS_DUPLICATES`:
    delete or undo them first); its recommendations, the recommendations elsewhere that point at it and
    its generation logs go with it; learning patterns and articles drop it from their sources (a
    pattern's `frequency` becomes the number left), the articles re-indexed."""
    require_role(user, Role.ADMIN)
    current = await get_incident(bk, name=name, user=user, projection={"name": 1, "title": 1, "severity": 1})
    inc_id = current["_id"]
    if await bk.mongo.postmortems.find_one({"incident": inc_id}, {"_id": 1}) is not None:
        raise Conflict(f"Incident '{name}' has a postmortem: delete it first", {"incident": name},
                       code="INCIDENT_HAS_POSTMORTEMS")
    if await bk.mongo.incidents.find_one({"duplicate_of": inc_id}, {"_id": 1}) is not None:
        raise Conflict(f"Incidents are closed as duplicates of '{name}': undo them first", {"incident": name},
                       code="INCIDENT_HAS_DUPLICATES")
    articles = [a["_id"] async for a in bk.mongo.articles.find({"related_incidents": inc_id}, {"_id": 1})]

    async def op(s):
        await bk.mongo.incidents.delete_one({"_id": inc_id}, session=s)
        await bk.mongo.recommendations.delete_many({"$or": [{"incident": inc_id}, {"related_incident": inc_id}]},
                                                   session=s)
        await bk.mongo.postmortem_generations.delete_many({"incident": inc_id}, session=s)
        await bk.mongo.learning_patterns.update_many(
            {"source_incidents": inc_id},
            [{"$set": {"source_incidents": {"$filter": {"input": "$source_incidents", "cond": {"$ne": ["$$this", inc_id]}}},
                       "updated_at": utcnow()}},
             {"$set": {"frequency": {"$size": "$source_incidents"}}}], session=s)
        await bk.mongo.articles.update_many({"_id": {"$in": articles}}, {"$pull": {"related_incidents": inc_id}},
                                            session=s)
        for article_id in articles:
            await outbox.record(bk, "articles", article_id, session=s)
        await record_audit(bk, action="delete", user=user, subject_type="incident", subject_id=inc_id, session=s,
                           changes={"name": current["name"], "title": current.get("title"),
                                    "articles_updated": len(articles)})

    await outbox.write(bk, INDEX, inc_id, op)
    for article_id in articles:
        await bk.notify_index("articles", article_id)
