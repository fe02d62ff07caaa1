"""Benchmark: the cost of the KPIs (app/kpis/service.py) at 100k incidents.

    .venv/bin/python bench/kpis_bench.py [--incidents 100000] [--runs 5]

Own local stack (bench/harness.py). Written straight to MongoDB (insert_many, the service's indexes built
first): `--incidents` incidents detected over the last 52 weeks (classification 40 % PUBLIC, 40 % INTERNAL,
15 % CONFIDENTIAL, 5 % RESTRICTED; 10 namespaces; each with a first timeline event before its detection, and
90 % resolved), a postmortem for one incident in five (three action items each; half published), a
recommendation for every second incident (a third applied, a tenth rated), and two knowledge-base usage
events per incident. Then `kpis()` is timed (`fresh`: its one-minute cache bypassed) for an admin (RESTRICTED: sees everything) and a viewer (INTERNAL)
over 12 and 52 weeks, whole and cut to one namespace: p50 and max over `--runs` runs, and which index each
aggregation's first stage used (`explain`).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import timedelta

from harness import local_stack  # noqa: E402 - puts the project on sys.path

LEVELS = ["PUBLIC"] * 8 + ["INTERNAL"] * 8 + ["CONFIDENTIAL"] * 3 + ["RESTRICTED"]
SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "MEDIUM", "LOW"]


async def fill(bk, n: int, rng: random.Random) -> None:
    from app.timefmt import utcnow

    now = utcnow()
    batch_i, batch_p, batch_r, batch_u = [], [], [], []
    t = time.perf_counter()
    for i in range(n):
        detected = now - timedelta(seconds=rng.uniform(0, 52 * 7 * 86400))
        level = rng.choice(LEVELS)
        resolved = detected + timedelta(minutes=rng.expovariate(1 / 180)) if rng.random() < 0.9 else None
        inc_id = str(uuid.uuid4())
        batch_i.append({"_id": inc_id, "name": f"INC-B-{i:07d}", "title": f"bench incident {i}",
                        "namespace": f"ns{i % 10}", "severity": rng.choice(SEVERITIES),
                        "status": "RESOLVED" if resolved else "OPEN", "data_classification": level,
                        "affected_teams": [f"team{i % 7}"], "detected_at": detected, "resolved_at": resolved,
                        "created_at": detected, "updated_at": resolved or detected, "category": "Database",
                        "timeline": [{"timestamp": detected - timedelta(minutes=rng.uniform(1, 30)),
                                      "type": "Detection", "source": "bench", "message": "alert"}]})
        if i % 5 == 0:
            created = detected + timedelta(hours=2)
            published = created + timedelta(days=rng.uniform(1, 10)) if rng.random() < 0.5 else None
            batch_p.append({"_id": str(uuid.uuid4()), "incident": inc_id, "title": f"pm {i}", "data_classification": level,
                            "status": "PUBLISHED" if published else "DRAFT", "created_at": created,
                            "due_date": created + timedelta(days=7), "published_at": published,
                            "affected_teams": [f"team{i % 7}"],
                            "action_items": [{"id": str(j), "title": "fix", "status": rng.choice(["OPEN", "DONE"]),
                                              "due_date": created + timedelta(days=14)} for j in range(3)]})
        if i % 2 == 0:
            applied = rng.random() < 0.33
            batch_r.append({"_id": str(uuid.uuid4()), "incident": inc_id, "recommendation_type": "SOLUTION",
                            "target": str(i), "data_classification": level, "created_at": detected,
                            "is_applied": applied, "effectiveness_rating": 4 if rng.random() < 0.1 else None,
                            "rated_at": detected if rng.random() < 0.1 else None})
        for kind in ("article.view", "article.search"):
            batch_u.append({"_id": str(uuid.uuid4()), "kind": kind, "user_id": f"u{i % 50}", "clearance": level,
                            "role": "viewer", "at": detected, "result_count": rng.choice([0, 3, 5])})
        if len(batch_i) >= 5000 or i == n - 1:
            for coll, docs in ((bk.mongo.incidents, batch_i), (bk.mongo.postmortems, batch_p),
                               (bk.mongo.recommendations, batch_r), (bk.mongo.usage_events, batch_u)):
                if docs:
                    await coll.insert_many(docs, ordered=False)
                docs.clear()
    print(f"wrote {n} incidents, {n // 5} postmortems, {n // 2} recommendations, {2 * n} usage events "
          f"in {time.perf_counter() - t:.1f} s")


async def first_stage_index(bk, collection, match) -> str:
    plan = await bk.mongo.command("explain", {"aggregate": collection, "pipeline": [{"$match": match},
                                                                                    {"$count": "n"}],
                                              "cursor": {}}, verbosity="queryPlanner")
    def winning(node):
        if isinstance(node, dict):
            if "winningPlan" in node:
                return node["winningPlan"]
            for value in node.values():
                if (found := winning(value)) is not None:
                    return found
        if isinstance(node, list):
            for value in node:
                if (found := winning(value)) is not None:
                    return found
        return None

    text = str(winning(plan))
    names = [p.split("'")[0] for p in text.split("'indexName': '")[1:]]
    return ", ".join(sorted(set(names))) or ("COLLSCAN" if "COLLSCAN" in text else "?")


async def run(args) -> None:
    from app.backends import connect
    from app.classification import mongo_filter
    from app.kpis import service
    from app.main import prepare
    from app.settings import get_settings
    from app.users.models import Classification, Role, User

    bk = connect(get_settings(), jobs=True)
    try:
        await prepare(bk)
        await fill(bk, args.incidents, random.Random(7))
        admin = User(id="a", username="admin", role=Role.ADMIN, clearance=Classification.RESTRICTED)
        viewer = User(id="v", username="viewer", role=Role.VIEWER, clearance=Classification.INTERNAL)
        w = service.Window(weeks=12, team=None, namespace=None)
        for coll, field in (("incidents", "detected_at"), ("incidents", "resolved_at"), ("postmortems", "due_date"),
                            ("postmortems", "published_at"), ("postmortems", "created_at"),
                            ("recommendations", "created_at"), ("recommendations", "rated_at")):
            idx = await first_stage_index(bk, coll, {**mongo_filter(viewer), field: w.range()})
            print(f"  {coll}.{field} window (viewer): {idx}")
        print(f"  usage_events window: {await first_stage_index(bk, 'usage_events', {'kind': {'$in': ['article.view', 'article.search']}, 'at': w.range()})}")
        print(f"\nkpis() at {args.incidents} incidents, {args.runs} runs each (in-process, one request at a time):")
        for who, user in (("admin (sees all)", admin), ("viewer (INTERNAL)", viewer)):
            for weeks, ns in ((12, None), (52, None), (12, "ns3")):
                ms = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    out = await service.kpis(bk, user=user, weeks=weeks, namespace=ns, fresh=True)
                    ms.append((time.perf_counter() - t) * 1000)
                print(f"  {who:<18} weeks {weeks:>2} {('namespace ' + ns) if ns else 'everything':<13} "
                      f"p50 {statistics.median(ms):7.0f} ms  max {max(ms):7.0f} ms   "
                      f"({out['overall']['incidents']} incidents counted)")
    finally:
        await bk.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with local_stack("ikl_bench_kpis"):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
