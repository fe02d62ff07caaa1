"""Benchmark: does the similar-incident ranking find incidents with the same ROOT CAUSE, and how should
its weights and the recommendation confidence be set?

    .venv/bin/python bench/similarity_quality.py [--synthetic 10000] [--seed 7]

Own local stack (bench/harness.py). The 200 dataset rows are seeded through the incidents service
exactly as the demo does (`app.demo.seed_incidents`), the outbox is flushed (search index) and every
incident embedded (`app.incidents.embeddings.backfill` until it returns 0).

Relevance (by root cause, transparent and hand-checkable): each row's root cause (the dataset's
`root_cause`, completed where the dataset cut it, `app.demo.facts.read`) gets zero or more cause
classes by keyword rules (`CLASSES` below, printed with their sizes). grade 2 = the two incidents
share a cause class; grade 1 = only the same `category`; 0 otherwise. A query whose own root cause
matches no class cannot have a grade-2 neighbour and is left out of the quality figures. Rows that
cite the same public postmortem ("twins", the demo closes the later one as a duplicate) are the
same incident: like the query's own record they are left out of its results and of its ideal list.

Query = what an incident knows early (`early_query`): its own stored document with
- root_cause, resolution and description blanked (the description is the postmortem's narrative,
  root-cause sentence included);
- the title rebuilt: the demo's title is "Company: <root cause>", so it becomes
  "Company: <detection message>" (the symptom, as a responder would type it);
- tags reduced to the category (the demo's tags carry a root-cause topic and the subcategory);
- the timeline cut before the first event that comes with knowing the cause: the "Root cause: ..."
  analysis, the runbook match (chosen by cause topic), an approval, a mitigation, a resolution or the
  duplicate comment; at most FIRST_EVENTS events; any event quoting the root-cause sentence dropped;
- severity, category, namespace, affected services kept (known at triage).
The query keeps its `_id`, so `similar` excludes its own record.

Rankings (top 10): (a) text + structure, `similar(semantic=False)` (what ships without the model);
(b) the text factor alone (engine relevance: more_like_this); (c) the semantic factor
alone (cosine of all-MiniLM-L6-v2 vectors); (d) the hybrid as shipped. (b)-(d) re-sort the candidate
pool of one `similar(semantic=True)` call (text top-50 ∪ vector top-50), which holds the exact top-10
of each. Metrics: share of grade 2 in the top 5, nDCG@10 (gain 2^grade - 1, ideal over the whole
corpus), MRR (first grade-2 hit within 10); the random baseline is computed exactly / by shuffling.
Then a weight grid (step 0.05 on the simplex) with leave-one-out and 2-fold selection, a logistic
calibration of `engine.similar_incident` confidence (2-fold), and `similar` latency at 200 incidents
and with `--synthetic` extra incidents (copies of real ones, vectors perturbed) inserted into MongoDB
and indexed through the outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import re
import statistics
import time
import uuid
from collections import Counter
from typing import Any

import numpy as np
from harness import local_stack

K = 10
TOP = 5
FIRST_EVENTS = 5
GRID_STEP = 0.05
ECE_BINS = 10

# (key, label, pattern over the root-cause sentence, case-insensitive). An incident gets every class
# whose pattern matches; two incidents are about the same cause (grade 2) when they share a class.
CLASSES = [
    ("change", "configuration change / deploy / upgrade / migration",
     r"config|deploy|roll(?:ed|ing)? ?out|upgrad|\bupdates?\b|release|\bpatch\b|migrat|"
     r"feature (?:enabled|globally|for)|enabling|polic(?:y|ies) change|prefix-list|breaking change|"
     r"\bchanges? (?:to|in)\b|software change|re-enabled"),
    ("capacity", "capacity / load / resource exhaustion",
     r"capacity|overload|overwhelm|exhaust|\bload\b|spike|surge|influx|throttl|"
     r"queues? (?:filling|to build|overflow)|thundering herd|retry storm|backoff|growth|saturat|"
     r"out of memory|memory leak|ran out|threads|quota|resources|reconnect|peak|autoscal|scaling|"
     r"too much data|concurrent users|hot spots|workload scheduling|high workload"),
    ("time", "certificate / expiry / time and dates",
     r"certificat|expir|leap second|clock|date arithmetic|feb 29|time flow|timestamps|fixed-term"),
    ("network", "network / BGP / DNS / routing / partition",
     r"\bbgp\b|\broutes?\b|routing|\bdns\b|peering|backbone|router|network|packet loss|fiber|leased line|"
     r"latency|partition|gateway|load balancer|\belb\b|reachability|islanding"),
    ("db-internals", "database internals: locks, replication / failover, id limits, schema",
     r"\block|deadlock|wraparound|replica|replication|failover|fail over|resync|primary key|integer|"
     r"foreign key|schema|index creation|vacuum|transaction id|shard"),
    ("dependency", "dependency / third party / cloud provider",
     r"third.party|upstream|vendor|provider|dependenc|library|breaking change|\bapt\b|\baws\b(?! spend)|"
     r"azure|cloud platform|\bgcp\b|\bnpm\b|maven|docker hub|availability zone|\bebs\b|adjacent service"),
    ("bug", "software bug / regression / data corruption",
     r"\bbug|regression|null pointer|race hazard|double free|parser|corrupt|overflow|priority inversion|"
     r"out-of-bounds|code path|panic|regular expression|regex|backtracking|mutex|units of measurement|"
     r"design flaw|\bc code|poison pill|data type|latent|idempotency"),
    ("human", "human error / manual operation / mistyped command",
     r"human error|typo|accident|inadvertent|manual|operator|mistak|wrong directory|wrong filesystem|"
     r"developing on production|administrator|\badmin\b|forgot|confusion|drop command|\bcommand\b"),
    ("hardware", "power / hardware / data-centre facilities",
     r"power (?:outage|failure|grid)|cooling|heatwave|hardware|\bdisk|\bfire\b|fiber|radar|leased line|3par"),
    ("security", "security breach / credentials / attack / data exposure",
     r"token|credential|password|attack|malware|malicious|compromis|unauthori[sz]ed|hacker|hacks|\bstol|"
     r"steal|ddos|shellshock|intrusion|exposure|secret keys|vulnerab|impersonat|cookie|gained access|"
     r"leak of users|private information|user data"),
]
_CLASS_RES = [(key, re.compile(p, re.IGNORECASE)) for key, _, p in CLASSES]
# timeline events that come with knowing the cause or the fix: the query stops before the first one
_LATE_TYPES = {"RunbookMatch", "ApprovalRequired", "Mitigation", "Resolution", "Comment"}


# --- relevance -----------------------------------------------------------------------------------

class Relevance:
    def __init__(self, rows: list[dict]) -> None:
        from app.demo.facts import read_all

        facts = read_all(rows)
        self.facts = {f.id: f for f in facts}
        self.classes = {f.id: {k for k, r in _CLASS_RES if r.search(f.root_cause)} for f in facts}
        self.category = {f.id: f.category for f in facts}
        groups: dict[str, set[str]] = {}
        for f in facts:
            groups.setdefault(f.duplicate_of or f.id, set()).add(f.id)
        self.twins = {f.id: groups[f.duplicate_of or f.id] - {f.id} for f in facts}
        self.ids = [f.id for f in facts]
        self._ideal: dict[str, list[int]] = {}

    def grade(self, a: str, b: str) -> int:
        if self.classes[a] & self.classes[b]:
            return 2
        return 1 if self.category[a] == self.category[b] else 0

    def ideal(self, q: str) -> list[int]:
        if q not in self._ideal:
            self._ideal[q] = sorted((self.grade(q, x) for x in self.others(q)), reverse=True)
        return self._ideal[q]

    def others(self, q: str) -> list[str]:
        return [x for x in self.ids if x != q and x not in self.twins[q]]


def classify_report(rel: Relevance) -> None:
    sizes = Counter(k for s in rel.classes.values() for k in s)
    print("Relevance: cause classes by keyword rules over each row's root cause (multi-label)")
    for key, label, _ in CLASSES:
        print(f"  {key:13} {sizes[key]:4d}  {label}")
    none = [i for i, s in rel.classes.items() if not s]
    print(f"  {'(none)':13} {len(none):4d}  root cause states no mechanism, e.g. "
          + "; ".join(f'"{rel.facts[i].root_cause[:60]}"' for i in none[:3]))
    n_lab = [len(s) for s in rel.classes.values()]
    print(f"  classes per incident: mean {statistics.mean(n_lab):.2f}, max {max(n_lab)}")
    print(f"  twins (rows citing the same postmortem, left out of each other's results): "
          f"{sum(1 for i in rel.ids if rel.twins[i])} rows")


# --- the early query -------------------------------------------------------------------------------

def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", (s or "").lower()).split())


def quotes_cause(message: str, cause: str) -> bool:
    """The message states the cause: it holds the root-cause sentence's first 8 words (the cause
    clause). A symptom the demo derived from the sentence's tail ("... causing X") is kept."""
    m, c = _norm(message), _norm(cause)
    if not m or not c:
        return False
    return " ".join(c.split()[:8]) in m


