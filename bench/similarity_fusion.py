"""How to fuse the similar-incident signals, chosen on one half of the dataset and judged on the other.

Pure functions over the candidate pools that bench/similarity_quality.py collects (one `similar()` call
per early query: the text top-50 ∪ the vector top-50, each candidate with its text relevance over the best
hit's, its cosine, its structure parts). No I/O: `study(...)` prints the tables.

Split: a row goes to the TUNE half or the HELD-OUT half by the first byte of sha256 of its twin group's
root id (the lowest dataset id among rows citing the same postmortem), so twins never straddle the halves
and the split does not depend on any seed or on the order of the file. Every choice (fusion family,
weights, structure parts) is made on TUNE alone, by mean same-cause nDCG@10; HELD-OUT is scored once.

Fusion families (each over three signals: text, semantic, structure):
- `max`     the shipped formula: text relevance / the best hit's, cosine, structure (0-1), weighted sum;
- `minmax`  each signal min-max scaled over the pool, weighted sum;
- `z`       each signal z-scored over the pool, weighted sum;
- `rrf@k`   reciprocal rank fusion: sum of w / (k + rank) over the signals' own orders (a candidate the
            text search did not return has no text rank).
Structure variants: as shipped, or without the services part (the demo's one service per incident is the
company, so a shared service mostly means a shared vendor).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any, Callable, Iterable

import numpy as np

K = 10
STEP = 0.05
RRF_KS = (10, 30, 60)
BOOTSTRAP = 10_000


# --- the split -----------------------------------------------------------------------------------

def half(root_id: str) -> str:
    """'tune' or 'held-out', from a hash of the twin group's root id (deterministic, order-free)."""
    return "tune" if hashlib.sha256(root_id.encode()).digest()[0] % 2 == 0 else "held-out"


