"""Schemathesis over the published contract, with a small budget: every REST operation of /openapi.json and
every GraphQL field, generated valid and invalid inputs, against the API in a real server. No 5xx, and every
response as the document says. The large run is `python3 bench/fuzz.py` (its figures: docs/benchmarks.md)."""

from __future__ import annotations

import os

from bench.fuzz import fuzz

EXAMPLES = int(os.environ.get("IKL_FUZZ_EXAMPLES", "4"))


async def test_fuzzing_the_rest_and_graphql_contracts_finds_nothing(live_api, admin, tmp_path):
    token = admin["Authorization"].split(" ", 1)[1]
    results = fuzz(live_api, token, examples=EXAMPLES, seed=1, report_dir=tmp_path)
    for target, r in results.items():
        assert r["operations"] > 0 and r["cases"] > 0, (target, r["output"][-3000:])
        assert r["server_errors"] == 0, (target, r["examples"])
        assert r["exit_code"] == 0 and not r["failures"], f"{target}: {r['failures']}\n{r['output'][-12000:]}"