def early_query(doc: dict, cause: str, *, triage: bool = True) -> tuple[dict, dict]:
    """The stored incident as known early (see the module docstring), and what was kept."""
    from app.incidents.service import sorted_events

    early: list[dict] = []
    dropped = 0
    for e in sorted_events(doc):
        if e.get("type") in _LATE_TYPES or (e.get("type") == "Analysis"
                                           and str(e.get("message", "")).startswith("Root cause:")):
            break
        if e.get("type") == "StatusChange" and re.search(r"to (MITIGATED|RESOLVED|CLOSED)", e.get("message", "")):
            break
        if quotes_cause(e.get("message", ""), cause):
            dropped += 1
            continue
        early.append(e)
    early = early[:FIRST_EVENTS]
    company = (doc.get("title") or "").split(": ", 1)[0]
    first = next((e["message"] for e in early if e.get("type") == "Detection"), "")
    q = {k: v for k, v in doc.items() if k not in ("embedding", "embedding_hash", "embedding_model", "embedded_at")}
    q.update(title=f"{company}: {first}"[:200] if first else company, description="", root_cause="",
             resolution="", tags=[t for t in [(doc.get("category") or "").lower()] if t], timeline=early)
    if not triage:  # --no-category: the category (and the namespace derived from it) not known either
        q.update(category=None, namespace=None, tags=[])
    return q, {"events": len(early), "dropped_quoting_cause": dropped, "title_from_detection": bool(first)}


