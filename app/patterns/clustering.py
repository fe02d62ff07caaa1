"""Clustering incidents for learning patterns: the similarity of two incidents as an inner product of
feature rows, exact average-linkage agglomeration, and the leader pass that makes it scale (the method
and its measurements: app/patterns/mining.py's docstring). Pure numpy, no I/O."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

W_COS, W_CAT, W_SVC = 0.8, 0.1, 0.1  # similarity weights (sum 1: two identical incidents score 1)
CAUSE_CUT = 0.40        # ROOT_CAUSE: stop merging below this average linkage. bench/pattern_mining.py grid,
                        # twins skipped: class purity 0.86 (random groups 0.49), category 0.95, coverage 0.41;
                        # 0.45 kept the purity (0.85) at 0.16 coverage, 0.35 covers 0.59 at purity 0.74
FIX_CUT = 0.55          # RESOLUTION: same, over fix vectors
LEADER_CUT = 0.35       # scalable first pass: join a leader at >= this (below the cuts: blocks stay coarse)
EXACT_MAX = 3000        # up to this many incidents (or per block) the clustering is exact
LEADER_CHUNK = 1024     # rows per matrix product in the leader pass


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def features(incs: Sequence[dict], vecs: Sequence[np.ndarray]) -> np.ndarray:
    """Rows whose inner product is `sim` (module docstring)."""
    V = np.stack([_unit(v) for v in vecs]).astype(np.float32) if vecs else np.zeros((0, 1), np.float32)
    cats = sorted({str(i.get("category") or "") for i in incs} - {""})
    svcs = sorted({str(s) for i in incs for s in i.get("affected_services") or []})
    ci, si = {c: k for k, c in enumerate(cats)}, {s: k for k, s in enumerate(svcs)}
    C = np.zeros((len(incs), max(len(cats), 1)), np.float32)
    S = np.zeros((len(incs), max(len(svcs), 1)), np.float32)
    for r, inc in enumerate(incs):
        if (c := str(inc.get("category") or "")) in ci:
            C[r, ci[c]] = 1.0
        ss = {str(s) for s in inc.get("affected_services") or []}
        for s in ss:
            S[r, si[s]] = 1.0 / math.sqrt(len(ss))
    return np.hstack([math.sqrt(W_COS) * V, math.sqrt(W_CAT) * C, math.sqrt(W_SVC) * S]).astype(np.float32)


def agglomerate(sums: np.ndarray, sizes: np.ndarray, cut: float, linkage: str = "average") -> list[list[int]]:
    """Agglomerative clustering of units (rows of `sums`, each the sum of `sizes` feature rows) until the
    best linkage is below `cut`. Average linkage between units = <sum_a, sum_b> / (n_a n_b) (exact);
    complete linkage is min over the merged rows (exact only for single-row units). Ties: lowest index."""
    m = len(sizes)
    if m == 0:
        return []
    if m == 1:
        return [[0]]
    w = sizes.astype(np.float64)
    M = (sums @ sums.T).astype(np.float64) / np.outer(w, w)
    np.fill_diagonal(M, -np.inf)
    members: dict[int, list[int]] = {i: [i] for i in range(m)}
    best, barg = M.max(1), M.argmax(1)
    while True:
        a = int(np.argmax(best))
        if not best[a] >= cut:
            break
        b = int(barg[a])
        lo, hi = min(a, b), max(a, b)
        if linkage == "complete":
            new = np.minimum(M[lo], M[hi])
        else:
            new = (w[lo] * M[lo] + w[hi] * M[hi]) / (w[lo] + w[hi])
        w[lo] += w[hi]
        new[lo] = new[hi] = -np.inf
        M[lo, :] = new
        M[:, lo] = new
        M[hi, :] = -np.inf
        M[:, hi] = -np.inf
        members[lo] += members.pop(hi)
        best[hi], barg[hi] = -np.inf, hi
        stale = np.where((barg == lo) | (barg == hi))[0]
        stale = np.union1d(stale, [lo])
        stale = stale[stale != hi]
        best[stale], barg[stale] = M[stale].max(1), M[stale].argmax(1)
        # other rows: the merged row is an average (or min) of two values each <= their best: no change
    return [sorted(v) for _, v in sorted(members.items())]


def leaders(F: np.ndarray, cut: float, chunk: int = LEADER_CHUNK) -> list[list[int]]:
    """One pass of leader clustering in row order: a row joins its most similar leader (sim >= cut), else
    becomes one. Returns the blocks (row indices), in leader order."""
    lead_rows: list[int] = []
    L = np.zeros((0, F.shape[1]), np.float32)
    blocks: list[list[int]] = []
    for start in range(0, len(F), chunk):
        X = F[start:start + chunk]
        if len(L):
            S = X @ L.T
            arg, mx = S.argmax(1), S.max(1)
        else:
            arg, mx = np.zeros(len(X), int), np.full(len(X), -np.inf)
        new_lead: list[int] = []  # local indices of leaders made in this chunk
        for r in range(len(X)):
            best_s, best_k = (float(mx[r]), int(arg[r])) if len(L) else (-np.inf, -1)
            if new_lead:
                s2 = X[new_lead] @ X[r]
                j = int(np.argmax(s2))
                if float(s2[j]) > best_s:
                    best_s, best_k = float(s2[j]), len(lead_rows) - len(new_lead) + j
            if best_s >= cut:
                blocks[best_k].append(start + r)
            else:
                new_lead.append(r)
                lead_rows.append(start + r)
                blocks.append([start + r])
        if new_lead:
            L = np.vstack([L, X[new_lead]])
    return blocks


def cluster(F: np.ndarray, cut: float, *, linkage: str = "average", exact_max: int = EXACT_MAX,
            leader_cut: float = LEADER_CUT) -> list[list[int]]:
    """Clusters of rows of F (module docstring: exact up to exact_max rows, else leader blocks, exact within
    each, then the multi-member clusters merged across blocks)."""
    n = len(F)
    if n <= exact_max:
        return agglomerate(F, np.ones(n), cut, linkage)
    out: list[list[int]] = []
    pending = [(b, leader_cut) for b in leaders(F, leader_cut)]
    while pending:
        block, lc = pending.pop()
        if len(block) > exact_max and lc < 0.95:
            sub = leaders(F[block], min(lc + 0.05, 0.95))
            if len(sub) > 1:
                pending += [([block[i] for i in s], lc + 0.05) for s in sub]
                continue
        for start in range(0, len(block), exact_max):  # a block that could not be split: in order
            part = block[start:start + exact_max]
            out += [[part[i] for i in c] for c in agglomerate(F[part], np.ones(len(part)), cut, linkage)]
    multi = [c for c in out if len(c) > 1]
    single = [c for c in out if len(c) == 1]
    if 1 < len(multi) <= exact_max:
        sums = np.stack([F[c].sum(0) for c in multi])
        merged = agglomerate(sums, np.array([len(c) for c in multi], float), cut, "average")
        multi = [sorted(i for u in g for i in multi[u]) for g in merged]
    return sorted(multi + single, key=lambda c: c[0])


def cohesion(F: np.ndarray) -> float:
    """Mean pairwise inner product of the rows (1.0 for a single row)."""
    n = len(F)
    if n < 2:
        return 1.0
    s = F.sum(0)
    return float((s @ s - (F * F).sum()) / (n * (n - 1)))
