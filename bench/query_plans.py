"""MongoDB plans of the postmortem, recommendation and embedding queries at 100k documents per collection.

    .venv/bin/python bench/query_plans.py [--docs 100000]

Starts its own local stack, creates the service's indexes (app/db.py), fills postmortem_generations,
postmortems, articles, recommendations and incidents with `--docs` documents each (spread over 20k
incidents, every status and classification), then prints for each query the service runs the winning
plan's stages, keys and documents examined, and the time — a COLLSCAN or far more documents examined
than returned is a missing index.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from datetime import timedelta

from harness import local_stack  # noqa: I001 - puts the project on sys.path

LEVELS = ["PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED"]


def stages(plan: dict) -> list[str]:
    out, node = [], plan
    while node:
        out.append(node["stage"] + (f"({','.join(node['keyPattern'])})" if "keyPattern" in node else ""))
        node = node.get("inputStage") or (node.get("inputStages") or [None])[0]
    return out


async def run(n: int) -> None:
    from app.backends import connect
    from app.db import ensure_indexes
    from app.settings import get_settings
    from app.timefmt import utcnow

    bk = connect(get_settings(), jobs=True)
    await ensure_indexes(bk)
    rnd = random.Random(7)
    now = utcnow()
    incidents = [f"inc-{i}" for i in range(n // 5)]
    statuses = ["PENDING", "PROCESSING", "COMPLETED", "FAILED", "REVIEW_REQUIRED"]
    gens, pms, arts = [], [], []
    for i in range(n):
        status = rnd.choices(statuses, weights=[1, 1, 90, 4, 4])[0]
        gens.append({"_id": f"g{i}", "incident": incidents[i % len(incidents)], "status": status,
                     "generation_trigger": rnd.choice(["manual", "incident_resolved", "command"]),
                     "data_classification": rnd.choice(LEVELS), "created_at": now - timedelta(seconds=i),
                     "updated_at": now - timedelta(seconds=i), "started_at": now - timedelta(seconds=i),
                     "processing_time": rnd.random(), "leased_until": now - timedelta(seconds=i)
                     if status == "PROCESSING" else None, **({"active": True} if status in ("PENDING", "PROCESSING")
                                                              and i < len(incidents) else {})})
        pms.append({"_id": f"p{i}", "incident": incidents[i % len(incidents)], "status": rnd.choice(
            ["DRAFT", "IN_REVIEW", "APPROVED", "PUBLISHED", "ARCHIVED"]), "data_classification": rnd.choice(LEVELS),
            "created_at": now - timedelta(seconds=i), "published_at": now - timedelta(seconds=i),
            **({"article_pending": True} if i % 1000 == 0 else {})})
        arts.append({"_id": f"a{i}", "slug": f"a-{i}", "status": "PUBLISHED", "data_classification": rnd.choice(LEVELS),
                     "article_type": rnd.choice(["RUNBOOK", "TROUBLESHOOTING", "BEST_PRACTICE", "POSTMORTEM_SUMMARY"]),
                     "related_services": [f"svc-{rnd.randrange(2000)}"], "view_count": rnd.randrange(1000),
                     "related_incidents": [incidents[rnd.randrange(len(incidents))]] if i % 3 == 0 else []})
    recs, incs = [], []
    types = ["SIMILAR_INCIDENT", "SOLUTION", "KNOWLEDGE_ARTICLE", "EXPERT"]
    for i in range(n):
        recs.append({"_id": f"r{i}", "incident": incidents[i % len(incidents)], "recommendation_type": types[i % 4],
                     "target": f"t{i}", "confidence_score": rnd.random(),
                     "similarity_score": rnd.random(), "confidence_level": "MEDIUM", "is_applied": i % 50 == 0,
                     "effectiveness_rating": rnd.randint(1, 5) if i % 20 == 0 else None,
                     "data_classification": rnd.choice(LEVELS), "created_at": now - timedelta(seconds=i),
                     **({"rated_at": now - timedelta(seconds=i)} if i % 20 == 0 else {})})
        incs.append({"_id": f"i{i}", "name": f"INC-{i}", "data_classification": rnd.choice(LEVELS),
                     "updated_at": now - timedelta(seconds=i), "created_at": now - timedelta(seconds=i),
                     "embedding_model": "m1" if i % 100 else "old", "embedded_at": now - timedelta(seconds=i)})
    for name, docs in (("postmortem_generations", gens), ("postmortems", pms), ("articles", arts),
                       ("recommendations", recs), ("incidents", incs)):
        for k in range(0, n, 10_000):
            await bk.mongo[name].insert_many(docs[k:k + 10_000], ordered=False)
    visible = {"data_classification": {"$in": LEVELS[:2]}}
    probe = incidents[123]
    queries = [
        ("generations list: incident filter, -created_at", "postmortem_generations",
         {"$and": [visible, {"incident": probe}]}, [("created_at", -1), ("_id", 1)], 20),
        ("generations list: status=FAILED, -created_at", "postmortem_generations",
         {"$and": [visible, {"status": "FAILED"}]}, [("created_at", -1), ("_id", 1)], 20),
        ("generations list: ordering -processing_time", "postmortem_generations", visible,
         [("processing_time", -1), ("_id", 1)], 20),
        ("sweep: stale PENDING or expired lease", "postmortem_generations",
         {"$or": [{"status": "PENDING", "updated_at": {"$lte": now - timedelta(seconds=10)}},
                  {"status": "PROCESSING", "leased_until": {"$lte": now}}]}, None, 100),
        ("active generation of an incident", "postmortem_generations", {"incident": probe, "active": True}, None, 1),
        ("postmortem of an incident (latest)", "postmortems", {"incident": probe}, [("created_at", -1)], 1),
        ("postmortems of similar incidents", "postmortems",
         {"incident": {"$in": incidents[:5]}, **visible}, [("created_at", -1)], 5),
        ("published postmortems with their article pending", "postmortems",
         {"status": "PUBLISHED", "article_pending": True, "published_at": {"$lte": now}}, None, 50),
        ("articles matching an incident", "articles",
         {**visible, "status": "PUBLISHED", "$or": [{"related_incidents": probe},
                                                    {"related_services": {"$in": ["svc-7", "svc-8"]},
                                                     "article_type": {"$in": ["RUNBOOK", "TROUBLESHOOTING"]}}]},
         [("view_count", -1), ("_id", 1)], 5),
        ("recommendations list: incident, most confident first", "recommendations",
         {"$and": [visible, {"incident": probe}]}, [("confidence_score", -1), ("_id", 1)], 20),
        ("recommendations list: all, most confident first", "recommendations", visible,
         [("confidence_score", -1), ("_id", 1)], 20),
        ("recommendations list: newest first", "recommendations", visible, [("created_at", -1), ("_id", 1)], 20),
        ("feedback: ratings of some targets", "recommendations",
         {"recommendation_type": "KNOWLEDGE_ARTICLE", "target": {"$in": ["t1", "t2", "t3"]},
          "effectiveness_rating": {"$ne": None}}, None, 100),
        ("settled recommendations of an incident", "recommendations",
         {"incident": probe, "$or": [{"is_applied": True}, {"effectiveness_rating": {"$ne": None}}]}, None, 100),
        ("calibration refit: rated of one type", "recommendations",
         {"recommendation_type": "SOLUTION", "effectiveness_rating": {"$in": [1, 2, 4, 5]}}, None, 10_000),
        ("vector index change feed", "incidents",
         {"$or": [{"updated_at": {"$gte": now - timedelta(seconds=30)}},
                  {"embedded_at": {"$gte": now - timedelta(seconds=30)}}]}, None, 1000),
        ("embedding backfill", "incidents", {"embedding_model": {"$ne": "m1"}}, None, 64),
    ]
    print(f"{n} documents in each of postmortem_generations, postmortems, articles, recommendations, incidents")
    for label, coll, flt, sort, limit in queries:
        cursor = bk.mongo[coll].find(flt)
        if sort:
            cursor = cursor.sort(sort)
        plan = await cursor.limit(limit).explain()
        ex = plan["executionStats"]
        print(f"- {label}: {' <- '.join(stages(plan['queryPlanner']['winningPlan']))}; returned {ex['nReturned']}, "
              f"keys {ex['totalKeysExamined']}, docs {ex['totalDocsExamined']}, {ex['executionTimeMillis']} ms")
    await bk.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    args = parser.parse_args()
    with local_stack("ikl_bench_explain"):
        asyncio.run(run(args.docs))


if __name__ == "__main__":
    main()
