"""Benchmark: latency of generate_for_incident (POST /api/knowledge/recommendations/generate_for_incident/)
with 10k and 100k incidents indexed (issue 9).

    .venv/bin/python bench/recommendation_latency.py [--scales 10000,100000] [--queries 100,100] [--seed 7]
                                                     [--noise 0.35] [--no-rest] [--variants 20]

Own local stack (bench/harness.py: mongod, valkey, osmem in a temporary folder). Setup:
- the 200 rows of ../shared/datasets/public-incidents.jsonl are seeded as the demo and the other benches
  do (`app.demo.seed_incidents` through the incidents service: resolved ones with their timelines; then
  `app.demo.seed_articles`: 304 articles, among them 34 published runbooks and 34 troubleshooting guides,
  and the demo users), the outbox flushed (search indices) and every real incident embedded for real
  (`app.incidents.embeddings.backfill`, all-MiniLM-L6-v2);
- SYNTHETIC incidents then bring the corpus up to each scale. Each is a copy of a real incident (chosen
  by a seeded generator, `--seed`) with its words varied: in title, description, root cause and
  resolution about a fifth of the words of 4+ letters are replaced by words drawn from the real
  incidents' same field; an affected service is swapped or added from the real services (30% / 20%);
  the category changes to another real one for 15%, and the namespace is the category's demo namespace
  for 75%, else one of eight (the five demo ones and three extra). Name `SYN-0000001`..., new ids,
  `updated_at` now. They are written straight to MongoDB (insert_many, batches of 2000) and indexed by
  the project's own index code (`indexers.base.write_docs` with `indexers.incidents.INDEX`, the bulk
  path a reindex uses), then the index refreshed.
- EMBEDDINGS OF SYNTHETIC INCIDENTS ARE NOT COMPUTED (100k × ~15 ms is too long): each gets its source
  incident's real vector plus Gaussian noise (`--noise` / sqrt(384) per component, then L2-normalised:
  cosine ~0.94 to the source at 0.35), stored in the fields and with the model version the embedding
  store writes (`embedding` float32 bytes, `embedding_model` = `app.incidents.embeddings.PROFILE.version`,
  `embedding_hash` = the profile's hash of the synthetic incident's own embedding text, `embedded_at`),
  so queries reuse the stored vector and the backfill sees nothing to redo. The vector therefore tracks
  the source incident's meaning, not the varied words.

Measured at each scale, sequentially (one request at a time):
- in-process: `app.recommendations.service.generate_for_incident` with the documented defaults (all five
  types, max_recommendations 5, min_confidence 0) for `--queries` incidents drawn from the whole corpus,
  as the demo importer (admin, RESTRICTED: sees every incident); p50/p99, and where the time goes (each
  part wrapped with time.perf_counter: the fetch of the incident, calibration, similar() and within it
  the osmem similar-incident query, the query vector, the vector search, the MongoDB fetch
  of the candidates and the fusion; the feedback aggregations, postmortems, the article search, the
  expert user lookups, the learning patterns, the storing transaction; "rest" = scoring, picking and the
  final read of the stored recommendations);
- raw backend: the very same incidents' similar-incident query body (indexers.incidents.similar_query,
  size 50, the namespace and clearance filters similar() adds) POSTed straight to osmem with urllib, and
  the article search body the ranking sends; the ratio of our in-process p50 to the raw figure; and, for
  `--variants` of those incidents, variants of the similar-incident body (more_like_this alone, fewer
  query terms, the term boosts alone) to show what osmem spends its time on (the body has a multi_match
  over the incident's text only when its root cause or resolution is written: indexers/incidents.py);
- REST: the API under uvicorn (harness.api_server: one worker, uvloop, httptools) answering the POST for
  another `--queries` incidents (client-side wall time); the first request, which loads the API process's
  vector index, is timed apart; RSS of the API process after the run (and of osmem, mongod and this
  process);
- the machine's load (`/proc/loadavg`) before and after each block: the 2 cores are shared.
The stack runs with IKL_SEARCH_TIMEOUT_SECONDS=300 and IKL_REQUEST_TIMEOUT_SECONDS=300: at 100k osmem's bulk
chunks and more_like_this queries can pass the 10 s / 15 s defaults, which would give errors, not figures;
and IKL_RATE_LIMIT_WRITE=100000 (the 100 writes a minute per user would answer 429 to a fast sequence).
"rest" in the breakdown is the total less the parts: since the service gathers its evidence concurrently
(app/recommendations/service.py `_candidates`), parts overlap and it goes negative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np
from harness import api_server, local_stack

import similarity_quality as sq

NAMESPACES_EXTRA = ["payments", "mobile", "search"]
BATCH = 2000
WORD = re.compile(r"[A-Za-z]{4,}")
TEXT_FIELDS = ("title", "description", "root_cause", "resolution")


# --- small helpers ---------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    return sq.pct(values, p)


def load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def child_pid(cmd_part: str) -> int | None:
    """A child of this process whose command line holds `cmd_part` (the uvicorn started by api_server)."""
    me = os.getpid()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == me and cmd_part in (p / "cmdline").read_bytes().decode(errors="replace"):
                return int(p.name)
        except (OSError, IndexError, ValueError):
            continue
    return None


def fmt(v: list[float]) -> str:
    return f"p50 {pct(v, 50):7.1f} ms  p99 {pct(v, 99):7.1f} ms  mean {sum(v) / len(v):7.1f} ms"


# --- synthetic incidents -----------------------------------------------------------------------------------

class Synth:
    """Deterministic variations of the real incidents (see the module docstring)."""

    def __init__(self, real: list[dict], seed: int, noise: float) -> None:
        from app.demo.incidents import namespace_of
        from app.embeddings.model import from_bytes

        self.real = sorted(real, key=lambda d: d["name"])
        self.rng = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.noise = noise
        self.vocab = {f: sorted({w for d in self.real for w in WORD.findall(d.get(f) or "")}) for f in TEXT_FIELDS}
        self.services = sorted({s for d in self.real for s in d.get("affected_services") or []})
        self.categories = sorted({d["category"] for d in self.real if d.get("category")})
        self.ns_of = {c: namespace_of(c) for c in self.categories}
        self.namespaces = sorted(set(self.ns_of.values())) + NAMESPACES_EXTRA
        self.vecs = {d["_id"]: from_bytes(d["embedding"]).astype(np.float32) for d in self.real if d.get("embedding")}

    def _vary(self, text: str, field: str) -> str:
        if not text:
            return text
        vocab, rnd = self.vocab[field], self.rng.random
        return WORD.sub(lambda m: self.rng.choice(vocab) if rnd() < 0.2 else m.group(0), text)

    def make(self, i: int, now) -> dict:
        from app.embeddings.model import to_bytes
        from app.incidents import embeddings

        rng = self.rng
        src = self.real[rng.randrange(len(self.real))]
        d = dict(src)
        for f in TEXT_FIELDS:
            d[f] = self._vary(src.get(f) or "", f) or src.get(f)
        services = list(src.get("affected_services") or [])
        if services and rng.random() < 0.3:
            services[rng.randrange(len(services))] = rng.choice(self.services)
        if rng.random() < 0.2:
            services.append(rng.choice(self.services))
        d["affected_services"] = list(dict.fromkeys(services))
        if rng.random() < 0.15:
            d["category"] = rng.choice(self.categories)
        d["namespace"] = (self.ns_of.get(d.get("category"), src.get("namespace")) if rng.random() < 0.75
                          else rng.choice(self.namespaces))
        d.update(_id=f"syn-{i:07d}", name=f"SYN-{i:07d}", updated_at=now, embedded_at=now)
        base = self.vecs.get(src["_id"])
        if base is not None:
            v = base + self.np.standard_normal(base.shape).astype(np.float32) * (self.noise / np.sqrt(base.size))
            v /= np.linalg.norm(v)
            d["embedding"] = to_bytes(v)
            d["embedding_model"] = embeddings.PROFILE.version
            d["embedding_hash"] = embeddings.PROFILE.text_hash(embeddings.embedding_text(d))
        return d


async def grow(bk, synth: Synth, target: int) -> None:
    from app.timefmt import utcnow
    from indexers import base as index_base
    from indexers import incidents as incidents_index

    have = await bk.mongo.incidents.count_documents({})
    n_syn = await bk.mongo.incidents.count_documents({"name": {"$regex": "^SYN-"}})
    t_ins = t_idx = 0.0
    t_gen = 0.0
    i = n_syn
    while have < target:
        n = min(BATCH, target - have)
        t = time.perf_counter()
        now = utcnow()
        docs = [synth.make(i + j + 1, now) for j in range(n)]
        t_gen += time.perf_counter() - t
        t = time.perf_counter()
        await bk.mongo.incidents.insert_many(docs, ordered=False)
        t_ins += time.perf_counter() - t
        t = time.perf_counter()
        await index_base.write_docs(bk, incidents_index.INDEX, docs)
        t_idx += time.perf_counter() - t
        i += n
        have += n
        if have % 10_000 < BATCH and target - have >= BATCH:
            print(f"    ... {have} incidents, indexing so far {t_idx:.0f} s", flush=True)
    t = time.perf_counter()
    await bk.search.indices.refresh(index=bk.index_alias("incidents"))
    t_idx += time.perf_counter() - t
    print(f"  {have} incidents ({i} synthetic): generated in {t_gen:.1f} s, MongoDB insert_many {t_ins:.1f} s, "
          f"indexed (indexers.base.write_docs, bulk) {t_idx:.1f} s", flush=True)


# --- the breakdown -------------------------------------------------------------------------------------------

class Parts:
    """Time spent in named functions during one call (patched module attributes, restored on close)."""

    def __init__(self) -> None:
        self.cur: dict[str, float] = defaultdict(float)
        self.rows: list[dict[str, float]] = []
        self._restore: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, label: str, is_async: bool = False) -> None:
        orig = getattr(owner, name)
        cur = self.cur
        if is_async or asyncio.iscoroutinefunction(orig):
            async def timed(*a, **k):
                t = time.perf_counter()
                try:
                    return await orig(*a, **k)
                finally:
                    cur[label] += time.perf_counter() - t
        else:
            def timed(*a, **k):
                t = time.perf_counter()
                try:
                    return orig(*a, **k)
                finally:
                    cur[label] += time.perf_counter() - t
        setattr(owner, name, timed)
        self._restore.append((owner, name, orig))

    def close(self) -> None:
        for owner, name, orig in reversed(self._restore):
            setattr(owner, name, orig)
        self._restore.clear()

    def start(self) -> None:
        self.cur.clear()

    def stop(self, total: float) -> None:
        row = {k: v * 1000 for k, v in self.cur.items()}
        row["total"] = total * 1000
        self.rows.append(row)


ORDER = [  # (label, indent): indented ones are inside the one above
    ("fetch the incident", 0), ("calibration params", 0), ("similar() total", 0),
    ("osmem similar-incident query (opensearch-py)", 1), ("query vector", 1), ("vector search (app/vectors)", 1),
    ("fuse (structure + score)", 1), ("MongoDB fetch of candidates (rest of similar)", 1),
    ("feedback aggregations", 0), ("postmortems", 0), ("articles (ranking.search)", 0),
    ("  articles: osmem searches (first + widenings)", 1), ("  articles: MongoDB candidates + popularity", 1),
    ("  articles: osmem _analyze", 1), ("  articles: query embedding (model, 256 pieces, thread)", 1),
    ("  articles: rerank", 1),
    ("expert user lookups", 0), ("learning patterns", 0), ("store (transaction)", 0),
    ("rest: total - sum of parts (<0: parts overlapped)", 0),
]


def instrument(bk) -> Parts:
    from app.articles import ranking
    from app.embeddings import store
    from app.incidents import embeddings, similarity
    from app.incidents import service as incidents
    from app.patterns import service as pattern_service
    from app.recommendations import calibration, feedback, service
    from app.users import service as users
    from indexers import incidents as incidents_index

    p = Parts()
    p.wrap(incidents, "referenced_incident", "fetch the incident")
    p.wrap(calibration, "current", "calibration params")
    p.wrap(similarity, "similar", "similar() total")
    p.wrap(incidents_index, "similar_incidents", "osmem similar-incident query (opensearch-py)")
    p.wrap(embeddings, "query_vector", "query vector")
    p.wrap(embeddings, "nearest", "vector search (app/vectors)")
    p.wrap(similarity, "fuse", "fuse (structure + score)")
    p.wrap(feedback, "gather", "feedback aggregations")
    p.wrap(service, "_postmortems", "postmortems")
    p.wrap(service, "_articles", "articles (ranking.search)")
    p.wrap(bk.search, "search", "osmem search (all)", is_async=True)
    p.wrap(ranking, "with_popularity", "with_popularity")
    p.wrap(ranking, "_analyse", "  articles: osmem _analyze")
    p.wrap(store, "embed", "  articles: query embedding (model, 256 pieces, thread)")
    p.wrap(ranking, "rerank", "  articles: rerank")
    p.wrap(users, "users_by_ids", "expert user lookups")
    p.wrap(users, "users_by_usernames", "expert user lookups")
    p.wrap(pattern_service, "validated_matching", "learning patterns")
    p.wrap(bk, "transaction", "store (transaction)")
    return p


def print_breakdown(p: Parts) -> None:
    rows = p.rows
    for r in rows:
        mlt = r.get("osmem similar-incident query (opensearch-py)", 0.0)
        r["  articles: osmem searches (first + widenings)"] = r.pop("osmem search (all)", 0.0) - mlt
        # _visible_candidates = with_popularity + widening searches (none seen here): keep MongoDB only
        r["  articles: MongoDB candidates + popularity"] = r.pop("with_popularity", 0.0)
        r["MongoDB fetch of candidates (rest of similar)"] = r.get("similar() total", 0.0) - sum(
            r.get(k, 0.0) for k, ind in ORDER if ind == 1 and not k.startswith(("MongoDB", "  articles")))
        r["rest: total - sum of parts (<0: parts overlapped)"] = r["total"] - sum(r.get(k, 0.0) for k, ind in ORDER
                                                                if ind == 0 and not k.startswith("rest"))
    tot = sum(r["total"] for r in rows)
    print("    (parts marked - run inside the part above; the article search's parts overlap: it gathers them)")
    print(f"    {'part':58} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'share':>6}")
    for label, ind in ORDER:
        v = [r.get(label, 0.0) for r in rows]
        name = ("  - " if ind else "") + label
        print(f"    {name:58} {pct(v, 50):8.1f} {pct(v, 99):8.1f} {sum(v) / len(v):8.1f} {sum(v) / tot:6.1%}")


# --- raw backend -------------------------------------------------------------------------------------------

def raw_post(url: str, body: dict) -> tuple[float, dict]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as r:
        out = json.loads(r.read())
    return time.perf_counter() - t, out


async def raw_backend(bk, user, docs: list[dict]) -> tuple[list[float], list[float]]:
    """The similar-incident body similar() sends and the article body ranking.search sends, straight to osmem."""
    from app import classification
    from app.articles import ranking
    from app.articles.models import SearchInput
    from app.recommendations import service
    from indexers import articles as articles_index
    from indexers import incidents as incidents_index

    base = os.environ["OPENSEARCH_URL"].rstrip("/")
    inc_url = f"{base}/{bk.index_alias('incidents')}/_search"
    art_url = f"{base}/{bk.index_alias('articles')}/_search"
    inc, art = [], []
    for d in docs:
        visible = classification.search_filter(user)
        if d.get("namespace"):
            visible = {"bool": {"filter": [visible, {"term": {"namespace": d["namespace"]}}]}}
        body = incidents_index.similar_query(dict(d), limit=50, visible=visible)
        secs, _ = await asyncio.to_thread(raw_post, inc_url, body)
        inc.append(secs * 1000)
        text = service._query_text(d)
        data = SearchInput(query=text, limit=10)
        abody = articles_index.search_body(text, filters=ranking.filters_for(data, user),
                                           size=max(data.limit, ranking.CANDIDATES))
        secs, _ = await asyncio.to_thread(raw_post, art_url, abody)
        art.append(secs * 1000)
    return inc, art


def query_variants(body: dict) -> dict[str, dict]:
    """The similar-incident body and variants of it, to see what osmem spends its time on."""
    import copy

    b = body["query"]["bool"]
    mlt = [c for c in b["should"] if "more_like_this" in c]
    terms = [c for c in b["should"] if "term" in c]

    def with_should(should: list[dict]) -> dict:
        out = copy.deepcopy(body)
        out["query"]["bool"]["should"] = should
        return out

    mlt12 = copy.deepcopy(mlt)
    for c in mlt12:
        c["more_like_this"]["max_query_terms"] = 12
    return {"as sent (more_like_this + term boosts)": body, "more_like_this alone": with_should(mlt),
            "more_like_this max_query_terms 12 + terms": with_should(mlt12 + terms),
            "only the term boosts (services, category)": with_should(terms) if terms else None}


async def raw_variants(bk, user, docs: list[dict]) -> None:
    from app import classification
    from indexers import incidents as incidents_index

    url = f"{os.environ['OPENSEARCH_URL'].rstrip('/')}/{bk.index_alias('incidents')}/_search"
    times: dict[str, list[float]] = defaultdict(list)
    for d in docs:
        visible = classification.search_filter(user)
        if d.get("namespace"):
            visible = {"bool": {"filter": [visible, {"term": {"namespace": d["namespace"]}}]}}
        for name, body in query_variants(incidents_index.similar_query(dict(d), limit=50, visible=visible)).items():
            if body is not None:
                secs, _ = await asyncio.to_thread(raw_post, url, body)
                times[name].append(secs * 1000)
    print(f"  RAW osmem, variants of the similar-incident body ({len(docs)} incidents, same filters):")
    for name, v in times.items():
        print(f"    {name:52} {fmt(v)}")


# --- the run -----------------------------------------------------------------------------------------------

async def in_process(bk, user, ids: list[str]) -> tuple[list[float], Parts]:
    from app.recommendations import service
    from app.recommendations.models import GenerateRequest

    t = time.perf_counter()
    await service.generate_for_incident(bk, data=GenerateRequest(incident_id=ids[0]), user=user)
    print(f"  in-process warm-up call (the bench process's vector index loads/refreshes): "
          f"{(time.perf_counter() - t) * 1000:.0f} ms", flush=True)
    parts = instrument(bk)
    times, counts = [], []
    try:
        for i in ids:
            parts.start()
            t = time.perf_counter()
            recs = await service.generate_for_incident(bk, data=GenerateRequest(incident_id=i), user=user)
            dt = time.perf_counter() - t
            parts.stop(dt)
            times.append(dt * 1000)
            counts.append(len(recs))
    finally:
        parts.close()
    print(f"  recommendations stored per call: mean {sum(counts) / len(counts):.2f} (max_recommendations 5)")
    return times, parts


def rest(base: str, token: str, ids: list[str]) -> tuple[float, list[float]]:
    url = f"{base}/api/knowledge/recommendations/generate_for_incident/"
    headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}

    def one(i: str) -> float:
        req = urllib.request.Request(url, data=json.dumps({"incident_id": i}).encode(), headers=headers, method="POST")
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=300) as r:
            body = json.loads(r.read())
            assert r.status == 200 and "recommendations" in body, body
        return (time.perf_counter() - t) * 1000

    first = one(ids[0])
    return first, [one(i) for i in ids[1:]]


async def run(args, stack) -> None:
    from app import demo
    from app.backends import connect
    from app.settings import get_settings
    from app.users import service as users

    import feedback_loop
    from app.recommendations import service  # noqa: F401 - loaded now: the code measured is the code at start

    rows = demo.load_rows()
    get_settings.cache_clear()
    bk = connect(get_settings(), jobs=True)
    try:
        t = time.perf_counter()
        user = await feedback_loop.seed_all(bk, rows)
        print(f"Setup of the real data: {time.perf_counter() - t:.0f} s; published articles: "
              f"{await bk.mongo.articles.count_documents({'status': 'PUBLISHED'})}, of which runbooks "
              f"{await bk.mongo.articles.count_documents({'status': 'PUBLISHED', 'article_type': 'RUNBOOK'})}",
              flush=True)
        token = await users.issue_token(bk, user=user, name="bench")
        real = await bk.mongo.incidents.find({}).to_list(None)
        synth = Synth(real, args.seed, args.noise)
        pick = random.Random(args.seed + 1)
        osmem_pid = stack.procs["osmem"].pid
        mongo_pid = stack.procs["mongod"].pid if "mongod" in stack.procs else None
        summary = []
        for k, scale in enumerate(args.scales):
            queries = args.queries[min(k, len(args.queries) - 1)]
            print(f"\n=== {scale} incidents ===", flush=True)
            await grow(bk, synth, scale)
            all_ids = sorted([d["_id"] async for d in bk.mongo.incidents.find({}, {"_id": 1})])
            chosen = pick.sample(all_ids, 2 * queries + 1)
            ids_in, ids_rest = chosen[:queries], chosen[queries:]
            print(f"  load before: {load()}", flush=True)
            times, parts = await in_process(bk, user, ids_in)
            print(f"  IN-PROCESS generate_for_incident ({len(times)} incidents, defaults: all types, max 5): "
                  f"{fmt(times)}")
            print_breakdown(parts)
            print(f"  load after in-process: {load()}", flush=True)
            qdocs = await bk.mongo.incidents.find({"_id": {"$in": ids_in}}).to_list(None)
            raw_inc, raw_art = await raw_backend(bk, user, qdocs)
            mlt = [r["osmem similar-incident query (opensearch-py)"] for r in parts.rows]
            print(f"  RAW osmem, similar-incident body (urllib): {fmt(raw_inc)}")
            print(f"  RAW osmem, article search body (urllib):   {fmt(raw_art)}")
            print(f"  same body through opensearch-py inside similar(): p50 {pct(mlt, 50):.1f} ms;"
                  f"  ratio generate p50 / raw similar-incident p50 = {pct(times, 50) / pct(raw_inc, 50):.2f}; "
                  f"generate p50 / (raw incident + raw article p50) = "
                  f"{pct(times, 50) / (pct(raw_inc, 50) + pct(raw_art, 50)):.2f}")
            if args.variants:
                await raw_variants(bk, user, qdocs[:args.variants])
            row = {"scale": scale, "in": times, "raw": raw_inc, "raw_art": raw_art}
            if not args.no_rest:
                print(f"  load before REST: {load()}", flush=True)
                with api_server() as base:
                    api_pid = child_pid("uvicorn")
                    rss0 = rss_mb(api_pid) if api_pid else float("nan")
                    first, rtimes = await asyncio.to_thread(rest, base, token, ids_rest)
                    rss1 = rss_mb(api_pid) if api_pid else float("nan")
                print(f"  REST first request (loads the API's vector index of {scale} rows): {first:.0f} ms")
                print(f"  REST POST generate_for_incident ({len(rtimes)} incidents, sequential): {fmt(rtimes)}")
                print(f"  API process RSS: {rss0:.0f} MB after start, {rss1:.0f} MB after the run")
                print(f"  load after REST: {load()}")
                row.update(rest=rtimes, rss=rss1, first=first)
            print(f"  RSS: osmem {rss_mb(osmem_pid):.0f} MB, mongod "
                  f"{rss_mb(mongo_pid) if mongo_pid else float('nan'):.0f} MB, bench process {rss_mb(os.getpid()):.0f} MB",
                  flush=True)
            summary.append(row)
        print("\n=== Summary (ms) ===")
        print(f"  {'incidents':>9} {'in p50':>7} {'in p99':>7} {'REST p50':>8} {'REST p99':>8} {'raw MLT p50':>11} "
              f"{'raw art p50':>11} {'in/raw':>6} {'API RSS MB':>10}")
        for r in summary:
            rs = r.get("rest") or [float("nan")]
            print(f"  {r['scale']:9d} {pct(r['in'], 50):7.1f} {pct(r['in'], 99):7.1f} {pct(rs, 50):8.1f} "
                  f"{pct(rs, 99):8.1f} {pct(r['raw'], 50):11.1f} {pct(r['raw_art'], 50):11.1f} "
                  f"{pct(r['in'], 50) / pct(r['raw'], 50):6.2f} {r.get('rss', float('nan')):10.0f}")
    finally:
        await bk.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="10000,100000", help="total incidents, comma-separated, increasing")
    ap.add_argument("--queries", default="100", help="query incidents per scale, comma-separated (last repeats)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--noise", type=float, default=0.35, help="noise on synthetic vectors (norm, before L2)")
    ap.add_argument("--no-rest", action="store_true")
    ap.add_argument("--variants", type=int, default=20, help="incidents for the raw query variants (0: skip)")
    args = ap.parse_args()
    args.scales = [int(x) for x in args.scales.split(",")]
    args.queries = [int(x) for x in args.queries.split(",")]
    started = time.perf_counter()
    print(f"machine: {os.cpu_count()} cores; load {load()}")
    # osmem at 100k takes seconds per bulk chunk and per more_like_this: the default 10 s search timeout
    # and 15 s request deadline would turn slow answers into errors instead of figures
    with local_stack("ikl_recommendation_bench", IKL_LOG_LEVEL="ERROR", IKL_SEARCH_TIMEOUT_SECONDS="300",
                     IKL_REQUEST_TIMEOUT_SECONDS="300", IKL_RATE_LIMIT_WRITE="100000") as stack:
        asyncio.run(run(args, stack))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