# --- metrics ----------------------------------------------------------------------------------------

def gain(g: int) -> float:
    return float(2 ** g - 1)


def ndcg2(grades: list[int], ideal: list[int], k: int = K) -> float:
    """nDCG with grade 2 as the only gain (same cause; ignores the same-category grade)."""
    return ndcg([1 if g == 2 else 0 for g in grades], [1 if g == 2 else 0 for g in ideal], k)


def ndcg(grades: list[int], ideal: list[int], k: int = K) -> float:
    dcg = sum(gain(g) / math.log2(i + 2) for i, g in enumerate(grades[:k]))
    idcg = sum(gain(g) / math.log2(i + 2) for i, g in enumerate(sorted(ideal, reverse=True)[:k]))
    return dcg / idcg if idcg else 0.0


def rr(grades: list[int], k: int = K) -> float:
    return next((1.0 / (i + 1) for i, g in enumerate(grades[:k]) if g == 2), 0.0)


def p_at(grades: list[int], n: int = TOP) -> float:
    return sum(1 for g in grades[:n] if g == 2) / n


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


# --- calibration ------------------------------------------------------------------------------------

def fit_logistic(x: np.ndarray, y: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """P(y | x) = 1 / (1 + exp(-(a x + b))) by Newton's method (tiny ridge for stability)."""
    a, b = 0.0, math.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6))
    X = np.stack([x, np.ones_like(x)], axis=1)
    w = np.array([a, b])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ w)))
        g = X.T @ (p - y) + 1e-6 * w
        h = (X * (p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(2)
        step = np.linalg.solve(h, g)
        w = w - step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])


def logistic(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(a * x + b)))


def reliability(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[tuple]]:
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece, table = 0.0, []
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.sum() / len(p) * abs(p[m].mean() - y[m].mean())
            table.append((edges[b], edges[b + 1], int(m.sum()), float(p[m].mean()), float(y[m].mean())))
        else:
            table.append((edges[b], edges[b + 1], 0, float("nan"), float("nan")))
    return float(ece), table


# --- the run ----------------------------------------------------------------------------------------

async def seed(bk, rows: list[dict]):
    from app import demo
    from app.demo.spec import IMPORTER
    from app.incidents import embeddings
    from app.indexing import outbox
    from app.main import prepare
    from app.users import service as users

    await prepare(bk)
    importer = await users.ensure_user(bk, data=IMPORTER)
    t = time.perf_counter()
    n = await demo.seed_incidents(bk, user=importer, rows=rows)
    t_seed = time.perf_counter() - t
    t = time.perf_counter()
    await outbox.flush(bk, timeout=120)
    await bk.search.indices.refresh(index=bk.index_alias("incidents"))
    t_flush = time.perf_counter() - t
    t = time.perf_counter()
    embedded = 0
    while (done := await embeddings.backfill(bk)):
        embedded += done
    t_embed = time.perf_counter() - t
    print(f"Seeded {n} incidents through the incidents service in {t_seed:.1f} s; outbox flushed in "
          f"{t_flush:.1f} s; {embedded} embedded by backfill in {t_embed:.1f} s "
          f"({t_embed / max(embedded, 1) * 1000:.0f} ms per incident)")
    return importer


def dataset_id(doc: dict) -> str | None:
    for e in doc.get("timeline") or []:
        d = e.get("details") or {}
        if isinstance(d, dict) and d.get("dataset_id"):
            return d["dataset_id"]
    return None


