"""MongoDB collections and their indexes. MongoDB is the source of truth for every document."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from app.backends import Backends
from app.listing import SPECS
from app.migrations import migrate

INDEXES: dict[str, list[IndexModel]] = {
    "users": [IndexModel([("username", ASCENDING)], unique=True), IndexModel([("email", ASCENDING)]),
              IndexModel([("sso_provider", ASCENDING), ("sso_subject", ASCENDING)], sparse=True)],  # SSO sign-in
    "tokens": [IndexModel([("key_hash", ASCENDING)], unique=True), IndexModel([("user_id", ASCENDING)])],
    # sign-in sessions (app/users/sessions.py): _id is the key's hash; removed by MongoDB once expired
    "sessions": [IndexModel([("user_id", ASCENDING)]), IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    "counters": [],
    "incidents": [
        IndexModel([("name", ASCENDING)], unique=True),
        IndexModel([("status", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("severity", ASCENDING)]),
        IndexModel([("namespace", ASCENDING)]),
        IndexModel([("affected_services", ASCENDING)]),
        IndexModel([("created_at", DESCENDING)]),
        # the in-process vector index's change feed (app/vectors): written or re-embedded since
        IndexModel([("updated_at", ASCENDING), ("_id", ASCENDING)]),  # and incidents just written (similarity)
        IndexModel([("embedded_at", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("embedding_model", ASCENDING)]),  # the backfill: incidents not embedded by the current model
        IndexModel([("duplicate_of", ASCENDING)], sparse=True),  # an incident's duplicates (re-pointed on a mark)
    ],
    "articles": [
        IndexModel([("slug", ASCENDING)], unique=True),
        IndexModel([("title", ASCENDING)]),  # runbooks named by incidents' RunbookMatch events (recommendations)
        IndexModel([("status", ASCENDING), ("data_classification", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("article_type", ASCENDING)]),
        IndexModel([("category", ASCENDING)]),
        IndexModel([("view_count", DESCENDING)]),
        IndexModel([("next_review_due", ASCENDING)]),
        IndexModel([("author", ASCENDING)]),
        # the articles a postmortem draft cites: linked to its incident, or guides for its services
        IndexModel([("related_incidents", ASCENDING)]),
        IndexModel([("related_services", ASCENDING), ("article_type", ASCENDING)]),
        IndexModel([("embedding_model", ASCENDING)]),  # the embedding backfill
    ],
    "article_ratings": [IndexModel([("article_id", ASCENDING), ("user_id", ASCENDING)], unique=True)],
    "bookmarks": [IndexModel([("user_id", ASCENDING), ("article_id", ASCENDING)], unique=True),
                  IndexModel([("article_id", ASCENDING)])],
    "usage_events": [IndexModel([("kind", ASCENDING), ("at", DESCENDING)]), IndexModel([("subject", ASCENDING)]),
                     IndexModel([("search_id", ASCENDING)], sparse=True)],
    # and, from its list (app/activity/service.py LIST_SPEC): (at, _id) — also the retention job's — and
    # (subject_id | subject_type | action, at, _id); by user here, as its list reads them (`user`: an id, or
    # the username a failed sign-in tried)
    "audit_log": [IndexModel([("subject_type", ASCENDING), ("subject_id", ASCENDING), ("at", DESCENDING)]),
                  IndexModel([("user_id", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)]),
                  IndexModel([("username", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)])],
    "postmortems": [IndexModel([("incident", ASCENDING), ("created_at", DESCENDING)]), IndexModel([("status", ASCENDING), ("created_at", DESCENDING)]),
                    IndexModel([("owner", ASCENDING)]), IndexModel([("due_date", ASCENDING)]),
                    # the KPIs' time to publish (app/kpis): published in a window, by clearance
                    IndexModel([("data_classification", ASCENDING), ("published_at", ASCENDING)]),
                    # published while their article could not be written (few: the sweep finds them at once)
                    IndexModel([("article_pending", ASCENDING)], partialFilterExpression={"article_pending": True},
                               name="article_pending")],
    "postmortem_generations": [
        # one active (PENDING/PROCESSING) generation per incident; one automatic one per incident, ever
        IndexModel([("incident", ASCENDING)], unique=True, partialFilterExpression={"active": True},
                   name="one_active_per_incident"),
        IndexModel([("dedupe_key", ASCENDING)], unique=True, partialFilterExpression={"dedupe_key": {"$exists": True}},
                   name="dedupe_key_once"),
        IndexModel([("incident", ASCENDING), ("created_at", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("updated_at", ASCENDING)]),  # the sweep
    ],
    "recommendations": [
        IndexModel([("incident", ASCENDING), ("recommendation_type", ASCENDING), ("target", ASCENDING)], unique=True,
                   name="one_per_incident_type_target"),
        IndexModel([("recommendation_type", ASCENDING), ("target", ASCENDING), ("effectiveness_rating", ASCENDING)]),
        IndexModel([("incident", ASCENDING), ("confidence_score", DESCENDING), ("_id", ASCENDING)]),
        IndexModel([("rated_at", DESCENDING)], sparse=True),
        IndexModel([("recommendation_type", ASCENDING), ("effectiveness_rating", ASCENDING)]),  # calibration refit
    ],
    "learning_patterns": [
        IndexModel([("confidence_score", DESCENDING), ("_id", ASCENDING)]),
        IndexModel([("pattern_type", ASCENDING), ("confidence_score", DESCENDING), ("_id", ASCENDING)]),
        IndexModel([("is_validated", ASCENDING), ("confidence_score", DESCENDING), ("_id", ASCENDING)]),
        IndexModel([("source_incidents", ASCENDING)]),
        IndexModel([("data_classification", ASCENDING), ("created_at", DESCENDING)]),
    ],
    "pattern_mining_runs": [
        # one running (PENDING/RUNNING) mining run at a time (app/patterns/run_records.py)
        IndexModel([("active", ASCENDING)], unique=True, partialFilterExpression={"active": True},
                   name="one_active_run"),
    ],
    "index_builds": [IndexModel([("index", ASCENDING)])],
    # outbound webhooks (app/webhooks/): the subscribers of an event; one webhook's delivery log, newest first,
    # for any clearance (DELIVERY_SPEC led by webhook_id); the deliveries due (active only); finished ones
    # removed once past their retention; the action items already announced overdue, kept 90 days
    "webhooks": [IndexModel([("events", ASCENDING), ("active", ASCENDING)])],
    "webhook_deliveries": [
        IndexModel([("webhook_id", ASCENDING), ("data_classification", ASCENDING), ("created_at", ASCENDING),
                    ("_id", ASCENDING)]),
        IndexModel([("next_attempt_at", ASCENDING)], partialFilterExpression={"active": True}, name="active_due"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)],
    "webhook_announcements": [IndexModel([("at", ASCENDING)], expireAfterSeconds=90 * 86400)],
    "outbox": [
        IndexModel([("index", ASCENDING), ("doc_id", ASCENDING)], unique=True),
        IndexModel([("next_attempt_at", ASCENDING)]),
        # /metrics: each kind's backlog and oldest entry, read from this index's keys alone
        IndexModel([("index", ASCENDING), ("created_at", ASCENDING)]),
    ],
}


def list_indexes() -> dict[str, list[IndexModel]]:
    """The indexes of every declared list (`ListSpec.indexes`: each ordering, for every clearance), those
    a declared index already has the keys of left out."""
    out: dict[str, list[IndexModel]] = {}
    for spec in SPECS:
        declared = (*INDEXES.get(spec.collection, ()), *out.get(spec.collection, ()))
        have = [list(m.document["key"].items()) for m in declared]
        for keys in spec.indexes():
            if keys not in have:
                out.setdefault(spec.collection, []).append(IndexModel(keys))
                have.append(keys)
    return out


async def ensure_indexes(bk: Backends) -> None:
    """The stored documents brought to this version (app/migrations.py: a renamed field's old index goes
    first), then every declared index."""
    await migrate(bk)
    lists = list_indexes()
    for name in {*INDEXES, *lists}:
        if models := [*INDEXES.get(name, ()), *lists.get(name, ())]:
            await bk.mongo[name].create_indexes(models)
