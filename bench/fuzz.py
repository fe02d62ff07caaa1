"""Fuzz the API with schemathesis: every REST operation of GET /openapi.json and every GraphQL field of
/graphql, each with generated valid and invalid inputs, all checks on (no 5xx, statuses, content types and
bodies as documented, auth not ignored, invalid data refused).

    python3 bench/fuzz.py                      # the large run: 200 cases per operation, a fresh stack
    python3 bench/fuzz.py --examples 20        # smaller
    python3 bench/fuzz.py --url http://127.0.0.1:8000 --token KEY   # against a running service

The suite runs the same thing with a small budget (tests/test_fuzz.py). Prints, per target, the operations,
cases, failures by check and the run's time; exits 1 when anything failed. Reports (JUnit, NDJSON) are
written under --report-dir.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Checks that do not fit this API: schema-valid data is often, rightly, refused (an id that names nothing is
# a 404, a move from the wrong state a 409), so "positive data acceptance" would flag correct answers.
EXCLUDED_CHECKS = ("positive_data_acceptance",)
# In GraphQL, schemathesis' "server error" is any error with a `path` (a resolver's): this API answers an
# argument out of range or an unknown id that way, with its code (VALIDATION_ERROR, NOT_FOUND). What is a
# server error here is counted from the responses themselves: an HTTP 5xx or an INTERNAL_ERROR code.
GRAPHQL_EXCLUDED = (*EXCLUDED_CHECKS, "not_a_server_error")
# A generation's Server-Sent Events stream stays open until the generation ends (keep-alives meanwhile), and
# no worker runs here: schemathesis would wait on it forever. Its tests are tests/postmortems/test_generations.py.
STREAMS = r"^/api/knowledge/postmortem-generations/\{id\}/events/$"


def schemathesis(location: str, *, token: str, examples: int, report_dir: Path, seed: int | None = None,
                 max_time: float | None = None, exclude: tuple[str, ...] = EXCLUDED_CHECKS,
                 skip_paths: str | None = None) -> dict:
    """Run `st run` on one schema; returns its figures (parsed from the NDJSON report) and output."""
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    report_dir.mkdir(parents=True, exist_ok=True)
    ndjson = report_dir / "events.ndjson"
    cmd = [st, "run", location, "-H", f"Authorization: Token {token}", "--checks", "all",
           "--exclude-checks", ",".join(exclude), "--max-examples", str(examples), "--workers", "2",
           "--no-color", "--suppress-health-check", "all", "--generation-database", "none",
           "--report", "junit,ndjson", "--report-dir", str(report_dir), "--report-ndjson-path", str(ndjson),
           "--request-timeout", "30"]
    if skip_paths:
        cmd += ["--exclude-path-regex", skip_paths]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if max_time is not None:
        cmd += ["--max-time", str(int(max_time))]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    figures = summarize(ndjson)
    figures.update(exit_code=proc.returncode, seconds=round(time.monotonic() - started, 1),
                   output=proc.stdout[-20000:] + proc.stderr[-4000:])
    return figures


def summarize(ndjson: Path) -> dict:
    """Operations, cases and failures (by check) from schemathesis' NDJSON event log."""
    operations: set[str] = set()
    cases = 0
    failures: dict[str, int] = {}
    server_errors = 0
    examples: list[str] = []
    if not ndjson.exists():
        return {"operations": 0, "cases": 0, "failures": {}, "server_errors": 0, "examples": []}
    for line in ndjson.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        for name, body in event.items():
            if name != "ScenarioFinished" or not isinstance(body, dict):
                continue
            recorder = body.get("recorder") or {}
            label = recorder.get("label")
            if label:
                operations.add(label)
            cases += len(recorder.get("cases") or {})
            for checks in (recorder.get("checks") or {}).values():
                for check in checks:
                    if str(check.get("status")).lower() == "failure":
                        failures[check["name"]] = failures.get(check["name"], 0) + 1
            for interaction in (recorder.get("interactions") or {}).values():
                response = (interaction or {}).get("response") or {}
                body = base64.b64decode((response.get("content") or {}).get("$base64") or "")
                if (response.get("status_code") or 0) >= 500 or b'"INTERNAL_ERROR"' in body:
                    server_errors += 1
                    if len(examples) < 5:
                        examples.append(f"{label}: {response.get('status_code')} {body[:200]!r}")
    return {"operations": len(operations), "cases": cases, "failures": failures, "server_errors": server_errors,
            "examples": examples}


def fuzz(base_url: str, token: str, *, examples: int, report_dir: Path, seed: int | None = None,
         max_time: float | None = None) -> dict[str, dict]:
    """Both targets: the REST document and the GraphQL schema."""
    return {
        "rest": schemathesis(f"{base_url}/openapi.json", token=token, examples=examples, seed=seed,
                             max_time=max_time, report_dir=report_dir / "rest", skip_paths=STREAMS),
        "graphql": schemathesis(f"{base_url}/graphql", token=token, examples=examples, seed=seed,
                                max_time=max_time, report_dir=report_dir / "graphql", exclude=GRAPHQL_EXCLUDED),
    }


def report(results: dict[str, dict]) -> bool:
    ok = True
    for target, r in results.items():
        failed = sum(r["failures"].values())
        ok = ok and r["exit_code"] == 0 and failed == 0 and r["server_errors"] == 0
        print(f"{target:8} operations {r['operations']:4}  cases {r['cases']:6}  server errors {r['server_errors']}  "
              f"failed checks {failed} {r['failures'] or ''}  {r['seconds']} s  exit {r['exit_code']}")
        for example in r["examples"]:
            print(f"         {example}")
    return ok


async def _admin_token() -> str:
    from app.backends import connect
    from app.db import ensure_indexes
    from app.settings import get_settings
    from app.users import service as users
    from app.users.models import Classification, Role, UserCreate

    bk = connect(get_settings(), jobs=True)
    try:
        await ensure_indexes(bk)
        user = await users.create_user(bk, data=UserCreate(username="fuzz", role=Role.ADMIN,
                                                           clearance=Classification.RESTRICTED))
        return await users.issue_token(bk, user=user)
    finally:
        await bk.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200, help="cases per operation (default 200)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-time", type=float, default=None, help="seconds per target (default: no limit)")
    parser.add_argument("--url", help="a running service (default: a fresh local stack and API)")
    parser.add_argument("--token", help="an admin's token for --url")
    parser.add_argument("--report-dir", type=Path, default=Path("fuzz-report"))
    args = parser.parse_args()
    if args.url:
        if not args.token:
            parser.error("--url needs --token")
        results = fuzz(args.url.rstrip("/"), args.token, examples=args.examples, seed=args.seed,
                       max_time=args.max_time, report_dir=args.report_dir)
    else:
        from bench.harness import api_server, local_stack

        limits = {f"IKL_RATE_LIMIT_{k}": "100000000" for k in ("READ", "WRITE", "SEARCH")}
        with local_stack("ikl_fuzz", **limits):
            token = asyncio.run(_admin_token())
            with api_server() as base:
                results = fuzz(base, token, examples=args.examples, seed=args.seed, max_time=args.max_time,
                               report_dir=args.report_dir)
    ok = report(results)
    if not ok:
        for target, r in results.items():
            if r["exit_code"] or r["failures"]:
                print(f"\n--- {target} ---\n{r['output']}")
    print(f"reports: {args.report_dir}/")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