async def collect(bk, user, rel: Relevance, triage: bool) -> dict[str, Any]:
    """Per query: the shipped hybrid order, the text-only order and the candidate pool with raw factors."""
    from app.incidents import similarity

    captured: dict[str, tuple[float, float | None]] = {}
    original_fuse = similarity.fuse

    def recording_fuse(doc, candidate, *, text, semantic):
        captured[candidate["_id"]] = (text, semantic)
        return original_fuse(doc, candidate, text=text, semantic=semantic)

    similarity.fuse = recording_fuse
    docs = await bk.mongo.incidents.find({}).to_list(None)
    by_ds = {dataset_id(d): d for d in docs}
    assert len(by_ds) == len(docs) == len(rel.ids), "every incident maps to one dataset row"
    ds_of = {d["_id"]: dataset_id(d) for d in docs}
    out: dict[str, Any] = {"queries": {}, "ms_hybrid": [], "ms_text": [], "query_stats": [], "ds_of": ds_of,
                           "docs": by_ds}
    # warm-up: model loaded, vector index loaded
    q0, _ = early_query(docs[0], rel.facts[ds_of[docs[0]["_id"]]].root_cause)
    await similarity.similar(bk, q0, user=user, limit=5)
    try:
        for qid in rel.ids:
            doc = by_ds[qid]
            q, stats = early_query(doc, rel.facts[qid].root_cause, triage=triage)
            out["query_stats"].append(stats)
            captured.clear()
            t = time.perf_counter()
            hybrid = await similarity.similar(bk, q, user=user, limit=200, semantic=True)
            out["ms_hybrid"].append((time.perf_counter() - t) * 1000)
            pool = []
            for m in hybrid:
                text, sem = captured[m.doc["_id"]]
                struct, _ = similarity.structure(q, m.doc)
                pool.append({"ds": ds_of[m.doc["_id"]], "id": m.doc["_id"], "text": text, "sem": sem,
                             "struct": struct, "score": m.score, "factors": m.factors, "doc": m.doc})
            t = time.perf_counter()
            text_only = await similarity.similar(bk, q, user=user, limit=200, semantic=False)
            out["ms_text"].append((time.perf_counter() - t) * 1000)
            out["queries"][qid] = {"hybrid": [ds_of[m.doc["_id"]] for m in hybrid],
                                   "text_only": [ds_of[m.doc["_id"]] for m in text_only], "pool": pool}
    finally:
        similarity.fuse = original_fuse
    return out


def offline_rank(pool: list[dict], wt: float, ws: float, wst: float) -> list[dict]:
    """similarity.fuse's formula with other weights (the pool is the same whatever the weights)."""
    return sorted(pool, key=lambda c: (-_fused_score(c, (wt, ws, wst)), c["id"]))


def evaluate(rel: Relevance, q: str, ranked_ds: list[str]) -> dict[str, float]:
    ranked = [x for x in ranked_ds if x != q and x not in rel.twins[q]][:K]
    grades = [rel.grade(q, x) for x in ranked]
    ideal = rel.ideal(q)
    return {"p5": p_at(grades), "ndcg": ndcg(grades, ideal), "ndcg2": ndcg2(grades, ideal), "mrr": rr(grades)}


def random_baseline(rel: Relevance, queries: list[str], rng: np.random.Generator, shuffles: int = 500):
    p5, nd, nd2, mr = [], [], [], []
    for q in queries:
        others = rel.others(q)
        g = np.array([rel.grade(q, x) for x in others])
        p5.append((g == 2).mean())  # exact expectation for a random top 5
        ideal = sorted(g.tolist(), reverse=True)
        disc = 1 / np.log2(np.arange(2, K + 2))
        idcg = sum(gain(x) * d for x, d in zip(ideal[:K], disc))
        idcg2 = sum(d for x, d in zip(ideal[:K], disc) if x == 2)
        gains = (2.0 ** g - 1)
        nds, nds2, rrs = [], [], []
        for _ in range(shuffles):
            perm = rng.permutation(len(g))[:K]
            nds.append(float((gains[perm] * disc).sum() / idcg) if idcg else 0.0)
            nds2.append(float(((g[perm] == 2) * disc).sum() / idcg2) if idcg2 else 0.0)
            hit = np.nonzero(g[perm] == 2)[0]
            rrs.append(1.0 / (hit[0] + 1) if len(hit) else 0.0)
        nd.append(statistics.mean(nds))
        nd2.append(statistics.mean(nds2))
        mr.append(statistics.mean(rrs))
    return {"p5": statistics.mean(p5), "ndcg": statistics.mean(nd), "ndcg2": statistics.mean(nd2),
            "mrr": statistics.mean(mr)}


def table(rows: list[tuple[str, dict[str, float]]]) -> None:
    print(f"  {'ranking':58} {'grade-2 in top5':>15} {'nDCG@10':>8} {'nDCG@10 g2':>10} {'MRR':>7}")
    for name, m in rows:
        print(f"  {name:58} {m['p5']:15.3f} {m['ndcg']:8.3f} {m['ndcg2']:10.3f} {m['mrr']:7.3f}")


def mean_metrics(per_q: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.mean(m[k] for m in per_q) for k in ("p5", "ndcg", "ndcg2", "mrr")}


