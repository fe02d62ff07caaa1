"""Calibrated confidence: among recommendations scored about 0.8, about 80 % should help.

`confidence_score` is a logistic function of a recommendation's raw score (engine.calibrate). Its two
parameters start at the values fitted on the public dataset (engine.DEFAULT_CALIBRATION) and are refitted
per recommendation type from effectiveness ratings once `MIN_RATINGS` of them exist (a rating of 4-5 counts
as relevant, 1-2 as not, 3 is left out): `refit` fits by maximum likelihood (Newton's method with a small
ridge so few or separable ratings cannot run away), reports the expected calibration error before and after
(10 equal-width bins), and keeps the new parameters only when they lower it. The fits live in the
`recommendation_calibration` collection; `current` reads them (cached per process and database for a minute).
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable, Mapping

from app.backends import Backends
from app.recommendations import engine
from app.recommendations.models import RecommendationType
from app.timefmt import utcnow

MIN_RATINGS = 30
BINS = 10
RIDGE = 0.01
CACHE_SECONDS = 60.0
_cache: dict[str, tuple[float, dict[str, dict[str, float]]]] = {}  # database -> (read at, params)


def ece(pairs: Iterable[tuple[float, int]], bins: int = BINS) -> float:
    """Expected calibration error of (predicted probability, outcome 0/1) pairs: the mean over equal-width
    bins of |mean prediction - observed rate|, weighted by the bin's share."""
    pairs = list(pairs)
    if not pairs:
        return 0.0
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        group = [(p, y) for p, y in pairs if lo <= p < hi or (b == bins - 1 and p == 1.0)]
        if group:
            total += len(group) / len(pairs) * abs(sum(p for p, _ in group) / len(group)
                                                   - sum(y for _, y in group) / len(group))
    return round(total, 4)


def fit(samples: list[tuple[float, int]], start: Mapping[str, float] | None = None,
        iterations: int = 50) -> dict[str, float]:
    """Logistic a, b maximising the likelihood of (raw score, outcome) samples (ridge-regularised Newton)."""
    a, b = (start or engine.DEFAULT_CALIBRATION)["a"], (start or engine.DEFAULT_CALIBRATION)["b"]
    for _ in range(iterations):
        ga = gb = haa = hab = hbb = 0.0
        for x, y in samples:
            p = 1.0 / (1.0 + math.exp(-(a * x + b)))
            w = p * (1 - p)
            ga += (p - y) * x
            gb += p - y
            haa += w * x * x
            hab += w * x
            hbb += w
        ga += RIDGE * a
        haa += RIDGE
        hbb += RIDGE
        det = haa * hbb - hab * hab
        if det <= 1e-12:
            break
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) < 1e-7 and abs(db) < 1e-7:
            break
    return {"a": round(a, 4), "b": round(b, 4)}


async def current(bk: Backends) -> dict[str, dict[str, float]]:
    """Calibration parameters per recommendation type (the dataset default where none was refitted)."""
    at, fitted = _cache.get(bk.mongo.name, (0.0, {}))
    if time.monotonic() - at > CACHE_SECONDS:
        docs = await bk.mongo.recommendation_calibration.find({}).to_list(None)
        fitted = {d["_id"]: {"a": d["a"], "b": d["b"]} for d in docs}
        _cache[bk.mongo.name] = (time.monotonic(), fitted)
    return {t.value: fitted.get(t.value, engine.DEFAULT_CALIBRATION) for t in RecommendationType}


async def refit(bk: Backends) -> dict[str, dict[str, Any]]:
    """Refit each type from its ratings; returns per type {ratings, ece_before, ece_after, a, b, kept}."""
    params = await current(bk)
    report: dict[str, dict[str, Any]] = {}
    for t in RecommendationType:
        rows = await bk.mongo.recommendations.find(
            {"recommendation_type": t.value, "effectiveness_rating": {"$in": [1, 2, 4, 5]},
             "raw_score": {"$type": "number"}}, {"raw_score": 1, "effectiveness_rating": 1}).to_list(None)
        samples = [(r["raw_score"], int(r["effectiveness_rating"] >= 4)) for r in rows]
        entry: dict[str, Any] = {"ratings": len(samples), **params[t.value], "kept": False}
        if len(samples) >= MIN_RATINGS:
            new = fit(samples, params[t.value])
            before = ece((engine.calibrate(x, params[t.value]), y) for x, y in samples)
            after = ece((engine.calibrate(x, new), y) for x, y in samples)
            entry.update(ece_before=before, ece_after=after)
            if after < before:
                entry.update(new, kept=True)
                await bk.mongo.recommendation_calibration.update_one(
                    {"_id": t.value}, {"$set": {**new, "ratings": len(samples), "ece": after, "fitted_at": utcnow()}},
                    upsert=True)
        report[t.value] = entry
    _cache.pop(bk.mongo.name, None)
    return report
