"""Benchmark: learning-pattern mining (app/patterns/mining.py) on the public dataset, in-process, no servers.

    .venv/bin/python bench/pattern_mining.py [--sizes 10000,100000] [--seed 7]

Each of the 200 dataset rows becomes a resolved incident on its own (`app.demo.incident_from_row`, timeline
included; `_id` = the dataset id), cause and fix texts embedded with app.embeddings (all-MiniLM-L6-v2).
Reported at the defaults (min_frequency 3):
- patterns per type, and per ROOT_CAUSE pattern: size, purity by `category` (share of the most common
  category) and by root-cause class (share of members holding the pattern's most common class of
  bench/similarity_quality.py's keyword `CLASSES`; members without a class count as misses), and the
  members that are twins (rows citing the same postmortem, see that bench's caveat);
- coverage: share of the incidents in some ROOT_CAUSE pattern;
- a cut / linkage grid (purity, coverage, patterns) — how the defaults were chosen;
- stability: a re-run (and a shuffled input), and 180 then 200 incidents: share of the 180-run's
  patterns that `match` pairs (member Jaccard >= 0.5) with a 200-run pattern;
- mining time for 200 incidents and for synthetic corpora (copies of the rows, cause vectors perturbed
  with Gaussian noise and re-normalised, services renamed per copy group), exact vs leader-blocked agreement.
Caveat (as in similarity_quality): the demo's titles contain the root cause, so triggers taken from titles
repeat cause words; 40 rows share another row's postmortem (twins) and cluster with it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT  # noqa: F401,E402 - puts the project on sys.path
from similarity_quality import CLASSES, Relevance  # noqa: E402


def build_incidents() -> tuple[list[dict], Relevance]:
    from app import demo
    from app.demo.facts import read_all
    from app.incidents.service import _event_doc

    rows = demo.load_rows()
    rel = Relevance(rows)
    facts = read_all(rows)
    incs = []
    for row, f in zip(rows, facts):
        inc = demo.incident_from_row(row, name=f"INC-{f.id}")
        doc = {k: (v.value if hasattr(v, "value") else v) for k, v in inc.model_dump(mode="python").items()}
        doc.update(_id=f.id, timeline=[_event_doc(e) for e in inc.timeline], created_at=doc.get("detected_at"))
        incs.append(doc)
    return incs, rel


def embed_all(incs: list[dict]) -> tuple[dict, dict]:
    from app import embeddings
    from app.patterns.mining import cause_text, fix_text

    ids = [i["_id"] for i in incs]
    cv = embeddings.embed([cause_text(i) for i in incs])
    with_fix = [i for i in incs if fix_text(i)]
    fv = embeddings.embed([fix_text(i) for i in with_fix]) if with_fix else np.zeros((0, 384), np.float32)
    return dict(zip(ids, cv)), {i["_id"]: v for i, v in zip(with_fix, fv)}


def purity(members: list[str], label: dict[str, set[str]]) -> tuple[float, str]:
    c = Counter(x for m in members for x in label[m])
    if not c:
        return 0.0, "-"
    top, _ = min(c.items(), key=lambda kv: (-kv[1], kv[0]))
    return sum(1 for m in members if top in label[m]) / len(members), top


def quality(cands, incs, rel) -> dict:
    cat = {i["_id"]: {i["category"]} for i in incs}
    cls = {i: rel.classes[i] for i in cat}
    rc = [c for c in cands if c.pattern_type == "ROOT_CAUSE"]
    covered = {m for c in rc for m in c.source_incidents}
    pc = [purity(list(c.source_incidents), cat)[0] for c in rc]
    pk = [purity(list(c.source_incidents), cls)[0] for c in rc]
    w = [c.frequency for c in rc]
    wavg = (lambda xs: sum(x * n for x, n in zip(xs, w)) / sum(w)) if w else (lambda xs: float("nan"))
    # a random baseline: the same pattern sizes drawn at random from the incidents
    rnd = random.Random(1)
    ids = sorted(cat)
    base = [purity(rnd.sample(ids, n), cls)[0] for n in w for _ in range(20)]
    return {"patterns": len(rc), "coverage": len(covered) / len(incs), "purity_cat": wavg(pc),
            "purity_class": wavg(pk), "base_class": statistics.mean(base) if base else float("nan")}


def stability(a, b) -> float:
    from app.patterns.mining import match

    existing = [{"_id": c.key, "pattern_type": c.pattern_type, "source_incidents": list(c.source_incidents)}
                for c in a]
    if not existing:
        return float("nan")
    pairs = match(existing, b)
    return sum(1 for e, _ in pairs if e is not None) / len(existing)


def synthetic(incs, vectors, n, seed, noise=0.03):
    """n incidents: copies of the rows; copy k of a row keeps its texts, gets services suffixed by its copy
    group (k % 50) and its vector perturbed (N(0, noise) per dimension, re-normalised: cos ~0.86 to the
    original at noise 0.03)."""
    rng = np.random.default_rng(seed)
    out, vec = [], {}
    for k in range(n):
        src = incs[k % len(incs)]
        d = dict(src, _id=f"{src['_id']}#{k}",
                 affected_services=[f"{s}-{k % 50}" for s in src.get("affected_services") or []])
        v = vectors[src["_id"]] + rng.normal(0, noise, vectors[src["_id"]].shape).astype(np.float32)
        out.append(d)
        vec[d["_id"]] = v / np.linalg.norm(v)
    return out, vec


def main() -> None:
    from app.patterns import mining

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    incs, rel = build_incidents()
    t = time.perf_counter()
    vectors, fix_vectors = embed_all(incs)
    print(f"incidents: {len(incs)}; embedded cause + {len(fix_vectors)} fix texts in {time.perf_counter() - t:.1f} s")
    print("root-cause classes (bench/similarity_quality.py CLASSES): "
          + ", ".join(f"{k} {sum(1 for s in rel.classes.values() if k in s)}" for k, _, _ in CLASSES)
          + f", none {sum(1 for s in rel.classes.values() if not s)}")

    print("\n== grid (ROOT_CAUSE only; purity weighted by pattern size; class baseline = random groups of the same sizes)")
    print(f"{'linkage':9} {'cut':>5} {'patterns':>8} {'coverage':>8} {'pur.cat':>7} {'pur.cls':>7} {'base':>5}")
    for linkage in ("average", "complete"):
        for cut in (0.40, 0.45, 0.50, 0.55, 0.60, 0.65):
            c = mining.mine(incs, vectors, linkage=linkage, cause_cut=cut, kinds=("ROOT_CAUSE",))
            q = quality(c, incs, rel)
            print(f"{linkage:9} {cut:5.2f} {q['patterns']:8d} {q['coverage']:8.2f} {q['purity_cat']:7.2f} "
                  f"{q['purity_class']:7.2f} {q['base_class']:5.2f}")

    t = time.perf_counter()
    cands = mining.mine(incs, vectors, fix_vectors=fix_vectors)
    dt = (time.perf_counter() - t) * 1000
    q = quality(cands, incs, rel)
    print(f"\n== defaults (cause_cut {mining.CAUSE_CUT}, average linkage, min_frequency 3): mined in {dt:.0f} ms")
    print("patterns by type: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(c.pattern_type for c in cands).items())))
    print(f"ROOT_CAUSE: {q['patterns']} patterns, coverage {q['coverage']:.2f}, purity by category {q['purity_cat']:.2f}, "
          f"by cause class {q['purity_class']:.2f} (random groups {q['base_class']:.2f})")
    cat = {i["_id"]: {i["category"]} for i in incs}
    for c in cands:
        if c.pattern_type != "ROOT_CAUSE":
            print(f"  {c.pattern_type:10} n={c.frequency} conf {c.confidence_score:.2f} | {c.name[:90]}")
            continue
        pc, tc = purity(list(c.source_incidents), cat)
        pk, tk = purity(list(c.source_incidents), rel.classes)
        twins = sum(1 for m in c.source_incidents if rel.twins[m] & set(c.source_incidents))
        print(f"  n={c.frequency:2d} coh {c.cohesion:.2f} conf {c.confidence_score:.2f} cat {pc:.2f} ({tc}) "
              f"class {pk:.2f} ({tk}) twins {twins} | {c.name[:70]}")
    ex = next((c for c in cands if c.pattern_type == "ROOT_CAUSE"), None)
    if ex:
        print("example pattern:")
        for k, v in ex.content().items():
            print(f"    {k}: {v if not isinstance(v, list) or len(v) < 8 else v[:8] + ['...']}")

    print("\n== stability (share of the first run's patterns matched, member Jaccard >= 0.5)")
    again = mining.mine(list(reversed(incs)), vectors, fix_vectors=fix_vectors)
    print(f"re-run on reversed input: identical {[c.key for c in again] == [c.key for c in cands]}, "
          f"matched {stability(cands, again):.2f}")
    rnd = random.Random(args.seed)
    for trial in range(3):
        ids = [i["_id"] for i in incs]
        rnd.shuffle(ids)
        keep = set(ids[:180])
        small = mining.mine([i for i in incs if i["_id"] in keep], vectors, fix_vectors=fix_vectors)
        s_rc = [c for c in small if c.pattern_type == "ROOT_CAUSE"]
        b_rc = [c for c in cands if c.pattern_type == "ROOT_CAUSE"]
        print(f"180 -> 200 (random 180, trial {trial + 1}): {len(s_rc)} -> {len(b_rc)} ROOT_CAUSE patterns, "
              f"{stability(s_rc, b_rc):.2f} of the 180-run's kept")

    print("\n== time (ROOT_CAUSE + DETECTION; synthetic copies, cause vectors perturbed)")
    for n in [int(s) for s in args.sizes.split(",") if s]:
        si, sv = synthetic(incs, vectors, n, args.seed)
        t = time.perf_counter()
        got = mining.mine(si, sv, kinds=("ROOT_CAUSE", "DETECTION"))
        dt = time.perf_counter() - t
        rc = [c for c in got if c.pattern_type == "ROOT_CAUSE"]
        cov = len({m for c in rc for m in c.source_incidents}) / n
        line = f"n={n:6d}: {dt:6.1f} s, {len(rc)} ROOT_CAUSE patterns, coverage {cov:.2f}"
        if n <= 10000:
            t = time.perf_counter()
            ex = mining.mine(si, sv, kinds=("ROOT_CAUSE",), exact_max=n)
            dte = time.perf_counter() - t
            ex_rc = [c for c in ex if c.pattern_type == "ROOT_CAUSE"]
            line += (f"; exact: {dte:.1f} s, {len(ex_rc)} patterns, blocked patterns matched by exact "
                     f"{stability(rc, ex_rc):.2f}, exact matched by blocked {stability(ex_rc, rc):.2f}")
        print(line, flush=True)
    t = time.perf_counter()
    mining.mine(incs, vectors, fix_vectors=fix_vectors)
    print(f"n=   200: {(time.perf_counter() - t) * 1000:.0f} ms (all three types)")


if __name__ == "__main__":
    main()
