"""Study: how short must the embedded incident text be for <= 15 ms p50 per incident (batch 1, one BLAS
thread, 2 cores), and what does it cost in similar-incident quality?

    .venv/bin/python bench/embedding_length_study.py [--seed 7] [--only A,C,D]

Reuses bench/similarity_quality.py (imported, not copied): its own local stack, the 200 dataset
incidents seeded as the demo does, its root-cause relevance classes, its "known early" queries and its
metrics. Then for each configuration:

  A  embedding_text as shipped, truncated at 256 word pieces (app.embeddings.model.MAX_TOKENS)
  B  same text, truncated at 128
  C  same text, truncated at 64
  D  compact text (title, root cause, resolution, first event message), truncated at 64
  E  compact text, truncated at 48
  F, G  compact text, truncated at 32 and 24 (added: none of A-E meets 15 ms)

the configuration is applied in this process only (model.MAX_TOKENS patched and truncation re-enabled
on the loaded tokenizer, which read MAX_TOKENS once at load; app.incidents.embeddings.embedding_text
patched for D/E, which both `backfill` and `query_vector` look up at call time), every stored incident
is re-embedded (embedding* fields unset, `backfill` until 0, the process's vector index dropped), and

  (1) embed([text]) is timed sequentially for the 200 incidents' texts (batch 1, BLAS as shipped), after
      the quality passes, interleaved: `--rounds` rounds, each timing every configuration in turn (the
      machine is shared: the load average is printed); p50/p99 are the median over rounds of each
      round's figure, "min p50" the p50 over texts of each text's fastest round;
  (2) similarity_quality.collect runs the early queries (embedded with the same configuration):
      embeddings alone (the pool sorted by cosine) and the shipped hybrid, with grade-2 share in the
      top 5, nDCG@10 (graded), nDCG@10 on same cause only, MRR; paired bootstrap against A.

MODEL_VERSION is left as it is (the stored vectors are all recomputed per configuration anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import similarity_quality as sq
from harness import local_stack

TARGET_MS = 15.0
BOOT = 2000


def compact_text(doc: Mapping[str, Any]) -> str:
    """Title, root cause, resolution and the first event message (events ordered as embedding_text does)."""
    events = sorted((e for e in doc.get("timeline") or [] if isinstance(e, dict) and e.get("message")),
                    key=lambda e: str(e.get("timestamp")))[:1]
    parts = [doc.get("title"), doc.get("root_cause"), doc.get("resolution"), *(e["message"] for e in events)]
    return "\n".join(" ".join(str(p).split()) for p in parts if p)[:4000]


def configurations() -> list[tuple[str, str, Callable | None, int]]:
    from app.incidents import embeddings as inc_emb

    full = inc_emb.embedding_text
    return [("A", "embedding_text, 256 (shipped)", full, 256),
            ("B", "embedding_text, 128", full, 128),
            ("C", "embedding_text, 64", full, 64),
            ("D", "compact text, 64", compact_text, 64),
            ("E", "compact text, 48", compact_text, 48),
            # not in the brief's list: A-E all stay above 15 ms (a fixed ~8 ms per call plus ~0.3 ms
            # per word piece), so two shorter cuts to find where the target is met
            ("F", "compact text, 32", compact_text, 32),
            ("G", "compact text, 24", compact_text, 24)]


def apply(text_fn: Callable, max_tokens: int) -> None:
    from app.embeddings import model as impl
    from app.incidents import embeddings as inc_emb

    impl.MAX_TOKENS = max_tokens
    m = impl._get_model()  # loads once (pos embeddings sliced to the shipped 256, enough for any n <= 256)
    m.tokenizer.enable_truncation(max_length=max_tokens)
    inc_emb.embedding_text = text_fn


def pieces(texts: list[str]) -> tuple[list[int], list[int]]:
    """Word pieces (with [CLS]/[SEP]) as embedded now, and untruncated."""
    from tokenizers import Tokenizer

    from app.embeddings import model as impl

    tok = impl._get_model().tokenizer
    raw = Tokenizer.from_str(tok.to_str())
    raw.no_truncation()
    return [len(e.ids) for e in tok.encode_batch(texts)], [len(e.ids) for e in raw.encode_batch(texts)]


async def reembed(bk) -> tuple[int, float]:
    from app import vectors
    from app.embeddings import MODEL_VERSION
    from app.incidents import embeddings as inc_emb

    await bk.mongo.incidents.update_many({}, {"$unset": {"embedding": "", "embedding_model": "",
                                                         "embedding_hash": "", "embedded_at": ""}})
    vectors.clear_registry()  # the next similar() loads the index afresh
    t = time.perf_counter()
    n = 0
    while (done := await inc_emb.backfill(bk)):
        n += done
    took = time.perf_counter() - t
    current = await bk.mongo.incidents.count_documents({"embedding_model": MODEL_VERSION})
    total = await bk.mongo.incidents.count_documents({})
    assert n == total == current, (n, total, current)
    return n, took


def time_embed(texts: list[str]) -> list[float]:
    from app import embeddings

    embeddings.embed(texts[:5])
    for t in texts[:5]:
        embeddings.embed([t])  # warm-up
    ms = []
    for t in texts:
        t0 = time.perf_counter()
        embeddings.embed([t])
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


def boot_ci(d: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    res = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(BOOT)]
    return float(np.percentile(res, 2.5)), float(np.percentile(res, 97.5))


async def run(args) -> None:
    from app import demo
    from app.backends import connect
    from app.embeddings import model as impl
    from app.incidents import embeddings as inc_emb
    from app.settings import get_settings

    rows = demo.load_rows()
    rel = sq.Relevance(rows)
    queries = [q for q in rel.ids if rel.classes[q] and any(rel.grade(q, x) == 2 for x in rel.others(q))]
    blas = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "1 (as shipped)"
    print(f"{len(rows)} incidents, {len(queries)} evaluated early queries; {os.cpu_count()} CPUs; BLAS threads: {blas}")
    configs = [c for c in configurations() if not args.only or c[0] in args.only.split(",")]

    bk = connect(get_settings(), jobs=True)
    results: dict[str, dict[str, Any]] = {}
    text_only: list[dict] | None = None
    try:
        user = await sq.seed(bk, rows)
        for key, label, fn, n_tok in configs:
            apply(fn, n_tok)
            n, took = await reembed(bk)
            docs = await bk.mongo.incidents.find({}, {**inc_emb.TEXT_FIELDS}).to_list(None)
            texts = [inc_emb.embedding_text(d) for d in docs]
            emb_p, raw_p = pieces(texts)
            data = await sq.collect(bk, user, rel, True)
            Q = data["queries"]
            qtexts = [inc_emb.embedding_text(sq.early_query(data["docs"][q], rel.facts[q].root_cause)[0])
                      for q in rel.ids]
            q_p, _ = pieces(qtexts)
            sem = [sq.evaluate(rel, q, [c["ds"] for c in sorted(Q[q]["pool"], key=lambda c: (-(c["sem"] or 0.0),
                                                                                                c["id"]))])
                   for q in queries]
            hyb = [sq.evaluate(rel, q, Q[q]["hybrid"]) for q in queries]
            if text_only is None:
                text_only = [sq.evaluate(rel, q, Q[q]["text_only"]) for q in queries]
            results[key] = {"label": label, "fn": fn, "n_tok": n_tok, "texts": texts, "emb_p": emb_p, "raw_p": raw_p, "q_p": q_p, "sem": sem,
                            "hyb": hyb, "sim_ms": data["ms_hybrid"], "backfill_s": took}
            print(f"[{key}] {label}: MAX_TOKENS={impl.MAX_TOKENS}, tokenizer truncation "
                  f"{impl._get_model().tokenizer.truncation['max_length']}; re-embedded {n} in {took:.1f} s; "
                  f"word pieces embedded mean {statistics.mean(emb_p):.1f} (max {max(emb_p)}, untruncated mean "
                  f"{statistics.mean(raw_p):.1f}, {sum(r > e for r, e in zip(raw_p, emb_p))}/{len(raw_p)} cut); "
                  f"early queries mean {statistics.mean(q_p):.1f}; hybrid P5 {sq.mean_metrics(hyb)['p5']:.3f}",
                  flush=True)
    finally:
        await bk.close()

    print(f"\nTiming, {args.rounds} interleaved rounds; load average before: "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    for r in results.values():
        r["rounds"] = []
    for i in range(args.rounds):
        for key, r in results.items():
            apply(r["fn"], r["n_tok"])
            r["rounds"].append(time_embed(r["texts"]))
        print(f"  round {i + 1}: " + "  ".join(f"{k} {statistics.median(r['rounds'][-1]):.1f}"
                                              for k, r in results.items())
              + " ms p50; load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    for r in results.values():
        r["p50"] = statistics.median(statistics.median(x) for x in r["rounds"])
        r["p99"] = statistics.median(sq.pct(x, 99) for x in r["rounds"])
        r["min_p50"] = statistics.median(min(t) for t in zip(*r["rounds"]))

    def m(v: list[dict]) -> dict[str, float]:
        return sq.mean_metrics(v)

    print(f"\nEmbedding time per incident (embed([text]), batch 1, sequential, {len(rows)} texts) and quality "
          f"({len(queries)} early queries, top {sq.K}; P5 = grade-2 share in top 5, nDG = nDCG@10 graded, "
          f"nDG2 = nDCG@10 same cause only):")
    hdr = (f"  {'cfg':3} {'configuration':30} {'pieces':>6} {'p50 ms':>7} {'p99 ms':>7} {'<=15':>4} | "
           f"{'emb P5':>6} {'nDG':>5} {'nDG2':>5} {'MRR':>5} | {'hyb P5':>6} {'nDG':>5} {'nDG2':>5} {'MRR':>5} | "
           f"{'similar() p50':>13}")
    print(hdr)
    for key, r in results.items():
        s, h = m(r["sem"]), m(r["hyb"])
        p50 = r["p50"]
        print(f"  {key:3} {r['label']:30} {statistics.mean(r['emb_p']):6.1f} {p50:7.1f} "
              f"{r['p99']:7.1f} {r['min_p50']:6.1f} {'yes' if p50 <= TARGET_MS else 'no':>4} | "
              f"{s['p5']:6.3f} {s['ndcg']:5.3f} {s['ndcg2']:5.3f} {s['mrr']:5.3f} | "
              f"{h['p5']:6.3f} {h['ndcg']:5.3f} {h['ndcg2']:5.3f} {h['mrr']:5.3f} | "
              f"{statistics.median(r['sim_ms']):10.1f} ms")
    if text_only:
        t = m(text_only)
        print(f"  reference, no embeddings (text + structure, similar(semantic=False)): P5 {t['p5']:.3f} "
              f"nDCG@10 {t['ndcg']:.3f} nDCG@10 g2 {t['ndcg2']:.3f} MRR {t['mrr']:.3f}")

    if "A" in results:
        rng = np.random.default_rng(args.seed)
        print(f"\nPaired bootstrap vs A ({BOOT} resamples of the {len(queries)} queries): mean difference "
              f"[95% interval]")
        for key, r in results.items():
            if key == "A":
                continue
            parts = []
            for kind in ("sem", "hyb"):
                for metric in ("p5", "ndcg", "ndcg2", "mrr"):
                    d = np.array([x[metric] - y[metric] for x, y in zip(r[kind], results["A"][kind])])
                    lo, hi = boot_ci(d, rng)
                    flag = "*" if lo > 0 or hi < 0 else " "
                    parts.append(f"{kind} {metric:5} {d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]{flag}")
            print(f"  {key} - A:")
            for i in range(0, len(parts), 4):
                print("    " + "   ".join(parts[i:i + 4]))
        print("  (* = the interval excludes 0)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds")
    ap.add_argument("--only", default="", help="comma-separated configuration keys, e.g. A,D")
    args = ap.parse_args()
    started = time.perf_counter()
    with local_stack("ikl_embedding_length_study", IKL_LOG_LEVEL="ERROR"):
        asyncio.run(run(args))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
