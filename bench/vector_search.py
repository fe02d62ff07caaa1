"""Benchmark: the in-process vector index (app/vectors) at 100k random normalised 384-d vectors.

    PYTHONPATH=. .venv/bin/python bench/vector_search.py [--rows 100000] [--queries 300] [--no-mongo]

Prints build time, memory (array bytes and the process's RSS growth), search p50/p99 at k=10 with
and without filters, and refresh times against a real MongoDB holding `rows` embedded incidents
(its own local stack in a temporary folder): the first full load, a refresh with no change, one
with 100 changed documents, and one with the id reconciliation.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np

from harness import local_stack  # noqa: I001 - puts the project on sys.path

from app.vectors import REQUIRED_INDEXES, VectorIndex  # noqa: E402

DIM = 384
CLASSES = ["PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED"]
NAMESPACES = [f"ns-{i}" for i in range(20)]
STATUSES = ["OPEN", "INVESTIGATING", "MITIGATED", "RESOLVED", "CLOSED"]
CATEGORIES = [f"cat-{i}" for i in range(12)]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def to_bytes(vector) -> bytes:
    """As stored in MongoDB: float32 little-endian."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, DIM), dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def fmt_ms(values: list[float]) -> str:
    return f"p50 {pct(values, 50) * 1000:7.2f} ms   p99 {pct(values, 99) * 1000:7.2f} ms"


def meta(rng: np.random.Generator, n: int) -> dict[str, list]:
    return {"classification": [CLASSES[i] for i in rng.integers(0, 4, n)],
            "namespace": [NAMESPACES[i] for i in rng.integers(0, len(NAMESPACES), n)],
            "status": [STATUSES[i] for i in rng.integers(0, len(STATUSES), n)],
            "category": [CATEGORIES[i] for i in rng.integers(0, len(CATEGORIES), n)]}


def in_memory(rows: int, queries: int) -> None:
    rng = np.random.default_rng(0)
    vecs = unit(rng, rows)
    ids = [str(uuid.uuid4()) for _ in range(rows)]
    m = meta(rng, rows)
    base_rss = rss_bytes()
    t0 = time.perf_counter()
    idx = VectorIndex()
    for i in range(rows):
        idx.upsert(ids[i], vecs[i], classification=m["classification"][i], namespace=m["namespace"][i],
                   status=m["status"][i], category=m["category"][i])
    build = time.perf_counter() - t0
    grown = rss_bytes() - base_rss
    matrix = rows * DIM * 4
    print(f"rows {rows}, dim {DIM}")
    print(f"build (one upsert per row)  {build:7.2f} s   ({build / rows * 1e6:.1f} us/row)")
    print(f"matrix (used rows)          {matrix / 1e6:7.1f} MB")
    print(f"arrays allocated (capacity {idx.capacity}) {idx.nbytes() / 1e6:7.1f} MB")
    print(f"process RSS growth          {grown / 1e6:7.1f} MB   (matrix + metadata + ids/dict;"
          f" overhead beyond the matrix {(grown - matrix) / rows:.0f} B/row)")

    qs = unit(rng, queries)
    excluded = ids[:100]
    cases = {
        "no filter (max_rank=3)": {"max_rank": 3},
        "clearance INTERNAL (~50%)": {"max_rank": 1},
        "namespace (~5%)": {"max_rank": 3, "namespace": "ns-3"},
        "rank+namespace+2 statuses+exclude": {"max_rank": 2, "namespace": "ns-3", "statuses": ["RESOLVED", "CLOSED"],
                                              "exclude_ids": excluded},
        "status+category (~1.7%)": {"max_rank": 3, "statuses": ["RESOLVED"], "categories": ["cat-1"]},
    }
    for _ in range(5):
        idx.search(qs[0], 10, max_rank=3)
    for name, f in cases.items():
        times = []
        for q in qs:
            t = time.perf_counter()
            idx.search(q, 10, **f)
            times.append(time.perf_counter() - t)
        print(f"search k=10 {name:36s} {fmt_ms(times)}")
    t = time.perf_counter()
    brute = np.argsort(-(vecs @ qs[0]), kind="stable")[:10]
    print(f"(reference: full argsort brute force, one query {(time.perf_counter() - t) * 1000:.1f} ms;"
          f" same top-10: {[ids[i] for i in brute] == [d for d, _ in idx.search(qs[0], 10, max_rank=3)]})")


async def with_mongo(rows: int) -> None:
    from app.backends import connect
    from app.settings import get_settings

    get_settings.cache_clear()
    bk = connect(get_settings(), jobs=True)
    coll = bk.mongo["incidents"]
    await coll.create_indexes(REQUIRED_INDEXES)
    rng = np.random.default_rng(1)
    past = datetime.now(timezone.utc) - timedelta(days=3)
    t0 = time.perf_counter()
    batch = 2000
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        vecs = unit(rng, n)
        m = meta(rng, n)
        await coll.insert_many([{
            "_id": str(uuid.uuid4()), "name": f"INC-{start + i}", "title": f"incident {start + i}",
            "data_classification": m["classification"][i], "namespace": m["namespace"][i], "status": m["status"][i],
            "category": m["category"][i], "severity": "SEV3", "affected_services": ["api", "db"],
            "created_at": past, "updated_at": past, "embedding": to_bytes(vecs[i]),
            "embedding_model": "all-MiniLM-L6-v2", "embedded_at": past} for i in range(n)], ordered=False)
    print(f"\nMongoDB: inserted {rows} embedded incidents in {time.perf_counter() - t0:.1f} s")

    idx = VectorIndex("incidents", model="all-MiniLM-L6-v2", reconcile_every=0, full_every=0)
    stats = await idx.refresh(bk)
    print(f"refresh, full load             {stats['seconds']:7.3f} s   rows {stats['rows']}")
    times = []
    for _ in range(20):
        stats = await idx.refresh(bk)
        assert stats["kind"] == "incremental" and stats["queries"] == 1 and stats["upserted"] == 0
        times.append(stats["seconds"])
    print(f"refresh, no change (1 query)   {fmt_ms(times)}")
    changed = [d["_id"] async for d in coll.find({}, {"_id": 1}).limit(100)]
    now = datetime.now(timezone.utc)
    await coll.update_many({"_id": {"$in": changed}}, {"$set": {"status": "CLOSED", "updated_at": now}})
    stats = await idx.refresh(bk)
    print(f"refresh, 100 changed docs      {stats['seconds'] * 1000:7.2f} ms   upserted {stats['upserted']}")
    await coll.delete_many({"_id": {"$in": changed[:10]}})
    idx.reconcile_every = idx.refreshes + 1
    stats = await idx.refresh(bk)
    print(f"refresh + id reconciliation    {stats['seconds'] * 1000:7.2f} ms   removed {stats['removed']}"
          f" (the 100 changed docs re-read within the lag: upserted {stats['upserted']})")
    await bk.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--no-mongo", action="store_true")
    args = ap.parse_args()
    in_memory(args.rows, args.queries)
    if not args.no_mongo:
        with local_stack("ikl_bench_vectors"):
            asyncio.run(with_mongo(args.rows))


if __name__ == "__main__":
    main()
