"""Benchmark: are the predictions for an incident in flight (app/predictions/service.py) calibrated?

    .venv/bin/python bench/predictions_bench.py          (about 2-4 minutes on these 2-core machines)

Own local stack (bench/harness.py); the 200 dataset rows seeded as the demo does, indexed and embedded
(bench/similarity_quality.py `seed`). Every dataset incident is then asked as if in flight: its early form
(`early_query` with `triage=False`: no category, tags, namespace, root cause, resolution or description, the
events known before the cause) keeps its own id, so the stored incident is never its own look-alike, and its
twins (rows citing the same postmortem) are dropped from the look-alikes. Look-alikes are the resolved ones,
scored by the shared hybrid similarity, as the service does (`look_alikes`). The base rates leave the incident
out.

Split: the incidents are split in two halves by a hash of their dataset id. ALPHA (shrinkage toward the base
rates), GAMMA (the score's exponent) and MIN_SCORE are chosen by log-loss on the **tuning** half; every figure
reported is on the **held-out** half, for the fitted values and for the shipped ones, beside the base rates
alone (no look-alike: what a prediction with no evidence would say):
- top-1 accuracy, log-loss, Brier score, ECE (10 equal-width bins of the top category's probability) and the
  reliability table (n, mean predicted, observed accuracy);
- time to resolve: how often the incident's real detection-to-resolution time was at most the predicted p50
  (ideal 50 %) and at most p90 (ideal 90 %), over the incidents with a prediction.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
from collections import Counter
from typing import Any

import numpy as np

from harness import local_stack  # noqa: E402 - puts the project on sys.path
from similarity_quality import Relevance, dataset_id, early_query, seed  # noqa: E402

ALPHAS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
GAMMAS = (0.5, 1.0, 2.0, 3.0, 4.0)
MIN_SCORES = (0.15, 0.25, 0.35)
BINS = 10


def held_out(ds: str) -> bool:
    return int(hashlib.sha256(ds.encode()).hexdigest(), 16) % 2 == 1


def score(cases: list[dict[str, Any]], alpha: float, gamma: float, min_score: float, *, prior_only: bool = False):
    from app.predictions.service import distribution

    rows = []
    for c in cases:
        look = [] if prior_only else [(cat, s) for cat, s in c["look"] if s >= min_score]
        p = distribution(look, c["prior"], alpha=alpha, gamma=gamma)
        top = max(p.items(), key=lambda kv: (kv[1], kv[0]))
        rows.append({"p_true": p.get(c["truth"], 0.0), "top": top[1], "hit": top[0] == c["truth"],
                     "brier": sum((p.get(k, 0.0) - (k == c["truth"])) ** 2 for k in set(p) | {c["truth"]})})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    n = len(rows)
    ll = -sum(math.log(max(r["p_true"], 1e-6)) for r in rows) / n
    top, hit = np.array([r["top"] for r in rows]), np.array([r["hit"] for r in rows], dtype=float)
    ece = 0.0
    table = []
    for b in range(BINS):
        lo, hi = b / BINS, (b + 1) / BINS
        sel = (top >= lo) & ((top < hi) if b < BINS - 1 else (top <= hi))
        if sel.any():
            ece += sel.sum() / n * abs(top[sel].mean() - hit[sel].mean())
            table.append((f"{lo:.1f}-{hi:.1f}", int(sel.sum()), float(top[sel].mean()), float(hit[sel].mean())))
    return {"n": n, "accuracy": float(hit.mean()), "log_loss": ll, "brier": sum(r["brier"] for r in rows) / n,
            "ece": float(ece), "table": table}


def show(name: str, s: dict[str, Any]) -> None:
    print(f"  {name:<34} n {s['n']:3d}  top-1 {s['accuracy']:.3f}  log-loss {s['log_loss']:.3f}  "
          f"Brier {s['brier']:.3f}  ECE {s['ece']:.3f}")


async def collect(bk, rel: Relevance, user, *, learned: bool) -> list[dict[str, Any]]:
    from app.incidents import similarity
    from app.predictions import service
    from app.predictions.service import RESOLVED, duration

    await asyncio.sleep(similarity.RECENT_SECONDS + 0.5)  # scored by the engine, as in steady service
    docs = await bk.mongo.incidents.find({}).to_list(None)
    by_ds = {dataset_id(d): d for d in docs}
    resolved = [d for d in docs if d.get("status") in RESOLVED and d.get("category")]
    counts = Counter(d["category"] for d in resolved)
    cases = []
    for ds in rel.ids:
        doc = by_ds[ds]
        if doc.get("status") not in RESOLVED or not doc.get("category"):
            continue  # the in-flight demo incidents have no known answer
        if learned:  # the stored incident, its cause known: only what is predicted (and derived from it) hidden
            q = {**doc, "category": None, "namespace": None, "tags": []}
        else:
            q, _ = early_query(doc, rel.facts[ds].root_cause, triage=False)
        twins = rel.twins[ds]
        matches = [m for m in await service.look_alikes(bk, q, user) if dataset_id(m.doc) not in twins]
        left = counts - Counter({doc["category"]: 1})
        total = sum(left.values())
        cases.append({"ds": ds, "form": "learned" if learned else "early", "truth": doc["category"], "prior": {k: v / total for k, v in left.items() if v},
                      "look": [(m.doc.get("category") or "", m.score) for m in matches],
                      "durations": [(d, m.score) for m in matches if (d := duration(m.doc)) is not None],
                      "true_ttr": duration(doc)})
    return cases


def ttr_coverage(cases: list[dict[str, Any]], min_score: float) -> str:
    from app.predictions.service import MIN_SAMPLES, weighted_quantile

    below50 = below90 = n = 0
    for c in cases:
        samples = [(d, s) for (d, s) in c["durations"] if s >= min_score]
        if c["true_ttr"] is None or len(samples) < MIN_SAMPLES:
            continue
        n += 1
        below50 += c["true_ttr"] <= weighted_quantile(samples, 0.5)
        below90 += c["true_ttr"] <= weighted_quantile(samples, 0.9)
    if not n:
        return "no incident had enough look-alikes with a resolution time"
    return (f"{n} incidents with a p50/p90: real time ≤ p50 for {below50 / n:.0%} (ideal 50%), ≤ p90 for "
            f"{below90 / n:.0%} (ideal 90%)")


async def run(args) -> None:
    from app import demo
    from app.backends import connect
    from app.predictions import service
    from app.settings import get_settings

    rows = demo.load_rows()
    rel = Relevance(rows)
    bk = connect(get_settings(), jobs=True)
    try:
        user = await seed(bk, rows)
        cases = await collect(bk, rel, user, learned=False) + await collect(bk, rel, user, learned=True)
    finally:
        await bk.close()
    tune = [c for c in cases if not held_out(c["ds"])]
    test = [c for c in cases if held_out(c["ds"])]
    print(f"\n{len(cases) // 2} resolved incidents with a category, each asked twice (early; cause learned): "
          f"{len(tune) // 2} to tune on, {len(test) // 2} held out; categories "
          f"{dict(Counter(c['truth'] for c in cases if c['form'] == 'early').most_common())}")
    best = min(((a, g, m) for a in ALPHAS for g in GAMMAS for m in MIN_SCORES),
               key=lambda x: summary(score(tune, *x))["log_loss"])
    print(f"fitted on the tuning half, both forms (log-loss): ALPHA {best[0]}, GAMMA {best[1]}, MIN_SCORE {best[2]}"
          f"  (shipped: ALPHA {service.ALPHA}, GAMMA {service.GAMMA}, MIN_SCORE {service.MIN_SCORE})")
    for form, label in (("early", "early (symptoms only: title, first events)"),
                        ("learned", "learned (its root cause and resolution known)")):
        part = [c for c in test if c["form"] == form]
        look_n = [sum(1 for _, s in c["look"] if s >= service.MIN_SCORE) for c in part]
        print(f"\nheld-out half, {label}: look-alikes per incident median {float(np.median(look_n)):.0f}, "
              f"none for {sum(1 for n in look_n if n == 0)} of {len(part)}")
        show("base rates only (no evidence)", summary(score(part, 1.0, 1.0, 1.0, prior_only=True)))
        show("fitted", summary(score(part, *best)))
        shipped = summary(score(part, service.ALPHA, service.GAMMA, service.MIN_SCORE))
        show("shipped", shipped)
        print(f"  reliability of the shipped model (top category):  {'bin':<9} {'n':>4} {'predicted':>10} "
              f"{'observed':>9}")
        for b, n, pred, obs in shipped["table"]:
            print(f"  {'':<50}{b:<9} {n:>4} {pred:>10.3f} {obs:>9.3f}")
        print(f"  time to resolve (shipped MIN_SCORE): {ttr_coverage(part, service.MIN_SCORE)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args()
    with local_stack("ikl_bench_predictions"):
        asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
