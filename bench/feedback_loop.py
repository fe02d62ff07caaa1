"""Benchmark: do effectiveness ratings feed back — does a target (an article, a similar incident whose
fix is suggested) that keeps helping rise for later incidents, and one that keeps failing sink?

    .venv/bin/python bench/feedback_loop.py [--seed 7] [--limit N] [--noise 0.2] [--samples FILE]

(all 176 sequence incidents: about 3-6 minutes on these 2-core machines; `--limit 12` about 40 s)

Own local stack (bench/harness.py). The 200 dataset rows are seeded as the demo does (incidents, then
articles and demo users: `app.demo.seed_incidents`, `seed_articles` with its guides as revised), the
outbox is flushed (search index) and every incident embedded (`app.incidents.embeddings.backfill`).
Relevance, the cause classes and the "what is known early" query are bench/similarity_quality.py's
(`Relevance`, `CLASSES`, `early_query`).

Simulated responders. The incidents whose root cause has a class (and a same-class neighbour) are taken
in a fixed random order (`--seed`). Each is opened as a NEW OPEN incident through
`app.incidents.service.create_incident` in its early-known form (`early_query`: no root cause,
resolution or description, symptom title, early timeline). These probes are queries, never part of the
corpus: the candidate pool stays the 200 dataset incidents and the articles. The service would make a
probe a similar-incident candidate of the next ones twice over: through the search index once its outbox
sync runs, and at once from MongoDB (app/incidents/similarity.py `not_yet_searchable`: an incident with a
pending index sync in the outbox, or written within RECENT_SECONDS). So once a probe is written (`keep_out`)
its outbox entries (index sync, embedding job, recommendation job) are removed — no worker runs here, so
nothing else would take them — and its `created_at`/`updated_at` are moved back past RECENT_SECONDS, as if
it had been written a moment earlier; its text, fields and timeline are as written. Before the first probe
the seeded corpus is let age past RECENT_SECONDS with nothing pending (`settle_corpus`), so every
candidate is scored by the search engine as in steady service, not by words in common for the last ones
seeded. Checked, and the run stops otherwise: no probe is ever a candidate from MongoDB
(`not_yet_searchable` asked directly), in the search index or the outbox, and every SIMILAR_INCIDENT /
SOLUTION target is a seeded dataset incident. For each type
(SIMILAR_INCIDENT, SOLUTION, KNOWLEDGE_ARTICLE; experts left out: no root cause to judge them by)
`generate_for_incident` is called on its own (max_recommendations=10, min_confidence=0) as the demo
importer (admin): the service's `max_recommendations` caps the total over all types (`_pick`), so one
call per type is what gives each type its 10. The recommendations naming the incident's own original or
its twins (rows citing the same postmortem), or an article whose only sources are those (its own
postmortem summary), are dropped — they are the answer, not a recommendation. The top 3 left of each
type by confidence (ties by target) are rated through `service.rate`: 5 when relevant, else 1.

Relevant = the target shares a root-cause class with the incident (grade 2 of similarity_quality):
- SIMILAR_INCIDENT / SOLUTION: the related incident's dataset row;
- KNOWLEDGE_ARTICLE: the article's source rows — its `related_incidents` plus the incidents its
  content cites by name (summaries cite one, runbooks / troubleshooting guides / best practices their
  sources, catalogues a category), less the incident's own row and twins; relevant when at least half of
  them share a class with the incident (an article with no source, e.g. a product guide, never is).

Measured:
- confidence (the per-type logistic model, app/recommendations/engine.py and calibration.py): AUC (ties
  count half, as calibration.auc) and ECE (10 equal-width bins) with the reliability table (n, mean
  predicted, observed helpful rate) over the top 3 of each type, on held-out ratings: the rating pass's
  second half (each scored before its own ratings), the first half regenerated with the others' ratings,
  and — the like-for-like comparison — the second half regenerated in the same state (all ratings but its
  own and its twins') with the shipped prior and then with the product's refit (`calibration.refit` on the
  first half's ratings only), per type with its table, and the confidence level distribution;
- cold vs warm: precision@3 over the first half of the sequence (few ratings yet) and the second half
  (the first half's ratings in), each beside the same incidents regenerated with no feedback (control),
  and a learning curve by quarter of the sequence;
- clean before/after on the first-half incidents, after the whole rating pass, each regenerated with
  `force` and the collection restored after each one (so every incident sees the same state):
  control = every rating hidden (no feedback; shows nothing else moved: the first incident's lists must
  equal its cold ones), after = the other incidents' ratings (its own and its twins' taken out first:
  held out), and after including its own and its twins' ratings (what `force` sees: candidates are scored
  before it deletes; a leak, shown for size only);
- `--noise p` flips each rating with probability p (a responder who misjudges);
- per type and overall: precision@3 with counts, the mean confidence of relevant and irrelevant
  recommendations (top 3, and all returned), a paired bootstrap of the after - control difference, and
  the change by the incident's cause class (the feedback is per target, not per kind of incident).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from harness import local_stack

import similarity_quality as sq

TYPES = ("SIMILAR_INCIDENT", "SOLUTION", "KNOWLEDGE_ARTICLE")
MAX_RECS = 10
TOP = 3
GOOD, BAD = 5, 1
INC_NAME = re.compile(r"\bINC-\d{8}-\d{3}\b")


# --- setup -------------------------------------------------------------------------------------------

async def seed_all(bk, rows: list[dict]):
    """Incidents (the colleague's seed: service, outbox flush, embeddings), then the demo articles."""
    from app import demo
    from app.indexing import outbox

    importer = await sq.seed(bk, rows)
    t = time.perf_counter()
    n = await demo.seed_articles(bk, user=importer, rows=rows, revised=True)
    await outbox.flush(bk, timeout=120)
    await bk.search.indices.refresh(index=bk.index_alias("articles"))
    print(f"Seeded {n} articles (and the demo users) in {time.perf_counter() - t:.1f} s, outbox flushed")
    return importer


async def settle_corpus(bk) -> None:
    """Nothing of the corpus pending in the outbox's incidents sync, and its newest incident written more
    than RECENT_SECONDS ago (waited for), so no seeded incident is a candidate from MongoDB
    (`not_yet_searchable`): each is scored by the search engine, as in steady service."""
    from app.incidents import similarity
    from indexers import incidents as incidents_index

    pending = await bk.mongo.outbox.count_documents({"index": incidents_index.INDEX.name})
    assert pending == 0, f"{pending} incidents still waiting for their index sync after the flush"
    newest = await bk.mongo.incidents.find_one({}, {"updated_at": 1}, sort=[("updated_at", -1)])
    if newest is not None:
        age = (datetime.now(timezone.utc) - newest["updated_at"]).total_seconds()
        if age <= similarity.RECENT_SECONDS:
            await asyncio.sleep(similarity.RECENT_SECONDS - age + 0.5)


async def keep_out(bk, inc_id: str) -> None:
    """Keep a probe (a new incident the bench writes as a query) out of every candidate pool: its outbox
    entries removed (no index sync, embedding or recommendation job will run for it), taken out of the
    search index (the service syncs a write inline, read-your-writes) and its created_at/updated_at moved
    back past RECENT_SECONDS, so `not_yet_searchable` does not offer it."""
    from app.incidents import similarity
    from indexers import incidents as incidents_index

    await bk.mongo.outbox.delete_many({"doc_id": inc_id})
    await bk.search.delete(index=bk.index_alias(incidents_index.INDEX.name), id=inc_id, refresh=True,
                           params={"ignore": 404})
    back = timedelta(seconds=similarity.RECENT_SECONDS + 1.0)
    doc = await bk.mongo.incidents.find_one({"_id": inc_id}, {"created_at": 1, "updated_at": 1})
    await bk.mongo.incidents.update_one({"_id": inc_id}, {"$set": {"created_at": doc["created_at"] - back,
                                                                   "updated_at": doc["updated_at"] - back}})


async def probe_exposure(bk, user, probe_ids: set[str]) -> dict[str, int]:
    """How many probes the service could offer as candidates now: from MongoDB (`not_yet_searchable`, asked
    with nothing excluded, every namespace the probes use), in the search index, with an outbox entry."""
    from app.incidents import similarity
    from indexers import incidents as incidents_index

    namespaces = await bk.mongo.incidents.distinct("namespace", {"_id": {"$in": sorted(probe_ids)}})
    from_mongo = set()
    for ns in namespaces:
        from_mongo |= {d["_id"] for d in await similarity.not_yet_searchable(bk, user=user, namespace=ns, exclude=set())}
    res = await bk.search.search(index=bk.index_alias(incidents_index.INDEX.name),
                                 body={"size": 0, "query": {"ids": {"values": sorted(probe_ids)}}})
    total = res["hits"]["total"]
    return {"not_yet_searchable": len(from_mongo & probe_ids),
            "indexed": total["value"] if isinstance(total, dict) else int(total),
            "outbox": await bk.mongo.outbox.count_documents({"doc_id": {"$in": sorted(probe_ids)}})}


class Corpus:
    """Incident ids and article ids mapped back to dataset rows."""

    def __init__(self, incidents: list[dict], articles: list[dict]) -> None:
        self.ds_of = {d["_id"]: sq.dataset_id(d) for d in incidents}
        self.by_ds = {sq.dataset_id(d): d for d in incidents}
        ds_by_name = {d["name"]: sq.dataset_id(d) for d in incidents}
        self.article_sources: dict[str, set[str]] = {}
        self.article_kind: dict[str, str] = {}
        for a in articles:
            src = {self.ds_of[i] for i in a.get("related_incidents") or [] if i in self.ds_of}
            src |= {ds_by_name[n] for n in INC_NAME.findall(a.get("content") or "") if n in ds_by_name}
            self.article_sources[a["_id"]] = src
            self.article_kind[a["_id"]] = a.get("article_type") or ""


def early_incident(doc: dict, cause: str):
    """The dataset incident as known early, as an IncidentCreate (a new OPEN incident, name generated)."""
    from app.incidents.models import IncidentCreate, TimelineEventIn

    q, _ = sq.early_query(doc, cause)
    events = []
    for e in q["timeline"]:
        details = {k: v for k, v in (e.get("details") or {}).items() if k != "dataset_id"} or None
        events.append(TimelineEventIn(timestamp=e.get("timestamp"), type=e["type"], source=e.get("source") or "bench",
                                      message=e["message"], severity=e.get("severity"), details=details))
    return IncidentCreate(
        namespace=q.get("namespace") or "default", title=q["title"][:200] or "incident", description="",
        severity=q["severity"], status="OPEN", category=q.get("category") or "",
        affected_services=q.get("affected_services") or [], affected_teams=q.get("affected_teams") or [],
        tags=q.get("tags") or [], detected_at=q.get("detected_at"),
        data_classification=q.get("data_classification") or "INTERNAL", timeline=events)


# --- judging -------------------------------------------------------------------------------------------

class Judge:
    def __init__(self, rel: sq.Relevance, corpus: Corpus, query_ids: set[str]) -> None:
        self.rel, self.c, self.query_ids = rel, corpus, query_ids
        self.leaks = 0

    def excluded(self, q: str, rec: dict) -> bool:
        own = {q} | self.rel.twins[q]
        if rec.get("related_incident"):
            if rec["related_incident"] in self.query_ids or rec["related_incident"] not in self.c.ds_of:
                # a probe (or anything but a seeded dataset incident) as a candidate: the figures would
                # judge something that is not a past incident; stop rather than drop it quietly
                self.leaks += 1
                raise RuntimeError(f"a {rec['recommendation_type']} recommendation names {rec['related_incident']}, "
                                   f"not a seeded dataset incident (a probe: "
                                   f"{rec['related_incident'] in self.query_ids})")
            return self.c.ds_of[rec["related_incident"]] in own
        if rec.get("knowledge_article"):
            src = self.c.article_sources.get(rec["knowledge_article"], set())
            return bool(src) and src <= own
        return False

    def never(self, rec: dict) -> bool:
        """A target no incident can find relevant: an incident whose root cause has no class, an article
        whose sources have none (or that has no source)."""
        if rec.get("related_incident"):
            return not self.rel.classes[self.c.ds_of[rec["related_incident"]]]
        return not any(self.rel.classes[x] for x in self.c.article_sources.get(rec["knowledge_article"], set()))

    def relevant(self, q: str, rec: dict) -> bool:
        if rec.get("related_incident"):
            return self.rel.grade(q, self.c.ds_of[rec["related_incident"]]) == 2
        src = self.c.article_sources.get(rec["knowledge_article"], set()) - {q} - self.rel.twins[q]
        if not src:
            return False
        return sum(1 for s in src if self.rel.grade(q, s) == 2) * 2 >= len(src)


async def recommend(bk, user, judge: Judge, q: str, inc_id: str, *, force: bool) -> dict[str, list[dict]]:
    """Per type: every returned recommendation left after the exclusions, best first, judged."""
    from app.recommendations import service
    from app.recommendations.models import GenerateRequest

    out = {}
    for t in TYPES:
        recs = await service.generate_for_incident(bk, user=user, data=GenerateRequest(
            incident_id=inc_id, recommendation_types=[t], max_recommendations=MAX_RECS, min_confidence=0.0,
            force=force))
        recs.sort(key=lambda d: (-d["confidence_score"], str(d["target"])))  # the service ties by random _id
        kept = [r for r in recs if not judge.excluded(q, r)]
        out[t] = [{"id": r["_id"], "target": r["target"], "conf": r["confidence_score"], "raw": r.get("raw_score"),
                   "fb": next((f["value"] for f in r.get("matching_factors") or [] if f["factor"] == "feedback"),
                              0.0),
                   "rel": judge.relevant(q, r), "never": judge.never(r)} for r in kept]
    return out


# --- metrics ---------------------------------------------------------------------------------------------

def summarize(results: dict[str, dict[str, list[dict]]], qs: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for t in (*TYPES, "ALL"):
        types = TYPES if t == "ALL" else (t,)
        shown = [r for q in qs for tt in types for r in results[q][tt][:TOP]]
        every = [r for q in qs for tt in types for r in results[q][tt]]
        per_q = [sum(r["rel"] for tt in types for r in results[q][tt][:TOP])
                 / max(1, sum(len(results[q][tt][:TOP]) for tt in types)) for q in qs]

        def mean_conf(xs, rel):
            v = [r["conf"] for r in xs if r["rel"] == rel]
            return statistics.mean(v) if v else float("nan")

        out[t] = {"queries": len(qs), "shown": len(shown), "relevant": sum(r["rel"] for r in shown),
                  "p3": sum(r["rel"] for r in shown) / max(1, len(shown)), "per_q": per_q,
                  "conf_rel": mean_conf(shown, True), "conf_irr": mean_conf(shown, False),
                  "conf_rel_all": mean_conf(every, True), "conf_irr_all": mean_conf(every, False),
                  "with_fb": sum(1 for r in shown if r["fb"]), "never": sum(1 for r in shown if r["never"]),
                  "returned": len(every),
                  "rel_returned": sum(r["rel"] for r in every)}
    return out


def print_table(title: str, passes: list[tuple[str, dict]]) -> None:
    print(f"\n{title}")
    print(f"  {'type':18} {'pass':34} {'queries':>7} {'shown':>5} {'relev.':>6} {'P@3':>6} "
          f"{'conf rel':>8} {'conf irr':>8} {'gap':>6} {'gap@10':>6} {'w/ fb':>5}")
    for t in (*TYPES, "ALL"):
        for name, s in passes:
            m = s[t]
            print(f"  {t:18} {name:34} {m['queries']:7d} {m['shown']:5d} {m['relevant']:6d} {m['p3']:6.3f} "
                  f"{m['conf_rel']:8.3f} {m['conf_irr']:8.3f} {m['conf_rel'] - m['conf_irr']:+6.3f} "
                  f"{m['conf_rel_all'] - m['conf_irr_all']:+6.3f} {m['with_fb']:5d}")


def _auc(p: np.ndarray, y: np.ndarray) -> float:
    """AUC with ties counted half (the product's calibration.auc)."""
    from app.recommendations import calibration

    a = calibration.auc(zip(p.tolist(), y.tolist()))
    return float("nan") if a is None else a


def _levels(p: np.ndarray) -> str:
    from app.recommendations.models import level_for

    levels = Counter(level_for(float(x)).value for x in p)
    return ", ".join(f"{k} {levels[k]}" for k in ("LOW", "MEDIUM", "HIGH", "VERY_HIGH"))


def _table(p: np.ndarray, y: np.ndarray, indent: str) -> None:
    print(f"{indent}{'bin':9} {'n':>5} {'predicted':>9} {'observed':>8}")
    for lo, hi, n, pm, om in sq.reliability(p, y)[1]:
        if n:
            print(f"{indent}{lo:.1f}-{hi:.1f}  {n:5d} {pm:9.3f} {om:8.3f}")


def confidence_report(title: str, results: dict[str, dict[str, list[dict]]], qs: list[str], top: int = TOP,
                      per_type_tables: bool = False) -> dict:
    """How well `confidence_score` predicts the responder's rating on held-out recommendations: AUC
    (discrimination, ties half), ECE (10 bins) and the reliability table, over the top `top` of each type;
    with `per_type_tables` each type's table and levels too."""
    pairs = [(r["conf"], int(r["rel"]), tt) for q in qs for tt in TYPES for r in results[q][tt][:top]]
    p = np.array([x for x, _, _ in pairs])
    y = np.array([x for _, x, _ in pairs])
    ece = sq.reliability(p, y)[0]
    auc = _auc(p, y)
    print(f"\n{title}: {len(pairs)} rated recommendations, {y.mean():.3f} helpful; AUC {auc:.3f}, ECE {ece:.3f}")
    out = {"auc": auc, "ece": ece, "n": len(pairs), "types": {}}
    for tt in TYPES:
        pt = np.array([x for x, _, t in pairs if t == tt])
        yt = np.array([v for _, v, t in pairs if t == tt])
        if len(pt):
            e_t, a_t = sq.reliability(pt, yt)[0], _auc(pt, yt)
            out["types"][tt] = {"auc": a_t, "ece": e_t, "n": len(pt), "helpful": float(yt.mean())}
            print(f"  {tt:18} n {len(pt):4d} helpful {yt.mean():.3f} mean conf {pt.mean():.3f} AUC {a_t:.3f} "
                  f"ECE {e_t:.3f}")
    print(f"  levels (all types): {_levels(p)}")
    _table(p, y, "  ")
    if per_type_tables:
        for tt in TYPES:
            pt = np.array([x for x, _, t in pairs if t == tt])
            yt = np.array([v for _, v, t in pairs if t == tt])
            if len(pt):
                print(f"  {tt}: levels {_levels(pt)}")
                _table(pt, yt, "    ")
    return out


def bootstrap(a: list[float], b: list[float], seed: int, n: int = 2000) -> tuple[float, float, float]:
    d = np.array(a) - np.array(b)
    rng = np.random.default_rng(seed)
    res = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(n)]
    return float(d.mean()), float(np.percentile(res, 2.5)), float(np.percentile(res, 97.5))


async def refit_report(bk, user, judge, first, second, inc_of, twins_of) -> None:
    """Shipped prior vs the product's refit (app/recommendations/calibration.py), like for like: the second
    half regenerated with the prior, then `calibration.refit` on the first half's ratings only (the second
    half's hidden while it fits), then the second half regenerated with the refit — both in the same state
    (every rating but the incident's own and its twins': held out) and judged."""
    from app.recommendations import calibration, engine

    if not hasattr(calibration, "refit"):
        return
    await bk.mongo.recommendation_calibration.delete_many({})
    calibration._cache.clear()
    prior2 = await regenerate(bk, user, judge, second, inc_of, hold_out=twins_of)
    confidence_report("Confidence vs rating, second half regenerated with the SHIPPED PRIOR "
                      "(engine.DEFAULT_MODELS; the others' ratings in, its own and its twins' held out)",
                      prior2, second, per_type_tables=True)
    second_ids = [inc_of[q] for q in second]
    hidden = await bk.mongo.recommendations.update_many(
        {"incident": {"$in": second_ids}, "effectiveness_rating": {"$ne": None}},
        {"$rename": {"effectiveness_rating": "_bench_rating"}})
    report = await calibration.refit(bk)
    await bk.mongo.recommendations.update_many({"_bench_rating": {"$exists": True}},
                                               {"$rename": {"_bench_rating": "effectiveness_rating"}})
    print(f"\nRefit (calibration.refit) on the first half's ratings ({hidden.modified_count} second-half ratings "
          f"hidden while it fits):")
    for t, r in report.items():
        if t not in TYPES:
            continue
        line = f"  {t:18} {r.get('ratings')} ratings, kept={r.get('kept')}"
        if "loss_before" in r:
            line += (f"; log loss prior {r.get('loss_prior', r['loss_before']):.4f} vs refit CV {r['loss_after']:.4f}; "
                     f"in-sample ECE {r['ece_before']:.3f} -> {r['ece_after']:.3f}, "
                     f"AUC {r['auc_before']} -> {r['auc_after']}")
        print(line)
        if r.get("kept"):
            prior = engine.DEFAULT_MODELS[t]
            print(f"  {'':18} b {prior['b']:+.2f} -> {r['b']:+.2f}; "
                  + ", ".join(f"{f} {prior['w'][f]:.2f}->{w:.2f}" for f, w in r["w"].items()))
    after2 = await regenerate(bk, user, judge, second, inc_of, hold_out=twins_of)
    confidence_report("Confidence vs rating, second half regenerated AFTER THE REFIT on the first half "
                      "(same state, held out)", after2, second, per_type_tables=True)
    await bk.mongo.recommendation_calibration.delete_many({})
    calibration._cache.clear()


# --- the run -----------------------------------------------------------------------------------------------

async def regenerate(bk, user, judge, order, inc_of, *, hold_out: dict[str, list[str]] | None) -> dict:
    """Regenerate (force) for each incident, restoring the stored recommendations afterwards, so each one
    sees the same state; `hold_out[q]` names the incidents whose (rated) recommendations are taken out
    while q is regenerated (its own and its twins': what it must not learn from)."""
    out = {}
    for q in order:
        inc = inc_of[q]
        held = [inc] + [i for i in (hold_out or {}).get(q, []) if i != inc]
        if hold_out is None:
            held = [inc]
        stash = await bk.mongo.recommendations.find({"incident": {"$in": held}}).to_list(None)
        if hold_out is not None:
            await bk.mongo.recommendations.delete_many({"incident": {"$in": held}})
        out[q] = await recommend(bk, user, judge, q, inc, force=True)
        await bk.mongo.recommendations.delete_many({"incident": {"$in": held}})
        if stash:
            await bk.mongo.recommendations.insert_many(stash)
    return out


async def run(args) -> None:
    from app import demo
    from app.backends import connect
    from app.incidents import service as incidents
    from app.recommendations import engine, service
    from app.recommendations.models import RateRequest
    from app.settings import get_settings

    t_start = time.perf_counter()
    rows = demo.load_rows()
    rel = sq.Relevance(rows)
    print(f"\n=== Feedback loop: {len(rows)} incidents from {demo.DATASET.name} ===\n")
    sq.classify_report(rel)
    bk = connect(get_settings(), jobs=True)
    try:
        user = await seed_all(bk, rows)
        await settle_corpus(bk)
        corpus = Corpus(await bk.mongo.incidents.find({}, {"embedding": 0}).to_list(None),
                        await bk.mongo.articles.find({}, {"related_incidents": 1, "content": 1,
                                                          "article_type": 1}).to_list(None))
        kinds = Counter(corpus.article_kind.values())
        n_src = Counter(min(len(s), 2) for s in corpus.article_sources.values())
        print(f"Articles: {len(corpus.article_sources)} ({', '.join(f'{k} {n}' for k, n in kinds.most_common())}); "
              f"mapped to no row {n_src[0]}, to one row {n_src[1]}, to several {n_src[2]}")

        eligible = [q for q in rel.ids if rel.classes[q] and any(rel.grade(q, x) == 2 for x in rel.others(q))]
        order = list(eligible)
        random.Random(args.seed).shuffle(order)
        if args.limit:
            order = order[:args.limit]
        half = len(order) // 2
        first, second = order[:half], order[half:]
        print(f"Sequence: {len(order)} incidents (of {len(rel.ids)}; root cause with a class and a same-class "
              f"neighbour), shuffled with seed {args.seed}; first half {len(first)}, second half {len(second)}")
        print(f"Responders: top {TOP} of each type rated {GOOD} when relevant, else {BAD}; "
              f"{args.noise:.0%} of ratings flipped (--noise)")
        print(f"Engine: {engine.MODEL_VERSION}, FEEDBACK_PRIOR {engine.FEEDBACK_PRIOR}, confidence models: the "
              f"prior engine.DEFAULT_MODELS (not refitted during the rating pass)")

        judge = Judge(rel, corpus, set())
        inc_of: dict[str, str] = {}
        cold: dict[str, dict[str, list[dict]]] = {}
        ratings = 0
        t = time.perf_counter()
        gen_ms = []
        noise = random.Random(args.seed + 1)
        for i, q in enumerate(order):
            doc = corpus.by_ds[q]
            new = await incidents.create_incident(bk, data=early_incident(doc, rel.facts[q].root_cause), user=user)
            inc_of[q] = new["_id"]
            judge.query_ids.add(new["_id"])
            await keep_out(bk, new["_id"])
            t1 = time.perf_counter()
            res = await recommend(bk, user, judge, q, new["_id"], force=False)
            gen_ms.append((time.perf_counter() - t1) * 1000 / len(TYPES))
            cold[q] = res
            for tt in TYPES:
                for r in res[tt][:TOP]:
                    good = r["rel"] != (noise.random() < args.noise)  # a responder errs with p = noise
                    await service.rate(bk, rec_id=r["id"], data=RateRequest(rating=GOOD if good else BAD), user=user)
                    ratings += 1
            if (i + 1) % 50 == 0:
                print(f"  ... {i + 1} incidents, {ratings} ratings, {time.perf_counter() - t:.0f} s")
        print(f"Rating pass: {len(order)} incidents, {ratings} ratings in {time.perf_counter() - t:.0f} s "
              f"(generate p50 {sq.pct(gen_ms, 50):.0f} ms per type)")
        stored = await bk.mongo.recommendations.count_documents({"effectiveness_rating": {"$ne": None}})
        assert stored == ratings, (stored, ratings)
        exposure = await probe_exposure(bk, user, judge.query_ids)
        print(f"check: probes the service could offer as candidates after the rating pass (of {len(judge.query_ids)}): "
              + ", ".join(f"{k} {v}" for k, v in exposure.items()))
        assert not any(exposure.values()), exposure
        shown = Counter(tt for q in order for tt in TYPES for _ in cold[q][tt][:TOP])
        print("  shown (top 3 per type, rated) in the rating pass: "
              + ", ".join(f"{tt} {shown[tt]}" for tt in TYPES) + f" (at most {len(order) * TOP} each)")
        if args.samples:  # (half, type, features, helped) of every rating, to fit the prior on one half
            half_of = {inc_of[q]: (0 if j < half else 1) for j, q in enumerate(order)}
            rated = await bk.mongo.recommendations.find(
                {"effectiveness_rating": {"$ne": None}},
                {"incident": 1, "recommendation_type": 1, "confidence_features": 1, "effectiveness_rating": 1}).to_list(None)
            with open(args.samples, "w") as fh:
                for r in rated:
                    fh.write(json.dumps({"half": half_of[r["incident"]], "type": r["recommendation_type"],
                                         "features": r["confidence_features"],
                                         "helped": int(r["effectiveness_rating"] >= 4)}) + "\n")
            print(f"  {len(rated)} rated samples written to {args.samples}")
        rated_targets = await (await bk.mongo.recommendations.aggregate([
            {"$match": {"effectiveness_rating": {"$ne": None}}},
            {"$group": {"_id": {"t": "$recommendation_type", "x": "$target"}, "n": {"$sum": 1},
                        "mean": {"$avg": "$effectiveness_rating"}}}])).to_list(None)
        for tt in TYPES:
            mine = [r for r in rated_targets if r["_id"]["t"] == tt]
            ns = [r["n"] for r in mine]
            print(f"  {tt:18} {len(mine):4d} targets rated, ratings per target mean {statistics.mean(ns):.1f} "
                  f"max {max(ns)}; targets with mean >= 4: {sum(1 for r in mine if r['mean'] >= 4)}, "
                  f"<= 2: {sum(1 for r in mine if r['mean'] <= 2)}")

        # --- the no-feedback control for every incident: every rating hidden ---
        t = time.perf_counter()
        hidden = await bk.mongo.recommendations.update_many({"effectiveness_rating": {"$ne": None}},
                                                            {"$rename": {"effectiveness_rating": "_bench_rating"}})
        control = await regenerate(bk, user, judge, order, inc_of, hold_out={})
        await bk.mongo.recommendations.update_many({"_bench_rating": {"$exists": True}},
                                                   {"$rename": {"_bench_rating": "effectiveness_rating"}})
        assert await bk.mongo.recommendations.count_documents({"effectiveness_rating": {"$ne": None}}) == ratings
        t_ctrl = time.perf_counter() - t
        q0 = order[0]  # saw no rating when first generated: its control must match it exactly
        same0 = all([r["target"] for r in cold[q0][tt]] == [r["target"] for r in control[q0][tt]] for tt in TYPES)

        print_table("Cold vs warm: the rating pass itself (each incident sees the ratings of those before it), "
                    "and the same incidents with no feedback",
                    [("first half: as rated", summarize(cold, first)), ("first half: no feedback", summarize(control, first)),
                     ("second half: as rated", summarize(cold, second)),
                     ("second half: no feedback", summarize(control, second))])
        print("\nLearning curve (all three types; P@3 as generated during the rating pass vs no feedback):")
        quarters = [order[i * len(order) // 4:(i + 1) * len(order) // 4] for i in range(4)]
        seen = 0
        for i, qs in enumerate(quarters):
            p, c = summarize(cold, qs)["ALL"], summarize(control, qs)["ALL"]
            print(f"  incidents {seen + 1:3d}-{seen + len(qs):3d} (ratings before them: {seen * TOP * len(TYPES):4d}-"
                  f"{(seen + len(qs) - 1) * TOP * len(TYPES):4d}): as rated {p['p3']:.3f}, no feedback {c['p3']:.3f}, "
                  f"gain {p['p3'] - c['p3']:+.3f}")
            seen += len(qs)

        # --- clean before/after on the first half ---
        t = time.perf_counter()
        twins_of = {q: [inc_of[x] for x in rel.twins[q] if x in inc_of] for q in order}
        after = await regenerate(bk, user, judge, first, inc_of, hold_out=twins_of)
        after_own = await regenerate(bk, user, judge, first, inc_of, hold_out=None)
        assert await bk.mongo.recommendations.count_documents({"effectiveness_rating": {"$ne": None}}) == ratings
        print(f"\n(regeneration: control over {len(order)} incidents with {hidden.modified_count} ratings hidden in "
              f"{t_ctrl:.0f} s; 2 feedback passes over {len(first)} in {time.perf_counter() - t:.0f} s; "
              f"state restored after each incident)")
        print(f"check: incident 1 (no ratings when cold) regenerated without feedback gives the same lists: {same0}")
        print(f"check: recommendations naming one of the probes or anything but a seeded dataset incident: "
              f"{judge.leaks} (the run stops at the first)")
        print(f"held out for 'after': the incident's own ratings and those of its twins in the sequence "
              f"({sum(1 for q in first if twins_of[q])} of the first half have a twin there)")

        s_cold, s_ctrl, s_after, s_own = (summarize(x, first) for x in (cold, control, after, after_own))
        confidence_report("Confidence vs rating, the rating pass (each incident scored before its own ratings: "
                          "held out), second half", cold, second)
        confidence_report("Confidence vs rating, first half regenerated with the others' ratings (held out)",
                          after, first)
        await refit_report(bk, user, judge, first, second, inc_of, twins_of)
        exposure = await probe_exposure(bk, user, judge.query_ids)
        print("\ncheck: probes the service could offer as candidates at the end: "
              + ", ".join(f"{k} {v}" for k, v in exposure.items()))
        assert not any(exposure.values()), exposure
        print_table(f"Before/after on the first-half incidents ({len(first)}), regenerated after all {ratings} ratings",
                    [("cold (as first generated)", s_cold), ("control: no feedback", s_ctrl),
                     ("after: others' feedback (held out)", s_after), ("after incl. own + twins' (leak)", s_own)])

        print("\nPaired differences of per-incident precision@3 (bootstrap 2000, 95% interval):")
        for t_ in (*TYPES, "ALL"):
            for label, a, b in (("after - control", s_after, s_ctrl), ("after - cold", s_after, s_cold),
                                ("cold - control", s_cold, s_ctrl)):
                d, lo, hi = bootstrap(a[t_]["per_q"], b[t_]["per_q"], args.seed)
                print(f"  {t_:18} {label:16} {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")

        changed = Counter()
        for q in first:
            for tt in TYPES:
                a = [r["target"] for r in after[q][tt][:TOP]]
                c = [r["target"] for r in control[q][tt][:TOP]]
                changed[(tt, "same set")] += set(a) == set(c)
                changed[(tt, "new")] += len(set(a) - set(c))
        print("\nHow much the feedback reorders (after vs control, top 3, first half):")
        for tt in TYPES:
            print(f"  {tt:18} top-3 set unchanged for {changed[(tt, 'same set')]}/{len(first)} incidents; "
                  f"{changed[(tt, 'new')]} targets enter the top 3 "
                  f"(of {sum(len(after[q][tt][:TOP]) for q in first)} shown)")

        print("\nTop-3 slots (first half) held by targets no incident can find relevant (an incident whose root "
              "cause has no class; an article without a classed source):")
        for tt in (*TYPES, "ALL"):
            print(f"  {tt:18} control {s_ctrl[tt]['never']:4d}/{s_ctrl[tt]['shown']}, after {s_after[tt]['never']:4d}/"
                  f"{s_after[tt]['shown']}")

        print("\nBy the incident's cause class (multi-label; all three types; P@3 control -> after, first half):")
        sizes = Counter(k for s in rel.classes.values() for k in s)
        for key, _, _ in sorted(sq.CLASSES, key=lambda c: -sizes[c[0]]):
            qs = [q for q in first if key in rel.classes[q]]
            if not qs:
                continue
            c_, a_ = summarize(control, qs)["ALL"], summarize(after, qs)["ALL"]
            print(f"  {key:13} class size {sizes[key]:3d}  incidents {len(qs):3d}  "
                  f"{c_['p3']:.3f} -> {a_['p3']:.3f} ({a_['p3'] - c_['p3']:+.3f})")
        # what the feedback encodes: a target's mean rating against how often it is relevant at all
        base = {}
        for tt in ("SIMILAR_INCIDENT", "SOLUTION"):
            for r in rated_targets:
                if r["_id"]["t"] == tt and r["_id"]["x"] in corpus.ds_of:
                    x = corpus.ds_of[r["_id"]["x"]]
                    share = statistics.mean(rel.grade(q, x) == 2 for q in eligible if q != x)
                    base.setdefault(tt, []).append((share, r["mean"], r["n"]))
        for tt, v in base.items():
            s, m, _ = map(np.array, zip(*v))
            print(f"  {tt}: a target's mean rating vs the share of all queries it is relevant to: "
                  f"Pearson r = {np.corrcoef(s, m)[0, 1]:.2f} over {len(v)} rated targets")
    finally:
        await bk.close()
    print(f"\n(run {time.perf_counter() - t_start:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--limit", type=int, default=0, help="only the first N incidents of the sequence")
    ap.add_argument("--noise", type=float, default=0.0, help="share of ratings flipped (a responder's error)")
    ap.add_argument("--samples", default="", help="write the rating pass's (half, type, features, helped) as JSON lines")
    args = ap.parse_args()
    with local_stack("ikl_feedback_bench", IKL_LOG_LEVEL="ERROR"):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
