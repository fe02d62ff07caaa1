"""Calibrated confidence that discriminates: `confidence_score` is the probability that a responder rates
the recommendation helpful (4-5 of 5) or applies it.

Each type has a logistic model over its evidence features (engine.FEATURES: the fused similarity, the
meaning and word overlap, shared services and category, whether a fix is known, how surely it is a
near-duplicate, for an article how far it is written from the look-alikes, and the feedback its target
received), `engine.confidence`. The models start at a prior (engine.DEFAULT_MODELS) and are refitted
per type from ratings once `MIN_RATINGS` exist (4-5 helped, 1-2 did not, 3 left out; an applied, unrated
recommendation counts as helped): `fit` maximises the likelihood with a ridge penalty that pulls each
weight toward the prior (few or separable ratings cannot run away; a feature the ratings say nothing about keeps its prior weight). A refit is kept only when it
predicts better out of sample: the cross-validated log loss of refitting (FOLDS folds, each incident's
ratings in one fold, chosen by a hash of its id: the same ratings always give the same decision) must beat
the prior's log loss on the same ratings, so a fit that only memorises is refused. The yardstick is the
prior, never the current fit: that fit learnt from most of these ratings, so its loss on them is in sample
and no honest out-of-sample figure beats it — the first model kept would stay for ever (the demo's article
model stayed at its 42-rating fit with 60 ratings in, its cross-validated 0.528 against an in-sample 0.495
while the prior scored 0.694). The report gives the ECE (10 equal-width bins) and the
AUC before and after: a confidence can be perfectly calibrated and still separate nothing (everything at
the base rate), so both are measured. Fits live in `recommendation_calibration`; `current` reads them
(cached per process and database for a minute). Each stored recommendation keeps its features
(`confidence_features`) for this.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any, Iterable, Mapping

import numpy as np

from app import periodic
from app.backends import Backends
from app.recommendations import engine
from app.recommendations.models import RecommendationType
from app.timefmt import utcnow

MIN_RATINGS = 30
FOLDS = 5
BINS = 10
RIDGE = 1.0  # pull toward the prior, in units of one rating's log loss per unit of squared weight change
CACHE_SECONDS = 60.0
_cache: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}  # database -> (read at, models)


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


def auc(pairs: Iterable[tuple[float, int]]) -> float | None:
    """Probability that a helpful recommendation is more confident than an unhelpful one (ties half)."""
    pairs = list(pairs)
    pos = [p for p, y in pairs if y]
    neg = [p for p, y in pairs if not y]
    if not pos or not neg:
        return None
    x = np.array(pos + neg)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    xs = x[order]
    i = 0
    while i < len(xs):  # average ranks over ties
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return round(float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))), 4)


def _matrix(samples: list[tuple[Mapping[str, float], int]], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[float(f.get(n, 0.0)) for n in names] for f, _ in samples], dtype=float).reshape(len(samples), len(names))
    y = np.array([float(o) for _, o in samples])
    return x, y


def fit(samples: list[tuple[Mapping[str, float], int]], prior: Mapping[str, Any], *, ridge: float = RIDGE,
        iterations: int = 50) -> dict[str, Any]:
    """Logistic model {b, w} maximising the likelihood of (features, outcome) samples, ridge-pulled toward
    `prior` (Newton's method)."""
    names = list(prior["w"])
    x, y = _matrix(samples, names)
    x1 = np.hstack([np.ones((len(samples), 1)), x])
    theta0 = np.array([prior["b"], *[prior["w"][n] for n in names]], dtype=float)
    theta = theta0.copy()
    pen = np.full(len(theta), ridge)
    pen[0] = ridge * 0.1  # the intercept moves freely (the base rate)
    def objective(t: np.ndarray) -> float:
        z = np.clip(x1 @ t, -30, 30)
        return float(np.sum(np.logaddexp(0, z) - y * z) + 0.5 * np.sum(pen * (t - theta0) ** 2))

    current = objective(theta)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x1 @ theta, -30, 30)))
        grad = x1.T @ (p - y) + pen * (theta - theta0)
        hess = (x1 * (p * (1 - p))[:, None]).T @ x1 + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-4:  # damped: never a step that makes the fit worse
            trial = theta - scale * step
            value = objective(trial)
            if value <= current:
                break
            scale /= 2
        else:
            break
        theta, current = trial, value
        if np.abs(scale * step).max() < 1e-7:
            break
    return {"b": round(float(theta[0]), 4), "w": {n: round(float(v), 4) for n, v in zip(names, theta[1:])}}


