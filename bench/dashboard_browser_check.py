"""Check the dashboard page (GET /dashboard) in a real headless browser with no internet.

    .venv/bin/python bench/dashboard_browser_check.py [--screenshot dashboard.png]
    .venv/bin/python bench/dashboard_browser_check.py --base http://127.0.0.1:8000 --token KEY

Without --base: a local stack of its own, the demo data seeded (`ikl seed_demo`), three knowledge-base searches
by the checking user (one finds nothing) and the API under uvicorn.
Debian's Chromium through Playwright (bench/browser.py), every request to another host refused. Checked: the
page and its assets come from this server with its CSP; with an API token typed in the bar, the page asks the
GraphQL API only (no REST data call) and draws its four charts with data (Chart.js instances whose datasets
hold numbers), eight figure tiles, the rising patterns and overdue postmortems tables; then no Content-Security-
Policy violation, no request to another host and no page error (bench/browser.py's closing checks).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from browser import CHROMIUM, NEEDS, browser_available, report, run_offline, seed

CHARTS = ("rates", "publish", "searches", "severity")


def run_check(base: str, token: str, *, screenshot: Path | None = None, timeout_ms: int = 30_000,
              every_chart: bool = True):
    """`every_chart`: every chart must hold a value above zero (else drawn is enough: a service without searches,
    say, draws an empty one)."""
    posted: list[str] = []

    def on_request(request) -> None:
        if request.method == "POST" or "/api/" in request.url:
            posted.append(f"{request.method} {urlsplit(request.url).path}")

    def drive(page, check, served) -> None:
        started = time.monotonic()
        nav = page.goto(base + "/dashboard")
        check(nav is not None and nav.status == 200 and "default-src 'none'" in nav.headers.get(
            "content-security-policy", ""), f"GET /dashboard: {nav and nav.status}, CSP "
                                            f"{(nav and nav.headers.get('content-security-policy', ''))[:60]}…")
        page.fill("#token", token)
        page.click("#load")
        # (a selector, not a predicate: Playwright evaluates a string predicate with eval, which the CSP refuses)
        page.wait_for_selector("#tiles .tile, #status.bad", timeout=timeout_ms)
        status = page.inner_text("#status")
        check(status.startswith("Weeks"), f"figures loaded in {round((time.monotonic() - started) * 1000)} ms: "
                                          f"{status[:110]}")
        drawn = page.evaluate("""ids => ids.map(id => {
            const chart = Chart.getChart(document.getElementById(id));
            if (!chart) return [id, -1, 0];
            const values = chart.data.datasets.flatMap(d => d.data).filter(v => typeof v === 'number');
            return [id, values.length, values.filter(v => v > 0).length];
        })""", list(CHARTS))
        for chart_id, numbers, positive in drawn:
            check(numbers >= 0 and (not every_chart or (numbers > 0 and positive > 0)),
                  f"chart {chart_id!r}: " + (f"{numbers} values, {positive} above zero" if numbers >= 0 else "not drawn"))
        tiles = page.locator("#tiles .tile").count()
        check(tiles == 8, f"{tiles} figure tiles: " + "; ".join(
            page.locator("#tiles .tile").nth(i).inner_text().replace("\n", " ") for i in range(min(tiles, 3))))
        for table in ("rising", "overdue"):
            rows = page.locator(f"#{table} tbody tr").count()
            check(rows > 0, f"table {table!r}: {rows} row(s), first: "
                            f"{page.locator(f'#{table} tbody tr').first.inner_text()[:80]!r}")
        check(posted and all(p == "POST /graphql" for p in posted),
              f"data from the GraphQL API only: {sorted(set(posted))}")
        assets = [s for s in served if "/static/dashboard/" in s[2]]
        check(len(assets) == 3 and all(status == 200 for status, _, _ in assets),
              f"{len(assets)} assets from this server: " + ", ".join(url.rsplit('/', 1)[-1] for _, _, url in assets))
        if screenshot:
            page.screenshot(path=str(screenshot), full_page=True)

    return run_offline(base, drive, screenshot=screenshot, timeout_ms=timeout_ms, on_request=on_request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a running service, e.g. http://127.0.0.1:8000 (needs --token)")
    parser.add_argument("--token", help="an API token for --base")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the whole page once drawn")
    args = parser.parse_args()
    if bool(args.base) != bool(args.token):
        parser.error("--base and --token go together")
    if not browser_available():
        print(NEEDS, file=sys.stderr)
        return 2
    if args.base:
        base = args.base.rstrip("/")
        print(f"API at {base}, token ...{args.token[-4:]}; Chromium at {CHROMIUM}, every other host refused")
        return report(run_check(base, args.token, screenshot=args.screenshot, every_chart=False))

    from harness import ROOT, api_server, local_stack  # puts the project on sys.path

    with local_stack("ikl_dashboard_check"), api_server() as base:
        subprocess.run([sys.executable, "-m", "app.cli", "seed_demo"], cwd=ROOT, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
        token = seed(base, "dashboard-check", "Dashboard check incident")
        for query in ("database connection pool exhausted", "bgp route leak", "zzqx no such thing"):
            httpx.post(f"{base}/api/knowledge/knowledge-articles/search/", json={"query": query},
                       headers={"Authorization": f"Token {token}"}, timeout=30).raise_for_status()
        print(f"API at {base}, demo data, admin token ...{token[-4:]}; Chromium at {CHROMIUM}, every other host "
              "refused")
        return report(run_check(base, token, screenshot=args.screenshot))


if __name__ == "__main__":
    sys.exit(main())
