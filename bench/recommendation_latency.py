"""Benchmark: latency of generate_for_incident (POST /api/knowledge/recommendations/generate_for_incident/)
with 10k and 100k incidents indexed (issue 9).

    .venv/bin/python bench/recommendation_latency.py [--scales 10000,100000] [--queries 100,100] [--seed 7]
                                                     [--noise 0.35] [--no-rest] [--variants 20]
                                                     [--pool-study 0,300] [--pool-study-n 20]

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
  size 50, the namespace and clearance filters similar() adds) POSTed straight to osmem with urllib, one
  after another for each incident: as it was before the bounded text query (unbounded, max_query_terms
  40), unbounded with today's terms, and the first body similar() really sent during the in-process run
  (captured: with the `ids` filter of its text pool when it was bounded, app/incidents/similarity.py);
  and the article search body the ranking sends; the ratio of our in-process p50 to each raw figure
  (the summary's "old" is the body before); and, for
  `--variants` of those incidents, variants of the similar-incident body (more_like_this alone, fewer
  query terms, the term boosts alone) to show what osmem spends its time on (the body has a multi_match
  over the incident's text only when its root cause or resolution is written: indexers/incidents.py);
- REST: the API under uvicorn (harness.api_server: one worker, uvloop, httptools) answering the POST for
  another `--queries` incidents (client-side wall time); the first request, which loads the API process's
  vector index, is timed apart; RSS of the API process after the run (and of osmem, mongod and this
  process);
- `--pool-study K[:T],...` (on `--pool-study-n` of the in-process incidents, each stored and in its early
  form): similar() as recommendations call it (their namespace) with similarity.TEXT_POOL = K (0 = the
  unbounded query) and more_like_this max_query_terms T (default: the shipped one), limit 50, every
  configuration in turn for each query: its time, how much of the first configuration's top 10 each
  keeps, and the same-cause share of the top 10 once
  copies of the query's own source incident (and its twins) are left out — the synthetic incidents carry
  their source's dataset row, so bench/similarity_quality.py's cause classes grade them — with a paired
  bootstrap interval against K = 0;
- the machine's load (`/proc/loadavg`) before and after each block: the 2 cores are shared.
After growing, the run waits until no incident counts as written or embedded moments ago (RECENT_SECONDS,
JUST_EMBEDDED_SECONDS), as in steady service.
The stack runs with IKL_SEARCH_TIMEOUT_SECONDS=300 and IKL_REQUEST_TIMEOUT_SECONDS=300: at 100k osmem's bulk
chunks and more_like_this queries can pass the 10 s / 15 s defaults, which would give errors, not figures;
and IKL_RATE_LIMIT_WRITE=100000 (the 100 writes a minute per user would answer 429 to a fast sequence).
"rest" in the breakdown is the total less the parts: since the service gathers its evidence concurrently
(app/recommendations/evidence.py `candidates`), parts overlap and it goes negative.
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
    ("  articles: osmem _analyze", 1), ("  articles: rerank", 1),
    ("embeddings: every model pass (on threads, overlapping)", 0),  # the article query's, causes', articles'
    ("expert user lookups", 0), ("learning patterns", 0), ("store (transaction)", 0),
    ("rest: total - sum of parts (<0: parts overlapped)", 0),
]


def instrument(bk) -> Parts:
    from app.articles import ranking
    from app.embeddings import store
    from app.incidents import embeddings, similarity
    from app.incidents import service as incidents
    from app.patterns import service as pattern_service
    from app.recommendations import calibration, evidence, feedback
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
    p.wrap(evidence, "_postmortems", "postmortems")
    p.wrap(evidence, "_articles", "articles (ranking.search)")
    p.wrap(bk.search, "search", "osmem search (all)", is_async=True)
    p.wrap(ranking, "with_popularity", "with_popularity")
    p.wrap(ranking, "_analyse", "  articles: osmem _analyze")
    p.wrap(store, "embed", "embeddings: every model pass (on threads, overlapping)")
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
        parts = [k for k, ind in ORDER if ind == 0 and not k.startswith(("rest", "embeddings"))]  # embeddings overlap
        r["rest: total - sum of parts (<0: parts overlapped)"] = r["total"] - sum(r.get(k, 0.0) for k in parts)
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


async def raw_backend(bk, user, docs: list[dict], sent: dict[str, dict] | None = None
                      ) -> tuple[list[float], list[float], list[float], list[float]]:
    """The similar-incident body as it was before the bounded text query (unbounded, max_query_terms 40),
    the unbounded one now, the one similar() really sent (`sent`, by incident id) and the article body
    ranking.search sends, straight to osmem, one after another for each incident."""
    from app import classification
    from app.articles import ranking
    from app.articles.models import SearchInput
    from app.recommendations import evidence
    from indexers import articles as articles_index
    from indexers import incidents as incidents_index

    base = os.environ["OPENSEARCH_URL"].rstrip("/")
    inc_url = f"{base}/{bk.index_alias('incidents')}/_search"
    art_url = f"{base}/{bk.index_alias('articles')}/_search"
    inc_old, inc, inc_sent, art = [], [], [], []
    for d in docs:
        visible = classification.search_filter(user)
        if d.get("namespace"):
            visible = {"bool": {"filter": [visible, {"term": {"namespace": d["namespace"]}}]}}
        terms = incidents_index.MLT_QUERY_TERMS
        incidents_index.MLT_QUERY_TERMS = 40  # the body before this change: unbounded, 40 query terms
        try:
            old = incidents_index.similar_query(dict(d), limit=50, visible=visible)
        finally:
            incidents_index.MLT_QUERY_TERMS = terms
        secs, _ = await asyncio.to_thread(raw_post, inc_url, old)
        inc_old.append(secs * 1000)
        body = incidents_index.similar_query(dict(d), limit=50, visible=visible)
        secs, _ = await asyncio.to_thread(raw_post, inc_url, body)
        inc.append(secs * 1000)
        if sent and str(d["_id"]) in sent:
            secs, _ = await asyncio.to_thread(raw_post, inc_url, sent[str(d["_id"])])
            inc_sent.append(secs * 1000)
        text = evidence._query_text(d)
        data = SearchInput(query=text, limit=10)
        abody = articles_index.search_body(text, filters=ranking.filters_for(data, user),
                                           size=max(data.limit, ranking.CANDIDATES))
        secs, _ = await asyncio.to_thread(raw_post, art_url, abody)
        art.append(secs * 1000)
    return inc_old, inc, inc_sent, art


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


# --- the bounded text query -----------------------------------------------------------------------------

async def settle() -> None:
    """Wait until nothing grown counts as written or embedded moments ago (steady service)."""
    from app.incidents import embeddings, similarity

    await asyncio.sleep(max(similarity.RECENT_SECONDS, embeddings.JUST_EMBEDDED_SECONDS) + 0.5)


def parse_pools(spec: str) -> list[tuple[int, int | None]]:
    """"0:40,0,300" -> [(0, 40), (0, None), (300, None)]: TEXT_POOL and optionally max_query_terms."""
    out = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        k, _, terms = part.partition(":")
        out.append((int(k), int(terms) if terms else None))
    return out


async def pool_study(bk, user, docs: list[dict], pools: list[tuple[int, int | None]]) -> None:
    """similar() with each (TEXT_POOL, max_query_terms), for the stored incident (cause known) and for its
    early form (bench/similarity_quality.py `early_query`: what is known before the cause), every
    configuration in turn for each query (so the machine's load falls on all alike): time, agreement with
    the first configuration's top 10, same-cause share of the top 10 among other outages."""
    import similarity_fusion as sf

    from app import demo
    from app.incidents import similarity

    rel = sq.Relevance(demo.load_rows())
    queries: list[tuple[str, dict, str | None]] = []  # (form, query, dataset row)
    for d in docs:
        ds = sq.dataset_id(d)
        queries.append(("stored", d, ds))
        if ds and ds in rel.facts:
            queries.append(("early", sq.early_query(d, rel.facts[ds].root_cause)[0], ds))
    from indexers import incidents as incidents_index

    saved = similarity.TEXT_POOL, incidents_index.MLT_QUERY_TERMS
    lists: dict[tuple, list[list[dict]]] = {k: [] for k in pools}
    ms: dict[tuple, list[float]] = defaultdict(list)
    try:
        for form, q, _ in queries:
            for k in pools:
                similarity.TEXT_POOL = k[0]
                incidents_index.MLT_QUERY_TERMS = k[1] or saved[1]
                t = time.perf_counter()
                got = await similarity.similar(bk, q, user=user, limit=50, namespace=q.get("namespace"))
                ms[(k, form)].append((time.perf_counter() - t) * 1000)
                lists[k].append([m.doc for m in got])
    finally:
        similarity.TEXT_POOL, incidents_index.MLT_QUERY_TERMS = saved

    def name(k: tuple) -> str:
        return f"TEXT_POOL {k[0] or 'unbounded':>9}, terms {k[1] or saved[1]:>2}"

    def same_cause(ds: str | None, ranked: list[dict]) -> float | None:
        if not ds or not rel.classes.get(ds):
            return None
        others = [x for x in (sq.dataset_id(m) for m in ranked) if x and x != ds and x not in rel.twins[ds]][:10]
        return sum(rel.grade(ds, x) == 2 for x in others) / 10

    base = pools[0]
    print(f"  POOL STUDY ({len(docs)} incidents, each stored and in its early form; similar() limit 50 in the "
          f"incident's namespace; against {name(base)}):")
    for form in ("stored", "early"):
        idx = [i for i, (f, _, _) in enumerate(queries) if f == form]
        if not idx:
            continue
        for k in pools:
            top = [[m["_id"] for m in lists[k][i][:10]] for i in idx]
            ref = [[m["_id"] for m in lists[base][i][:10]] for i in idx]
            overlap = [len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(top, ref)]
            same = sum(a == b for a, b in zip(top, ref))
            pairs = [(same_cause(queries[i][2], lists[k][i]), same_cause(queries[i][2], lists[base][i])) for i in idx]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            short = sum(len(lists[k][i]) < 10 for i in idx)
            repeated = sum(len({m["_id"] for m in lists[k][i]}) < len(lists[k][i]) for i in idx)
            line = (f"    {form:6} {name(k)}: similar() p50 {pct(ms[(k, form)], 50):7.1f} ms "
                    f"p99 {pct(ms[(k, form)], 99):7.1f} ms; top-10 overlap {sum(overlap) / len(overlap):.3f}, "
                    f"identical {same}/{len(idx)}" + (f", fewer than 10 found {short}" if short else "")
                    + (f", an incident twice {repeated}" if repeated else ""))
            if pairs:
                diff = np.array([a - b for a, b in pairs])
                m, lo, hi = sf.bootstrap(diff, 7)
                line += (f"; same-cause share of the top 10 (other outages) {np.mean([a for a, _ in pairs]):.3f} "
                         f"(diff {m:+.3f} [{lo:+.3f}, {hi:+.3f}], {len(pairs)} graded)")
            print(line, flush=True)


# --- the run -----------------------------------------------------------------------------------------------

async def in_process(bk, user, ids: list[str]) -> tuple[list[float], Parts]:
    from app.recommendations import service
    from app.recommendations.models import GenerateRequest

    t = time.perf_counter()
    await service.generate_for_incident(bk, data=GenerateRequest(incident_id=ids[0]), user=user)
    print(f"  in-process warm-up call (the bench process's vector index loads/refreshes): "
          f"{(time.perf_counter() - t) * 1000:.0f} ms", flush=True)
    parts = instrument(bk)
    from indexers import incidents as incidents_index

    sent: dict[str, dict] = {}
    original_query = incidents_index.similar_query

    def capture(doc, **k):  # the first similar-incident body sent for each incident
        body = original_query(doc, **k)
        sent.setdefault(str(doc["_id"]), body)
        return body

    incidents_index.similar_query = capture
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
        incidents_index.similar_query = original_query
    parts.sent = sent
    bounded = sum(1 for b in sent.values() if any("ids" in c for c in b["query"]["bool"]["filter"]))
    sizes = [len(c["ids"]["values"]) for b in sent.values() for c in b["query"]["bool"]["filter"] if "ids" in c]
    print(f"  recommendations stored per call: mean {sum(counts) / len(counts):.2f} (max_recommendations 5); "
          f"bounded text query (ids filter) in {bounded} of {len(sent)} incidents"
          + (f", ids per query p50 {pct(sizes, 50):.0f} max {max(sizes)}" if sizes else ""))
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
            await settle()
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
            raw_old, raw_inc, raw_sent, raw_art = await raw_backend(bk, user, qdocs, parts.sent)
            mlt = [r["osmem similar-incident query (opensearch-py)"] for r in parts.rows]
            sim = [r.get("similar() total", 0.0) for r in parts.rows]
            print(f"  RAW osmem, similar-incident body before (unbounded, 40 terms): {fmt(raw_old)}")
            print(f"  RAW osmem, similar-incident body, unbounded (urllib):      {fmt(raw_inc)}")
            if raw_sent:
                print(f"  RAW osmem, similar-incident body as similar() sent it:   {fmt(raw_sent)}")
            print(f"  RAW osmem, article search body (urllib):                  {fmt(raw_art)}")
            print(f"  similar() in generate: p50 {pct(sim, 50):.1f} ms p99 {pct(sim, 99):.1f} ms; the body through "
                  f"opensearch-py inside similar(): p50 {pct(mlt, 50):.1f} ms")
            for label, raw in (("before", raw_old), ("unbounded", raw_inc), ("as sent", raw_sent)):
                if raw:
                    print(f"  ratios to the raw {label} similar-incident body: generate p50 / raw p50 = "
                          f"{pct(times, 50) / pct(raw, 50):.2f}; similar() p50 / raw p50 = "
                          f"{pct(sim, 50) / pct(raw, 50):.2f}; generate p50 / (raw incident + raw article p50) = "
                          f"{pct(times, 50) / (pct(raw, 50) + pct(raw_art, 50)):.2f}")
            if args.variants:
                await raw_variants(bk, user, qdocs[:args.variants])
            if args.pool_study:
                await pool_study(bk, user, qdocs[:args.pool_study_n], args.pool_study)
            row = {"scale": scale, "in": times, "raw": raw_old, "raw_sent": raw_sent, "raw_art": raw_art, "sim": sim}
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
        print(f"  {'incidents':>9} {'in p50':>7} {'in p99':>7} {'sim p50':>7} {'sim p99':>7} {'REST p50':>8} "
              f"{'REST p99':>8} {'raw old p50':>11} {'raw sent p50':>12} {'raw art p50':>11} {'in/old':>6} "
              f"{'in/sent':>7} {'API RSS MB':>10}")
        nan = [float("nan")]
        for r in summary:
            rs = r.get("rest") or nan
            sent = r.get("raw_sent") or nan
            print(f"  {r['scale']:9d} {pct(r['in'], 50):7.1f} {pct(r['in'], 99):7.1f} {pct(r['sim'], 50):7.1f} "
                  f"{pct(r['sim'], 99):7.1f} {pct(rs, 50):8.1f} {pct(rs, 99):8.1f} {pct(r['raw'], 50):11.1f} "
                  f"{pct(sent, 50):12.1f} {pct(r['raw_art'], 50):11.1f} {pct(r['in'], 50) / pct(r['raw'], 50):6.2f} "
                  f"{pct(r['in'], 50) / pct(sent, 50):7.2f} {r.get('rss', float('nan')):10.0f}")
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
    ap.add_argument("--pool-study", default="", help="TEXT_POOL[:max_query_terms] configurations to compare, "
                    "e.g. 0:40,0,300,1000 (0: unbounded; the first is the reference)")
    ap.add_argument("--pool-study-n", type=int, default=20, help="incidents for the pool study")
    args = ap.parse_args()
    args.pool_study = parse_pools(args.pool_study)
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