def split(queries: Iterable[str], twins: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    tune, held = [], []
    for q in queries:
        (tune if half(min([q, *twins.get(q, ())])) == "tune" else held).append(q)
    return tune, held


# --- metrics over a ranked list of grades ------------------------------------------------------------

_DISC = 1.0 / np.log2(np.arange(2, K + 2))


def metrics(grades: list[int], ideal: list[int]) -> dict[str, float]:
    """grade 2 = same cause, 1 = same category only. nDCG2/MRR/P5 count grade 2 alone (same cause)."""
    g = np.array(grades[:K], dtype=float)
    d = _DISC[:len(g)]
    ig = np.array(sorted(ideal, reverse=True)[:K], dtype=float)
    idcg = float(((2 ** ig - 1) * _DISC[:len(ig)]).sum())
    rel2 = (g == 2).astype(float)
    idcg2 = float(_DISC[:int(min(K, sum(1 for x in ideal if x == 2)))].sum())
    hit = np.nonzero(rel2)[0]
    return {"ndcg2": float((rel2 * d).sum() / idcg2) if idcg2 else 0.0,
            "mrr": 1.0 / (hit[0] + 1) if len(hit) else 0.0,
            "p5": float(rel2[:5].sum() / 5),
            "ndcg": float(((2 ** g - 1) * d).sum() / idcg) if idcg else 0.0}


# --- signals and fusions -----------------------------------------------------------------------------

STRUCT_SHIPPED = {"services": 0.4, "category": 0.25, "namespace": 0.15, "severity": 0.1, "event_types": 0.1}
STRUCT_NO_SERVICES = {"services": 0.0, "category": 0.25 / 0.6, "namespace": 0.15 / 0.6, "severity": 0.1 / 0.6,
                      "event_types": 0.1 / 0.6}
STRUCTS = {"shipped": STRUCT_SHIPPED, "no-services": STRUCT_NO_SERVICES}


def signals(pool: list[dict[str, Any]], struct: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n × 3 raw signals [text, semantic, structure], in_text mask, has_semantic mask)."""
    f = np.zeros((len(pool), 3))
    for i, c in enumerate(pool):
        f[i] = (c["text"], c["sem"] or 0.0, sum(w * c["parts"].get(k, 0.0) for k, w in struct.items()))
    return (f, np.array([c["text"] > 0 for c in pool]), np.array([c["sem"] is not None for c in pool]))


def _ranks(x: np.ndarray, tie: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """1-based rank by x descending (ties by `tie`), inf where not mask."""
    order = np.lexsort((tie, -x))
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    return np.where(mask, r, np.inf)


def features(family: str, f: np.ndarray, in_text: np.ndarray, has_sem: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """The per-signal values the family adds up with its weights (n × 3)."""
    if family == "max":
        return f
    if family == "minmax":
        lo, hi = f.min(axis=0), f.max(axis=0)
        return (f - lo) / np.where(hi > lo, hi - lo, 1.0)
    if family == "z":
        sd = f.std(axis=0)
        return (f - f.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    if family.startswith("rrf@"):
        k = float(family[4:])
        masks = (in_text, has_sem, np.ones(len(f), bool))
        return np.stack([1.0 / (k + _ranks(f[:, j], tie, masks[j])) for j in range(3)], axis=1)
    raise ValueError(family)


def weight_grid(step: float = STEP) -> list[tuple[float, float, float]]:
    n = round(1 / step)
    return [(round(a * step, 2), round(b * step, 2), round((n - a - b) * step, 2))
            for a, b in itertools.product(range(n + 1), repeat=2) if a + b <= n]


def rank(pool: list[dict[str, Any]], family: str, weights: tuple[float, float, float],
         struct: str = "shipped") -> list[dict[str, Any]]:
    """The pool ordered by one fusion (ties by name, then id, as the service breaks them)."""
    f, in_text, has_sem = signals(pool, STRUCTS[struct])
    tie = _tie(pool)
    x = features(family, f, in_text, has_sem, tie)
    w = np.array(weights, dtype=float)
    if family == "max":  # the shipped fallback: without a vector the semantic weight moves to text
        s = np.where(has_sem, x @ w, x[:, 0] * (w[0] + w[1]) + x[:, 2] * w[2])
    else:
        s = x @ w
    return [pool[i] for i in np.lexsort((tie, -np.round(s, 10)))]


def _tie(pool: list[dict[str, Any]]) -> np.ndarray:
    keys = sorted(range(len(pool)), key=lambda i: (pool[i].get("name") or "", pool[i]["id"]))
    out = np.empty(len(pool))
    out[keys] = np.arange(len(pool))
    return out


# --- the study ---------------------------------------------------------------------------------------

class Study:
    """Scores every (family, structure, weights) on every query, once."""

    def __init__(self, pools: dict[str, list[dict[str, Any]]], grade: Callable[[str, str], int],
                 ideal: Callable[[str], list[int]], excluded: Callable[[str, str], bool]) -> None:
        self.pools, self.grade, self.ideal, self.excluded = pools, grade, ideal, excluded
        self.grid = weight_grid()
        self.configs = [(fam, st) for fam in ("max", "minmax", "z", *(f"rrf@{k}" for k in RRF_KS))
                        for st in STRUCTS]
        self.scores: dict[tuple[str, str], dict[str, np.ndarray]] = {}  # config -> metric -> (G × Q)

    def evaluate(self, q: str, ranked: list[dict[str, Any]]) -> dict[str, float]:
        kept = [c["ds"] for c in ranked if c["ds"] != q and not self.excluded(q, c["ds"])][:K]
        return metrics([self.grade(q, x) for x in kept], self.ideal(q))

    def run(self, queries: list[str]) -> None:
        W = np.array(self.grid)
        for fam, st in self.configs:
            out = {m: np.zeros((len(W), len(queries))) for m in ("ndcg2", "mrr", "p5", "ndcg")}
            for j, q in enumerate(queries):
                pool = [c for c in self.pools[q] if c["ds"] != q and not self.excluded(q, c["ds"])]
                f, in_text, has_sem = signals(pool, STRUCTS[st])
                tie = _tie(pool)
                x = features(fam, f, in_text, has_sem, tie)
                S = x @ W.T
                if fam == "max":
                    alt = np.outer(x[:, 0], W[:, 0] + W[:, 1]) + np.outer(x[:, 2], W[:, 2])
                    S = np.where(has_sem[:, None], S, alt)
                grades = np.array([self.grade(q, c["ds"]) for c in pool])
                ideal = self.ideal(q)
                for g in range(len(W)):
                    top = np.lexsort((tie, -np.round(S[:, g], 10)))[:K]
                    for m, v in metrics(grades[top].tolist(), ideal).items():
                        out[m][g, j] = v
            self.scores[(fam, st)] = out


def bootstrap(diff: np.ndarray, seed: int = 7, n: int = BOOTSTRAP) -> tuple[float, float, float]:
    """Mean of paired per-query differences and its 95 % percentile interval (resampling queries)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_t(diff: np.ndarray) -> tuple[float, float]:
    """95 % interval of the mean difference by the paired t (normal approximation for n > 30)."""
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    t = 1.96 if len(diff) > 30 else 2.04
    return float(diff.mean() - t * se), float(diff.mean() + t * se)
