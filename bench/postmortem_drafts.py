"""Benchmark: automated postmortem drafts on the public dataset (../shared/datasets), in-process, no
servers: how many sections each draft fills, the drafts the fact check refuses (must be 0), the
confidence distribution and the time per draft.

    .venv/bin/python bench/postmortem_drafts.py

Each dataset row becomes an incident exactly as the demo seeds it (app/demo), timeline included.
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import datetime, timezone

from harness import ROOT  # noqa: F401 - puts the project on sys.path


def main() -> None:
    from app import demo
    from app.incidents.service import _event_doc
    from app.postmortems import generator

    data = demo.build(demo.load_rows())
    refused, confidence, sections, times, carried, cause_kept = [], [], [], [], [], []
    for inc in data.incidents:
        doc = {k: (v.value if hasattr(v, "value") else v) for k, v in inc.model_dump(mode="python").items()}
        doc.update(_id=str(uuid.uuid4()), timeline=[_event_doc(e) for e in inc.timeline],
                   created_at=datetime.now(timezone.utc), updated_at=datetime.now(timezone.utc))
        started = time.perf_counter()
        draft = generator.draft(doc)
        bad = generator.check(draft, doc)
        times.append((time.perf_counter() - started) * 1000)
        if bad:
            refused.append((doc["title"][:60], bad[:3]))
        confidence.append(draft.generation_confidence)
        sections.append(len(draft.auto_generated_sections))
        if doc.get("root_cause", "").strip():
            cause_kept.append(doc["root_cause"].strip() in draft.root_cause_analysis)
        if doc["timeline"]:
            carried.append(len(draft.timeline) / len({(e["type"], e["message"], e["timestamp"]) for e in doc["timeline"]}))
    n = len(data.incidents)
    q = statistics.quantiles
    print(f"incidents: {n}")
    print(f"sections filled: mean {statistics.mean(sections):.2f} of 6; all six in "
          f"{sum(1 for s in sections if s == 6)} drafts")
    print(f"timeline entries carried over (distinct source events): mean {statistics.mean(carried):.3f}")
    print(f"stated root cause quoted in the root cause analysis: {sum(cause_kept)} of {len(cause_kept)} "
          "incidents that state one")
    print(f"drafts refused by the fact check: {len(refused)}")
    for r in refused[:5]:
        print("  ", r)
    c = q(confidence, n=10)
    print(f"generation_confidence p10 {c[0]:.2f} p50 {statistics.median(confidence):.2f} p90 {c[8]:.2f}")
    t = q(times, n=100)
    print(f"draft + check per incident: p50 {statistics.median(times):.2f} ms, p99 {t[98]:.2f} ms")


if __name__ == "__main__":
    main()
