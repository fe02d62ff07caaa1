"""Benchmark: does the similar-incident ranking find incidents with the same ROOT CAUSE, and how should its
signals be fused?

    .venv/bin/python bench/similarity_quality.py [--synthetic 10000] [--seed 7] [--save-pool F | --from-pool F]
                                                 [--limit 200] [--text-pool K] [--mlt-terms N]

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

Rankings (top 10): BM25 = the text factor alone (the engine's more_like_this relevance); embeddings =
the semantic factor alone (cosine of all-MiniLM-L6-v2 vectors); text + structure = `similar(semantic=False)`
(what ships without the model); the hybrid as shipped. BM25, embeddings and other fusions re-sort the
candidate pool of one `similar(semantic=True)` call (text top-50 ∪ vector top-50), which holds the exact
top 10 of each; re-scoring the pool with the shipped fusion must reproduce similar()'s top 10 (printed).
Metrics: same-cause nDCG@10 (grade 2 as the only gain, ideal over the whole corpus), MRR (first grade-2
hit within 10), share of grade 2 in the top 5, graded nDCG@10 (gain 2^grade - 1); the random baseline by
shuffling.

Fusion study (bench/similarity_fusion.py): the queries are split by a hash of the row id (twins kept
together) into a TUNE and a HELD-OUT half; fusion families (the shipped text-over-best-hit weighted sum,
min-max, z-scores, reciprocal rank fusion) × structure parts (as shipped, without services) × a weight
grid are chosen on TUNE only; HELD-OUT reports every ranking and the paired per-query differences
(hybrid - BM25, hybrid - embeddings, hybrid - text + structure, tuned - hybrid, ...) with 95 % intervals
(bootstrap 10,000 resamples, and paired t). `--save-pool FILE` keeps the pools; `--from-pool FILE` redoes
the report from them without a stack. Then `similar` latency at 200 incidents and with `--synthetic`
extra incidents (copies of real ones, vectors perturbed) inserted into MongoDB and indexed through the
outbox.

Bounded text query (app/incidents/similarity.py `TEXT_POOL`): with the pool at its default (300) and 200
incidents, the pool would hold every incident, so similar() sends the unbounded query and nothing
changes. `--text-pool K` sets a smaller pool to see what bounding costs in quality (K of the 199 others:
K=50 keeps a quarter of the corpus); `--limit N` the `limit` the quality queries ask (200 by default,
which widens every window to 200; the API asks 5-10, so 50 text + 50 nearest); `--mlt-terms N` the
more_like_this max_query_terms (indexers/incidents.py `MLT_QUERY_TERMS`; osmem applies it per field,
Lucene to the whole query). The run prints how many similar() calls went bounded.

The recommendation confidence is not measured here: it is a per-type logistic model over evidence
features (app/recommendations/calibration.py), measured by bench/feedback_loop.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
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
    # the embedding jobs the writes set off (a worker's, in service): nothing left pending, so no incident
    # counts as "not in the vector index yet" for the bounded text query (their texts are embedded: no-ops)
    await outbox.flush(bk, index="embeddings", jobs=True, timeout=300)
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


async def collect(bk, user, rel: Relevance, triage: bool, limit: int = 200) -> dict[str, Any]:
    """Per query: the shipped hybrid order, the text-only order and the candidate pool with raw factors
    (text relevance over the best hit's, cosine, structure and its parts)."""
    from app.incidents import similarity

    # an incident written within RECENT_SECONDS is a candidate from MongoDB with its words in common as
    # its text part (not the engine's score): let the seeding age past that first
    await asyncio.sleep(similarity.RECENT_SECONDS + 0.5)
    captured: dict[str, tuple[float, float | None]] = {}
    original_fuse = similarity.fuse

    def recording_fuse(doc, candidate, *, text, semantic, **kw):
        captured[candidate["_id"]] = (text, semantic)
        return original_fuse(doc, candidate, text=text, semantic=semantic, **kw)

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
            hybrid = await similarity.similar(bk, q, user=user, limit=limit, semantic=True)
            out["ms_hybrid"].append((time.perf_counter() - t) * 1000)
            pool = []
            for m in hybrid:
                text, sem = captured[m.doc["_id"]]
                struct, factors = similarity.structure(q, m.doc)
                pool.append({"ds": ds_of[m.doc["_id"]], "id": m.doc["_id"], "name": m.doc.get("name") or "",
                             "text": text, "sem": sem, "struct": struct,
                             "parts": {f["factor"]: f["value"] for f in factors},
                             "score": m.score, "factors": m.factors, "doc": m.doc})
            t = time.perf_counter()
            text_only = await similarity.similar(bk, q, user=user, limit=limit, semantic=False)
            out["ms_text"].append((time.perf_counter() - t) * 1000)
            out["queries"][qid] = {"hybrid": [ds_of[m.doc["_id"]] for m in hybrid],
                                   "text_only": [ds_of[m.doc["_id"]] for m in text_only], "pool": pool}
    finally:
        similarity.fuse = original_fuse
    return out


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


async def timing_product_path(bk, user, docs: list[dict], n: int | None = None, limit: int = 5,
                              semantic: bool = True) -> tuple[list[float], dict[str, list[str]]]:
    """similar() as the API calls it (the stored incident, its vector reused); the times, and the
    ranked incident ids by query incident id."""
    from app.incidents import similarity

    out, ranked = [], {}
    for d in docs[:n]:
        t = time.perf_counter()
        res = await similarity.similar(bk, d, user=user, limit=limit, semantic=semantic)
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


def reliability(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[tuple]]:
    """ECE over equal-width bins and the reliability table (used by bench/feedback_loop.py)."""
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


_POOL_KEYS = ("ds", "id", "name", "text", "sem", "struct", "parts", "score")


def portable(data: dict[str, Any], full_ds: dict[str, list[str]]) -> dict[str, Any]:
    """What the quality report needs, as JSON (`--save-pool`; `--from-pool` reads it back)."""
    return {"queries": {q: {"hybrid": v["hybrid"], "text_only": v["text_only"],
                            "pool": [{k: c[k] for k in _POOL_KEYS} for c in v["pool"]]}
                        for q, v in data["queries"].items()},
            "query_stats": data["query_stats"], "full": full_ds}


def quality_report(rel: Relevance, data: dict[str, Any], seed: int) -> None:
    """The quality tables: all queries, then the fusion chosen on TUNE and every ranking on HELD-OUT."""
    import similarity_fusion as sf

    from app.incidents import similarity

    qs = data["query_stats"]
    print(f"Early query: mean {statistics.mean(s['events'] for s in qs):.2f} timeline events kept "
          f"(of at most {FIRST_EVENTS}); {sum(1 for s in qs if s['dropped_quoting_cause'])} queries had an "
          f"event quoting the root cause dropped; {sum(1 for s in qs if not s['title_from_detection'])} "
          f"titles are the company alone")
    queries = [q for q in rel.ids if rel.classes[q] and any(rel.grade(q, x) == 2 for x in rel.others(q))]
    print(f"Evaluated queries: {len(queries)} (of {len(rel.ids)}; the others' root cause has no class)")
    base = random_baseline(rel, queries, np.random.default_rng(seed))
    Q = data["queries"]
    shipped = (similarity.FUSION, (similarity.W_TEXT, similarity.W_SEMANTIC, similarity.W_STRUCTURE))
    agree = sum(1 for q in queries
                if [c["ds"] for c in sf.rank(Q[q]["pool"], *shipped)][:K] == Q[q]["hybrid"][:K])

    def by(key):
        return lambda q: [c["ds"] for c in sorted(Q[q]["pool"], key=lambda c: (-key(c), c["name"], c["id"]))]

    rankings = {
        "BM25: text relevance alone (engine more_like_this)": by(lambda c: c["text"]),
        "embeddings: MiniLM cosine alone": by(lambda c: c["sem"] or 0.0),
        "text + structure: similar(semantic=False)": lambda q: Q[q]["text_only"],
        f"hybrid as shipped ({shipped[0]}, {'/'.join(f'{w:.2f}' for w in shipped[1])})": lambda q: Q[q]["hybrid"],
        "    structure alone": by(lambda c: c["struct"]),
        "    reference: hybrid, full stored incident (cause known)": lambda q: data["full"][q],
    }
    names = list(rankings)
    BM25, EMB, TS, HYB = names[:4]
    per = {name: [evaluate(rel, q, f(q)) for q in queries] for name, f in rankings.items()}
    print(f"Random baseline: same-cause nDCG@10 {base['ndcg2']:.3f}, MRR {base['mrr']:.3f} (500 shuffles per query)")
    print(f"\nAll {len(queries)} early queries (own record and twins excluded, top {K}):")
    table([("random", base)] + [(name, mean_metrics(v)) for name, v in per.items()])
    print(f"  (offline re-scoring of each pool with the shipped fusion reproduces similar()'s top {K} for "
          f"{agree}/{len(queries)} queries)")
    twins_in = sum(1 for q in queries if any(x in rel.twins[q] for x in Q[q]["hybrid"][:TOP]))
    print(f"  the shipped hybrid puts a twin (same postmortem) in the top {TOP} for {twins_in} of "
          f"{sum(1 for q in queries if rel.twins[q])} queries that have one (excluded above)")
    same_co = {name: statistics.mean(
        sum(1 for x in [y for y in rankings[name](q) if y != q and y not in rel.twins[q]][:TOP]
            if rel.facts[x].company == rel.facts[q].company) / TOP for q in queries) for name in names[:4]}
    print("  share of the top 5 from the query's own company: "
          + ", ".join(f"{n.split(':')[0].split(' (')[0]} {v:.3f}" for n, v in same_co.items()))

    # --- the split: choose on TUNE, report on HELD-OUT ---
    tune, held = sf.split(queries, rel.twins)
    it = [queries.index(q) for q in tune]
    ih = [queries.index(q) for q in held]
    print(f"\nSplit by sha256(twin group's root id)[0] % 2: TUNE {len(tune)} queries, HELD-OUT {len(held)} "
          f"(twins kept together). Fusions chosen on TUNE by mean same-cause nDCG@10 "
          f"({len(sf.weight_grid())} weightings on a {sf.STEP} simplex grid per family):")
    study = sf.Study({q: Q[q]["pool"] for q in queries}, rel.grade, rel.ideal, lambda q, x: x in rel.twins[q])
    study.run(queries)
    grid = study.grid
    shipped_g = grid.index(tuple(round(w, 2) for w in shipped[1]))
    best: dict[tuple[str, str], int] = {}
    print(f"  {'family':8} {'structure':12} {'weights (text, sem, struct)':28} {'TUNE nDCG2':>10} {'MRR':>6}"
          f"   {'HELD-OUT nDCG2':>14} {'MRR':>6}")
    for cfg in study.configs:
        S = study.scores[cfg]
        g = int(np.argmax(S["ndcg2"][:, it].mean(axis=1)))  # first of equals: the grid's order
        best[cfg] = g
        print(f"  {cfg[0]:8} {cfg[1]:12} {grid[g]!s:28} {S['ndcg2'][g, it].mean():10.3f} {S['mrr'][g, it].mean():6.3f}"
              f"   {S['ndcg2'][g, ih].mean():14.3f} {S['mrr'][g, ih].mean():6.3f}")
    S0 = study.scores[(shipped[0], "shipped")]
    print(f"  shipped  {'shipped':12} {grid[shipped_g]!s:28} {S0['ndcg2'][shipped_g, it].mean():10.3f} "
          f"{S0['mrr'][shipped_g, it].mean():6.3f}   {S0['ndcg2'][shipped_g, ih].mean():14.3f} "
          f"{S0['mrr'][shipped_g, ih].mean():6.3f}")
    pick = max(study.configs, key=lambda c: (round(study.scores[c]["ndcg2"][best[c], it].mean(), 9),
                                             -study.configs.index(c)))
    pw = grid[best[pick]]
    print(f"  chosen on TUNE: {pick[0]}, structure {pick[1]}, weights {pw} "
          "(the HELD-OUT columns above are for reading only: nothing was chosen by them)")
    pick_name = f"tuned on TUNE: {pick[0]}, struct {pick[1]}, {'/'.join(f'{w:.2f}' for w in pw)}"
    per[pick_name] = [evaluate(rel, q, [c["ds"] for c in sf.rank(Q[q]["pool"], pick[0], pw, pick[1])])
                      for q in queries]
    assert abs(statistics.mean(m["ndcg2"] for m in per[pick_name]) - study.scores[pick]["ndcg2"][best[pick]].mean()) < 1e-9

    print(f"\nHELD-OUT ({len(held)} queries, not used for any choice):")
    table([(name, mean_metrics([v[i] for i in ih])) for name, v in per.items() if not name.startswith("    ")])
    print("  paired differences per query, mean and 95 % intervals (bootstrap 10,000 resamples | paired t):")
    pairs = [(HYB, BM25), (HYB, EMB), (HYB, TS), (TS, BM25), (pick_name, HYB), (pick_name, BM25), (pick_name, EMB)]
    short = {BM25: "BM25", EMB: "embeddings", TS: "text+structure", HYB: "hybrid", pick_name: "tuned"}
    for x, y in pairs:
        for key in ("ndcg2", "mrr"):
            d = np.array([per[x][i][key] - per[y][i][key] for i in ih])
            m, lo, hi = sf.bootstrap(d, seed)
            tlo, thi = sf.paired_t(d)
            print(f"    {short[x] + ' - ' + short[y]:28} {'nDCG@10' if key == 'ndcg2' else 'MRR':7}: {m:+.3f}  "
                  f"[{lo:+.3f}, {hi:+.3f}] | [{tlo:+.3f}, {thi:+.3f}]")
    print(f"\nAll {len(queries)} queries, the same differences (tuned rows are in-sample on half of them):")
    for x, y in pairs[:3]:
        for key in ("ndcg2", "mrr"):
            d = np.array([per[x][i][key] - per[y][i][key] for i in range(len(queries))])
            m, lo, hi = sf.bootstrap(d, seed)
            print(f"    {short[x] + ' - ' + short[y]:28} {'nDCG@10' if key == 'ndcg2' else 'MRR':7}: {m:+.3f}  "
                  f"[{lo:+.3f}, {hi:+.3f}]")


async def run(args) -> None:
    from app import demo
    from app.backends import connect
    from app.settings import get_settings

    rows = demo.load_rows()
    rel = Relevance(rows)
    print(f"\n=== Similar-incident quality by root cause: {len(rows)} incidents from {demo.DATASET.name} ===\n")
    classify_report(rel)
    if args.from_pool:
        with open(args.from_pool) as fh:
            quality_report(rel, json.load(fh), args.seed)
        return

    from app.incidents import similarity
    from indexers import incidents as incidents_index

    if args.text_pool is not None:
        similarity.TEXT_POOL = args.text_pool
    if args.mlt_terms is not None:
        incidents_index.MLT_QUERY_TERMS = args.mlt_terms
    bk = connect(get_settings(), jobs=True)
    try:
        user = await seed(bk, rows)
        bounded = count_bounded()
        data = await collect(bk, user, rel, not args.no_category, limit=args.limit)
        # reference: the stored incident as the query (root cause, resolution, description known)
        _, full = await timing_product_path(bk, user, list(data["docs"].values()), limit=args.limit)
        print(f"Text query: {bounded['bounded']} of {bounded['calls']} similar() calls with a vector sent the "
              f"bounded query (TEXT_POOL {similarity.TEXT_POOL}, max_query_terms "
              f"{incidents_index.MLT_QUERY_TERMS}, limit {args.limit})")
        ds_of = data["ds_of"]
        saved = portable(data, {ds_of[i]: [ds_of[x] for x in r] for i, r in full.items()})
        if args.save_pool:
            with open(args.save_pool, "w") as fh:
                json.dump(saved, fh)
        quality_report(rel, saved, args.seed)

        # --- timing ---
        print(f"\nTiming of one similar() call ({len(rel.ids)} incidents, sequential, in-process):")
        early_ms = data["ms_hybrid"]
        prod, _ = await timing_product_path(bk, user, list(data["docs"].values()))
        print(f"  stored incident, its vector reused, limit 5 (API path):  p50 {pct(prod, 50):6.1f} ms  "
              f"p99 {pct(prod, 99):6.1f} ms")
        prod_ts, _ = await timing_product_path(bk, user, list(data["docs"].values()), semantic=False)
        print(f"  the same, semantic=False (text + structure):             p50 {pct(prod_ts, 50):6.1f} ms  "
              f"p99 {pct(prod_ts, 99):6.1f} ms   (load average {os.getloadavg()[0]:.1f})")
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


def count_bounded() -> dict[str, int]:
    """Counts of similar()'s text pools: how many calls with a vector sent the bounded query."""
    from app.incidents import similarity

    counts = {"calls": 0, "bounded": 0}
    original = similarity._text_pool

    async def counting(*a, **k):
        pool = await original(*a, **k)
        counts["calls"] += 1
        counts["bounded"] += pool is not None
        return pool

    similarity._text_pool = counting
    return counts


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
    ap.add_argument("--limit", type=int, default=200, help="the limit of the quality queries' similar() calls")
    ap.add_argument("--text-pool", type=int, default=None, help="similarity.TEXT_POOL (0: the unbounded query)")
    ap.add_argument("--mlt-terms", type=int, default=None, help="indexers.incidents.MLT_QUERY_TERMS")
    ap.add_argument("--save-pool", metavar="FILE", help="also write the collected pools (JSON) to FILE")
    ap.add_argument("--from-pool", metavar="FILE", help="only the quality report, from a saved pool (no stack)")
    args = ap.parse_args()
    started = time.perf_counter()
    if args.from_pool:
        asyncio.run(run(args))
    else:
        with local_stack("ikl_similarity_bench", IKL_LOG_LEVEL="ERROR"):
            asyncio.run(run(args))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