def twofold(rel: Relevance, queries: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Two halves of the queries; twins always in the same half."""
    groups: dict[str, list[str]] = {}
    for q in queries:
        root = min([q, *rel.twins[q]])
        groups.setdefault(root, []).append(q)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    a = [q for k in keys[::2] for q in groups[k]]
    b = [q for k in keys[1::2] for q in groups[k]]
    return a, b


async def timing_product_path(bk, user, docs: list[dict], n: int | None = None,
                              limit: int = 5) -> tuple[list[float], dict[str, list[str]]]:
    """similar() as the API calls it (the stored incident, its vector reused); the times, and the
    ranked incident ids by query incident id."""
    from app.incidents import similarity

    out, ranked = [], {}
    for d in docs[:n]:
        t = time.perf_counter()
        res = await similarity.similar(bk, d, user=user, limit=limit)
        out.append((time.perf_counter() - t) * 1000)
        ranked[d["_id"]] = [m.doc["_id"] for m in res]
    return out, ranked


async def timing_early(bk, user, rel: Relevance, by_ds: dict, triage: bool, n: int | None = None) -> list[float]:
    from app.incidents import similarity

    out = []
    for qid in rel.ids[:n]:
        q, _ = early_query(by_ds[qid], rel.facts[qid].root_cause, triage=triage)
        t = time.perf_counter()
        await similarity.similar(bk, q, user=user, limit=5)
        out.append((time.perf_counter() - t) * 1000)
    return out


async def breakdown(bk, user, docs: list[dict]) -> None:
    """Where one stored-incident similar() call spends its time: the search query, the vector search,
    the MongoDB fetch of the candidates."""
    from app import classification
    from app.incidents import embeddings
    from indexers import incidents as incidents_index

    parts: dict[str, list[float]] = {"search (more_like_this)": [], "vector nearest": [],
                                     "MongoDB fetch of candidates": []}
    for d in docs:
        t = time.perf_counter()
        hits = await incidents_index.similar_incidents(bk, dict(d), limit=50,
                                                       visible=classification.search_filter(user))
        parts["search (more_like_this)"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        qvec = await embeddings.query_vector(d)
        near = await embeddings.nearest(bk, qvec, 50, user, exclude=(d["_id"],))
        parts["vector nearest"].append((time.perf_counter() - t) * 1000)
        ids = sorted(({h["id"] for h in hits} | set(near)) - {d["_id"]})
        t = time.perf_counter()
        await bk.mongo.incidents.find({"_id": {"$in": ids}, **classification.mongo_filter(user)},
                                      {"timeline_bytes": 0, "embedding_hash": 0}).to_list(None)
        parts["MongoDB fetch of candidates"].append((time.perf_counter() - t) * 1000)
    for name, v in parts.items():
        print(f"    {name:40} p50 {pct(v, 50):6.1f} ms  p99 {pct(v, 99):6.1f} ms")


async def add_synthetic(bk, n: int, seed: int) -> float:
    """`n` copies of real incidents (new ids and names, vectors perturbed: cosine ~0.9 to the original)
    written straight to MongoDB, with outbox entries, then indexed by an outbox flush."""
    from app import embeddings as emb
    from app.indexing import outbox

    rng = np.random.default_rng(seed)
    real = await bk.mongo.incidents.find({}).to_list(None)
    from app.timefmt import utcnow
    t0 = time.perf_counter()
    batch = 1000
    for start in range(0, n, batch):
        now = utcnow()
        docs, entries = [], []
        for i in range(start, min(n, start + batch)):
            src = real[int(rng.integers(len(real)))]
            vec = emb.from_bytes(src["embedding"]).astype(np.float32)
            vec = vec + rng.standard_normal(vec.shape).astype(np.float32) * (0.5 / math.sqrt(len(vec)))
            vec /= np.linalg.norm(vec)
            d = dict(src)
            d.update(_id=str(uuid.uuid4()), name=f"SYN-{i:06d}", title=f"{src['title']} (synthetic {i})",
                     embedding=emb.to_bytes(vec), created_at=now, updated_at=now, embedded_at=now)
            docs.append(d)
            entries.append({"index": "incidents", "doc_id": d["_id"], "updated_at": now, "next_attempt_at": now,
                            "seq": 1, "created_at": now, "attempts": 0})
        await bk.mongo.incidents.insert_many(docs, ordered=False)
        await bk.mongo.outbox.insert_many(entries, ordered=False)
    t_insert = time.perf_counter() - t0
    t0 = time.perf_counter()
    await outbox.flush(bk, index="incidents", timeout=900)
    await bk.search.indices.refresh(index=bk.index_alias("incidents"))
    t_index = time.perf_counter() - t0
    print(f"  inserted {n} synthetic incidents in {t_insert:.1f} s; outbox flush (search index) {t_index:.1f} s")
    return t_index


async def run(args) -> None:
    from app import demo
    from app.backends import connect
    from app.incidents import similarity
    from app.recommendations import engine
    from app.settings import get_settings

    rows = demo.load_rows()
    rel = Relevance(rows)
    print(f"\n=== Similar-incident quality by root cause: {len(rows)} incidents from {demo.DATASET.name} ===\n")
    classify_report(rel)

    bk = connect(get_settings(), jobs=True)
    try:
        user = await seed(bk, rows)
        data = await collect(bk, user, rel, not args.no_category)
        qs = data["query_stats"]
        print(f"Early query: mean {statistics.mean(s['events'] for s in qs):.2f} timeline events kept "
              f"(of at most {FIRST_EVENTS}); {sum(1 for s in qs if s['dropped_quoting_cause'])} queries had an "
              f"event quoting the root cause dropped; {sum(1 for s in qs if not s['title_from_detection'])} "
              f"titles are the company alone")

        queries = [q for q in rel.ids if rel.classes[q] and any(rel.grade(q, x) == 2 for x in rel.others(q))]
        print(f"Evaluated queries: {len(queries)} (of {len(rel.ids)}; the others' root cause has no class)")
        rng = np.random.default_rng(args.seed)
        base = random_baseline(rel, queries, rng)
        print(f"Random baseline: expected grade-2 share in a random top 5 = {base['p5']:.3f} "
              f"(nDCG@10 {base['ndcg']:.3f}, MRR {base['mrr']:.3f} by 500 shuffles per query)\n")
        # reference: the stored incident as the query (root cause, resolution, description known)
        _, full = await timing_product_path(bk, user, list(data["docs"].values()), limit=200)
        ds_of = data["ds_of"]
        full_ds = {ds_of[i]: [ds_of[x] for x in r] for i, r in full.items()}

        Q = data["queries"]
        W0 = (similarity.W_TEXT, similarity.W_SEMANTIC, similarity.W_STRUCTURE)
        agree = sum(1 for q in queries
                    if [c["ds"] for c in offline_rank(Q[q]["pool"], *W0)][:K] == Q[q]["hybrid"][:K])
        rankings = {
            "(a) text + structure: similar(semantic=False)": lambda q: Q[q]["text_only"],
            "(b) text factor alone (engine more_like_this)":
                lambda q: [c["ds"] for c in sorted(Q[q]["pool"], key=lambda c: (-c["text"], c["id"]))],
            "(c) semantic factor alone (MiniLM cosine)":
                lambda q: [c["ds"] for c in sorted(Q[q]["pool"], key=lambda c: (-(c["sem"] or 0.0), c["id"]))],
            "(d) hybrid as shipped (0.45/0.35/0.20)": lambda q: Q[q]["hybrid"],
            "    structure factor alone": lambda q: [c["ds"] for c in sorted(Q[q]["pool"],
                                                                            key=lambda c: (-c["struct"], c["id"]))],
            "    reference: hybrid, full stored incident (cause known)": lambda q: full_ds[q],
        }
        per = {name: [evaluate(rel, q, f(q)) for q in queries] for name, f in rankings.items()}
        print(f"Results ({len(queries)} early queries, own record and twins excluded, top {K}):")
        table([("random", base)] + [(name, mean_metrics(v)) for name, v in per.items()])
        thin = [i for i, q in enumerate(queries) if not qs[rel.ids.index(q)]["title_from_detection"]]
        rich = [i for i in range(len(queries)) if i not in set(thin)]
        for label, idx in ((f"queries with a symptom in their early text ({len(rich)})", rich),
                           (f"queries whose only early text is the company + workflow events ({len(thin)})", thin)):
            print(f"  - {label}:")
            table([(name, mean_metrics([v[i] for i in idx])) for name, v in per.items() if not name.startswith("    ")])
        print(f"  (offline re-scoring of the pool with the shipped weights reproduces similar()'s top {K} for "
              f"{agree}/{len(queries)} queries)")
        boot = np.random.default_rng(args.seed)
        names = list(per)
        print("  paired bootstrap (2000 resamples of the queries), 95% interval of the difference:")
        for x, y in ((3, 0), (3, 2), (0, 2), (3, 1)):
            for key in ("p5", "ndcg2"):
                d = np.array([m1[key] - m2[key] for m1, m2 in zip(per[names[x]], per[names[y]])])
                res = [d[boot.integers(0, len(d), len(d))].mean() for _ in range(2000)]
                print(f"    {names[x].split(')')[0]}) - {names[y].split(')')[0]}) {key:6}: {d.mean():+.3f} "
                      f"[{np.percentile(res, 2.5):+.3f}, {np.percentile(res, 97.5):+.3f}]")
        twins_in = sum(1 for q in queries if any(x in rel.twins[q] for x in Q[q]["hybrid"][:TOP]))
        print(f"  the shipped hybrid puts a twin (same postmortem) in the top {TOP} for {twins_in} of "
              f"{sum(1 for q in queries if rel.twins[q])} queries that have one (excluded above)")
        # the vendor effect: how often the top 5 share the query's company
        same_co = {name: statistics.mean(
            sum(1 for x in [y for y in rankings[name](q) if y != q and y not in rel.twins[q]][:TOP]
                if rel.facts[x].company == rel.facts[q].company) / TOP for q in queries)
            for name in list(rankings)[:4]}
        print("  share of the top 5 from the query's own company: "
              + ", ".join(f"{n.split(')')[0]}) {v:.3f}" for n, v in same_co.items()))

        # --- weights ---
        grid = [(round(float(wt), 2), round(float(ws), 2), round(float(1 - wt - ws), 2))
                for wt, ws in itertools.product(np.arange(0, 1 + 1e-9, GRID_STEP), repeat=2) if wt + ws <= 1 + 1e-9]
        E = [[evaluate(rel, q, [c["ds"] for c in offline_rank(Q[q]["pool"], *w)]) for q in queries] for w in grid]
        a, b = twofold(rel, queries, args.seed)
        ia = [queries.index(q) for q in a]
        ib = [queries.index(q) for q in b]
        shipped = grid.index(tuple(round(x, 2) for x in W0))
        chosen = {}
        for key, label in (("ndcg", "nDCG@10 (graded: same cause 2, same category 1)"),
                           ("ndcg2", "nDCG@10 on grade 2 only (same cause)")):
            M = np.array([[e[key] for e in row] for row in E])
            tot = M.sum(axis=1)
            best = int(np.argmax(tot))
            loo_pick = [int(np.argmax(tot - M[:, j])) for j in range(len(queries))]
            loo = [M[i, j] for j, i in enumerate(loo_pick)]
            best_a = int(np.argmax(M[:, ia].sum(axis=1)))
            best_b = int(np.argmax(M[:, ib].sum(axis=1)))
            held = (M[best_a, ib].sum() + M[best_b, ia].sum()) / len(queries)
            held_shipped = (M[shipped, ib].sum() + M[shipped, ia].sum()) / len(queries)
            print(f"\nWeights (W_TEXT, W_SEMANTIC, W_STRUCTURE), {GRID_STEP} grid ({len(grid)} settings), by {label}:")
            for i in np.argsort(-tot, kind="stable")[:6]:
                m = mean_metrics(E[i])
                print(f"  {grid[i]!s:18} nDCG@10 {m['ndcg']:.3f}  nDCG@10 g2 {m['ndcg2']:.3f}  "
                      f"grade-2 top5 {m['p5']:.3f}  MRR {m['mrr']:.3f}")
            for name, w in [("shipped", W0), ("no semantic (0.80/0/0.20)", (0.8, 0.0, 0.2)),
                            ("semantic only", (0.0, 1.0, 0.0)), ("0.40/0.40/0.20", (0.4, 0.4, 0.2)),
                            ("0.25/0.35/0.40", (0.25, 0.35, 0.4)), ("structure only", (0.0, 0.0, 1.0))]:
                i = grid.index(tuple(round(x, 2) for x in w))
                m = mean_metrics(E[i])
                print(f"  {name:27} {grid[i]!s:18} nDCG@10 {m['ndcg']:.3f}  nDCG@10 g2 {m['ndcg2']:.3f}  "
                      f"grade-2 top5 {m['p5']:.3f}  MRR {m['mrr']:.3f}")
            print(f"  in-sample best (optimistic): {grid[best]} {tot[best] / len(queries):.3f}")
            print(f"  leave-one-out (choose on the other {len(queries) - 1}, score the one left out): "
                  f"{statistics.mean(loo):.3f}; choices: "
                  + ", ".join(f"{grid[i]}×{n}" for i, n in Counter(loo_pick).most_common(3)))
            print(f"  2-fold (twins kept together): A picks {grid[best_a]}, B picks {grid[best_b]}; held-out "
                  f"{held:.3f} vs shipped {held_shipped:.3f}")
            chosen[key] = grid[best]
        w_rec = chosen["ndcg"]

        # --- calibration ---
        def cal_data(weights, use_shipped: bool):
            xs, ys, conf, qid = [], [], [], []
            for q in queries:
                pool = Q[q]["pool"]
                if use_shipped:
                    top = [c for c in pool if c["ds"] != q and c["ds"] not in rel.twins[q]][:K]
                    scored = [(c, c["score"], c["factors"]) for c in top]
                else:
                    ranked = [c for c in offline_rank(pool, *weights) if c["ds"] not in rel.twins[q]][:K]
                    scored = []
                    scored = [(c, _fused_score(c, weights), c["factors"]) for c in ranked]
                for c, s, factors in scored:
                    rec = engine.similar_incident(engine.Similar(doc=c["doc"], score=s, factors=list(factors)))
                    bonus = sum(f["weight"] for f in rec["matching_factors"] if f["factor"] == "known_fix")
                    xs.append(s + bonus)
                    conf.append(rec["confidence_score"])
                    ys.append(1.0 if rel.grade(q, c["ds"]) == 2 else 0.0)
                    qid.append(q)
            return np.array(xs), np.array(ys), np.array(conf), qid

        settings = [("shipped weights", W0, True), (f"best-by-nDCG weights {w_rec}", w_rec, False)]
        if chosen["ndcg2"] != w_rec:
            settings.append((f"best-by-grade-2-nDCG weights {chosen['ndcg2']}", chosen["ndcg2"], False))
        for label, weights, shipped_flag in settings:
            x, y, conf, qid = cal_data(weights, shipped_flag)
            in_a = np.array([q in set(a) for q in qid])
            a1, b1 = fit_logistic(x[in_a], y[in_a])
            a2, b2 = fit_logistic(x[~in_a], y[~in_a])
            oof = np.where(in_a, logistic(x, a2, b2), logistic(x, a1, b1))
            af, bf = fit_logistic(x, y)
            ece0, t0 = reliability(conf, y)
            ece1, t1 = reliability(oof, y)
            print(f"\nCalibration of engine.similar_incident confidence, hybrid top {K}, {label}: {len(x)} pairs, "
                  f"{y.mean():.3f} relevant (grade 2); raw = score + known-fix bonus, range {x.min():.2f}-{x.max():.2f}")
            print(f"  fold fits: A→(a={a1:.2f}, b={b1:.2f})  B→(a={a2:.2f}, b={b2:.2f});  all data: a={af:.2f}, b={bf:.2f}")
            print(f"  ECE ({ECE_BINS} bins): engine prior (DEFAULT_MODELS, AUC {_auc(conf, y):.3f}): {ece0:.3f}   "
                  f"fitted (out-of-fold): {ece1:.3f}")
            print(f"  {'bin':11} {'n':>5} {'pred(dflt)':>10} {'observed':>8}   {'n':>5} {'pred(fit)':>9} {'observed':>8}")
            for r0, r1 in zip(t0, t1):
                f0 = f"{r0[2]:5d} {r0[3]:10.3f} {r0[4]:8.3f}" if r0[2] else f"{0:5d} {'-':>10} {'-':>8}"
                f1 = f"{r1[2]:5d} {r1[3]:9.3f} {r1[4]:8.3f}" if r1[2] else f"{0:5d} {'-':>9} {'-':>8}"
                print(f"  {r0[0]:.1f}-{r0[1]:.1f}    {f0}   {f1}")
            # how well the raw score separates relevant pairs at all
            auc = _auc(x, y)
            print(f"  AUC of the raw score for grade 2 within the top {K}: {auc:.3f}")

        # --- timing ---
        print(f"\nTiming of one similar() call ({len(rel.ids)} incidents, sequential, in-process):")
        early_ms = data["ms_hybrid"]
        prod, _ = await timing_product_path(bk, user, list(data["docs"].values()))
        print(f"  stored incident, its vector reused, limit 5 (API path):  p50 {pct(prod, 50):6.1f} ms  "
              f"p99 {pct(prod, 99):6.1f} ms")
        print(f"  early query (query embedded in-process), limit 200:      p50 {pct(early_ms, 50):6.1f} ms  "
              f"p99 {pct(early_ms, 99):6.1f} ms")
        print(f"  early query, semantic=False, limit 200:                  p50 {pct(data['ms_text'], 50):6.1f} ms  "
              f"p99 {pct(data['ms_text'], 99):6.1f} ms")
        if args.synthetic:
            print(f"\nWith {args.synthetic} synthetic incidents added:")
            await add_synthetic(bk, args.synthetic, args.seed)
            real_docs = list(data["docs"].values())
            await timing_product_path(bk, user, real_docs, 3)  # the vector index loads the new rows
            prod2, _ = await timing_product_path(bk, user, real_docs)
            early2 = await timing_early(bk, user, rel, data["docs"], not args.no_category)
            total = await bk.mongo.incidents.estimated_document_count()
            print(f"  {total} incidents: stored incident (API path):  p50 {pct(prod2, 50):6.1f} ms  "
                  f"p99 {pct(prod2, 99):6.1f} ms")
            print(f"  {total} incidents: early query (embeds query):  p50 {pct(early2, 50):6.1f} ms  "
                  f"p99 {pct(early2, 99):6.1f} ms")
            await breakdown(bk, user, real_docs[:100])
    finally:
        await bk.close()


def _fused_score(c: dict, weights: tuple[float, float, float]) -> float:
    wt, ws, wst = weights
    w_t, w_s = (wt, ws) if c["sem"] is not None else (wt + ws, 0.0)
    return round(min(1.0, w_t * c["text"] + w_s * (c["sem"] or 0.0) + wst * c["struct"]), 4)


def _auc(x: np.ndarray, y: np.ndarray) -> float:
    pos, neg = x[y == 1], x[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]), kind="stable"), kind="stable") + 1
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=10_000, help="extra incidents for the timing (0: skip)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-category", action="store_true",
                    help="queries without category/namespace (not known at triage)")
    args = ap.parse_args()
    started = time.perf_counter()
    with local_stack("ikl_similarity_bench", IKL_LOG_LEVEL="ERROR"):
        asyncio.run(run(args))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