def log_loss(samples: list[tuple[Mapping[str, float], int]], model: Mapping[str, Any]) -> float:
    eps = 1e-6
    total = 0.0
    for f, y in samples:
        p = min(1 - eps, max(eps, engine.confidence(f, model)))
        total -= math.log(p) if y else math.log(1 - p)
    return total / max(1, len(samples))


def fold_of(group: str, folds: int = FOLDS) -> int:
    """The fold of an incident's ratings: a hash of its id (never a random split, never one incident in two)."""
    return int(hashlib.sha256(str(group).encode()).hexdigest()[:8], 16) % folds


def _cross_validated(samples: list[tuple[Mapping[str, float], int]], groups: list[str],
                     prior: Mapping[str, Any]) -> float:
    """Cross-validated log loss of refitting: each fold predicted by a fit on the others."""
    folds = [fold_of(g) for g in groups]
    total, n = 0.0, 0
    for k in sorted(set(folds)):
        held = [s for s, f in zip(samples, folds) if f == k]
        rest = [s for s, f in zip(samples, folds) if f != k]
        if not rest:
            return log_loss(samples, prior)  # one incident only: nothing to learn from out of sample
        total += log_loss(held, fit(rest, prior)) * len(held)
        n += len(held)
    return total / max(1, n)


async def current(bk: Backends) -> dict[str, dict[str, Any]]:
    """The confidence model per recommendation type (the prior where none was refitted)."""
    at, fitted = _cache.get(bk.mongo.name, (0.0, {}))
    if time.monotonic() - at > CACHE_SECONDS:
        docs = await bk.mongo.recommendation_calibration.find({}).to_list(None)
        fitted = {d["_id"]: {"b": d["b"], "w": d["w"]} for d in docs
                  if isinstance(d.get("w"), dict) and d.get("model_version") == engine.MODEL_VERSION}
        _cache[bk.mongo.name] = (time.monotonic(), fitted)
    return {t.value: fitted.get(t.value, engine.DEFAULT_MODELS[t.value]) for t in RecommendationType}


async def samples_for(bk: Backends, rec_type: str) -> tuple[list[tuple[dict[str, float], int]], list[str]]:
    """(features, helped) of the rated or applied recommendations of a type, in a stable order, and the
    incident each is for."""
    rows = await bk.mongo.recommendations.find(
        {"recommendation_type": rec_type, "confidence_features": {"$type": "object"},
         "$or": [{"effectiveness_rating": {"$in": [1, 2, 4, 5]}},
                 {"is_applied": True, "effectiveness_rating": None}]},
        {"confidence_features": 1, "effectiveness_rating": 1, "is_applied": 1, "created_at": 1,
         "incident": 1}).to_list(None)
    rows.sort(key=lambda r: (str(r.get("created_at")), str(r["_id"])))
    return ([(r["confidence_features"], int(r.get("effectiveness_rating") is None or r["effectiveness_rating"] >= 4))
             for r in rows], [str(r.get("incident")) for r in rows])


@periodic.every(lambda s: s.recommendation_calibration_refit_seconds, name="confidence calibration refit")
async def refit(bk: Backends) -> dict[str, dict[str, Any]]:
    """Refit each type from its ratings; returns per type {ratings, ece_before, ece_after, auc_before,
    auc_after (the current model's figures, then the refit's), loss_before (the current model's, in sample
    where it was fitted on these ratings), loss_prior, loss_after (the refit's, cross-validated), kept, b, w}."""
    models = await current(bk)
    report: dict[str, dict[str, Any]] = {}
    for t in RecommendationType:
        samples, groups = await samples_for(bk, t.value)
        entry: dict[str, Any] = {"ratings": len(samples), **models[t.value], "kept": False}
        if len(samples) >= MIN_RATINGS:
            prior = engine.DEFAULT_MODELS[t.value]
            new = fit(samples, prior)
            before = [(engine.confidence(f, models[t.value]), y) for f, y in samples]
            after = [(engine.confidence(f, new), y) for f, y in samples]
            loss_prior, loss_after = log_loss(samples, prior), _cross_validated(samples, groups, prior)
            entry.update(ece_before=ece(before), ece_after=ece(after), auc_before=auc(before), auc_after=auc(after),
                         loss_before=round(log_loss(samples, models[t.value]), 4), loss_prior=round(loss_prior, 4),
                         loss_after=round(loss_after, 4))
            if loss_after < loss_prior:
                entry.update(new, kept=True)
                await bk.mongo.recommendation_calibration.replace_one(
                    {"_id": t.value}, {**new, "ratings": len(samples), "ece": entry["ece_after"],
                                       "auc": entry["auc_after"], "model_version": engine.MODEL_VERSION,
                                       "fitted_at": utcnow()}, upsert=True)
        report[t.value] = entry
    _cache.pop(bk.mongo.name, None)
    return report
