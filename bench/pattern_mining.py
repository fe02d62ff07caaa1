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
- duplicates: the 40 twin rows (citing the postmortem of an earlier row; `duplicate_of` as the demo closes
  them) counted, as before, and skipped, as mining now does: patterns, frequencies, coverage;
- names: every pattern's name as mined before (top phrases by share x idf) and now (informative phrases).
Caveat (as in similarity_quality): the demo's titles contain the root cause, so triggers taken from titles
repeat cause words.
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
        doc.update(_id=f.id, timeline=[_event_doc(e) for e in inc.timeline], created_at=doc.get("detected_at"),
                   duplicate_of=f.duplicate_of)  # a twin: closed as a duplicate of the first row of its postmortem
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
    """Coverage is over the distinct incidents (duplicates left out: they are counted at their canonical one)."""
    from app.patterns.mining import is_duplicate

    cat = {i["_id"]: {i["category"]} for i in incs}
    cls = {i: rel.classes[i] for i in cat}
    incs = [i for i in incs if not is_duplicate(i)]
    rc = [c for c in cands if c.pattern_type == "ROOT_CAUSE"]
    covered = {m for c in rc for m in c.source_incidents} & {i["_id"] for i in incs}
    pc = [purity(list(c.source_incidents), cat)[0] for c in rc]
    pk = [purity(list(c.source_incidents), cls)[0] for c in rc]
    w = [c.frequency for c in rc]
    wavg = (lambda xs: sum(x * n for x, n in zip(xs, w)) / sum(w)) if w else (lambda xs: float("nan"))
    # a random baseline: the same pattern sizes drawn at random from the incidents
    rnd = random.Random(1)
    ids = sorted(i["_id"] for i in incs)
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
        d = dict(src, _id=f"{src['_id']}#{k}", duplicate_of=None,  # each copy is an incident of its own
                 affected_services=[f"{s}-{k % 50}" for s in src.get("affected_services") or []])
        v = vectors[src["_id"]] + rng.normal(0, noise, vectors[src["_id"]].shape).astype(np.float32)
        out.append(d)
        vec[d["_id"]] = v / np.linalg.norm(v)
    return out, vec


def duplicates(incs, vectors, fix_vectors, rel) -> None:
    """Mining with the twins counted (their `duplicate_of` ignored, as before issue 10's fix) and skipped."""
    from app.patterns import mining

    twins = {i["_id"] for i in incs if i.get("duplicate_of")}
    counted = [dict(i, duplicate_of=None) for i in incs]
    print(f"\n== duplicates: {len(twins)} of {len(incs)} incidents are twins (closed as a duplicate of the first "
          "row citing their postmortem)")
    runs = {}
    for label, data in (("twins counted", counted), ("twins skipped", incs)):
        cands = mining.mine(data, vectors, fix_vectors=fix_vectors)
        rc = [c for c in cands if c.pattern_type == "ROOT_CAUSE"]
        members = [m for c in rc for m in c.source_incidents]
        distinct = {m for m in members if m not in twins}
        runs[label] = rc
        print(f"{label}: {len(rc)} ROOT_CAUSE patterns, frequency total {sum(c.frequency for c in rc)} "
              f"(median {statistics.median([c.frequency for c in rc]) if rc else 0}), twins in patterns "
              f"{sum(1 for m in members if m in twins)}, distinct incidents covered {len(distinct)} = "
              f"{len(distinct) / (len(incs) - len(twins)):.2f} of the {len(incs) - len(twins)} distinct, "
              f"coverage as counted {len(set(members)) / len(incs):.2f} of all {len(incs)}")
    q_before, q_after = quality(runs["twins counted"], incs, rel), quality(runs["twins skipped"], incs, rel)
    print(f"purity by cause class {q_before['purity_class']:.2f} -> {q_after['purity_class']:.2f}, by category "
          f"{q_before['purity_cat']:.2f} -> {q_after['purity_cat']:.2f}")
    before = {tuple(sorted(set(c.source_incidents) - twins)): c for c in runs["twins counted"]}
    after = {tuple(c.source_incidents): c for c in runs["twins skipped"]}
    for key in sorted(set(before) | set(after), key=lambda k: (-len(k), k)):
        b, a = before.get(key), after.get(key)
        if b and a:
            if b.frequency != a.frequency:
                print(f"  frequency {b.frequency} -> {a.frequency}: {a.name[:80]}")
        elif b:
            why = "too few without twins" if len(key) < 3 else "its members grouped otherwise"
            print(f"  gone (n={b.frequency} with twins, {len(key)} distinct: {why}): {b.name[:70]}")
        else:
            print(f"  new (n={a.frequency}): {a.name[:80]}")


def old_name(cand, incs, vectors) -> str:
    """The name as mined before issue 10's fix: the top NAME_PHRASES phrases by share x idf, no check."""
    from app.patterns import mining, naming

    el = mining.eligible(incs, vectors)
    text = {"ROOT_CAUSE": mining.cause_text, "RESOLUTION": mining.fix_text,
            "DETECTION": mining.trigger_text}[cand.pattern_type]
    corpus = naming.Corpus([text(i) for i in el])
    by_id = {i["_id"]: i for i in el}
    top = naming.top_phrases([mining.phrases(text(by_id[m])) for m in cand.source_incidents], corpus,
                             naming.NAME_PHRASES, by_count_first=False)
    return ", ".join(top)


def names(incs, vectors, cands, label: str) -> None:
    print(f"\n== names, {label} (before: top phrases by share x idf; after: informative phrases led by one of 2+ "
          "words, else category: services)")
    before = [old_name(c, incs, vectors) for c in cands]
    for c, b in zip(cands, before):
        print(f"  {c.pattern_type:10} n={c.frequency:2d} | {b[:60]:60} -> {c.name[:70]}")

    def lead(name: str) -> str:
        return name.split(", ")[0]

    print("names that are one word: {} -> {}; led by a single word: {} -> {}".format(
        sum(" " not in b for b in before), sum(" " not in c.name for c in cands),
        sum(" " not in lead(b) for b in before), sum(" " not in lead(c.name) for c in cands)))


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

    duplicates(incs, vectors, fix_vectors, rel)
    print("\n== grid (ROOT_CAUSE only; purity weighted by pattern size; class baseline = random groups of the same sizes)")
    print(f"{'linkage':9} {'cut':>5} {'patterns':>8} {'coverage':>8} {'pur.cat':>7} {'pur.cls':>7} {'base':>5}")
    for linkage in ("average", "complete"):
        for cut in (0.30, 0.35, 0.40, 0.45, 0.50, 0.55):
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
    names(incs, vectors, cands, "twins skipped (shipped)")
    counted = [dict(i, duplicate_of=None) for i in incs]
    names(counted, vectors, mining.mine(counted, vectors, fix_vectors=fix_vectors), "twins counted (as before)")
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
