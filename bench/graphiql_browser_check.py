"""GraphiQL works with no internet: checked in a real headless browser.

    .venv/bin/python bench/graphiql_browser_check.py [--screenshot PATH]

Starts a throw-away local stack and the API (IKL_ENVIRONMENT=development), creates an admin token
and three incidents, then drives Debian's Chromium with Playwright (`pip install
'incident-knowledge[browser]'`, `apt-get install chromium`; Playwright never downloads a browser
here) with every request to another host refused: the page loads, the editor renders, a query without
a token answers 401, the token typed into the page's token bar is used for the schema and for
`{ incidents { totalCount } }`, a subscription runs over the WebSocket, and the token is still there after
a reload; then the page reports no Content-Security-Policy violation and no error. Prints one line per check
and exits non-zero if any fails. The browser set-up, the closing checks, the seeding and the report are
bench/browser.py's, shared with docs_browser_check.py. `run_check()` is also used by tests/test_graphiql.py
when a browser is available.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import CHROMIUM, NEEDS, browser_available, report, run_offline, seed  # noqa: E402

QUERY = "{ incidents { totalCount } }"
_EDITOR_VALUE = ("sel => { const el = document.querySelector(sel); "
                 "return el && el.CodeMirror ? el.CodeMirror.getValue() : null; }")


def run_check(base: str, token: str, *, screenshot: Path | None = None,
              timeout_ms: int = 30_000) -> list[tuple[bool, str]]:
    """Drive the GraphiQL page at base + /graphql; returns (passed, description) per check."""

    def run_query(page, query: str) -> dict:
        page.evaluate("q => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(q)", query)
        before = time.monotonic()
        page.evaluate("() => { const cm = document.querySelector('.graphiql-response .CodeMirror'); "
                      "if (cm) cm.CodeMirror.setValue(''); }")
        page.click(".graphiql-execute-button")
        page.wait_for_function(f"() => ({_EDITOR_VALUE})('.graphiql-response .CodeMirror')", timeout=timeout_ms)
        text = page.evaluate(_EDITOR_VALUE, ".graphiql-response .CodeMirror") or ""
        try:
            body = json.loads(text)
        except ValueError:
            body = {"unparsed": text}
        body["_ms"] = round((time.monotonic() - before) * 1000)
        return body

    def drive(page, check, served) -> None:
        started = time.monotonic()
        nav = page.goto(f"{base}/graphql", wait_until="load", timeout=timeout_ms)
        check(nav is not None and nav.status == 200 and "text/html" in nav.headers.get("content-type", ""),
              f"GET /graphql as a browser, no token: {nav and nav.status} {nav and nav.headers.get('content-type')}")
        page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=timeout_ms)
        check("Loading" not in page.inner_text("#graphiql")[:40],
              f"GraphiQL editor rendered in {round((time.monotonic() - started) * 1000)} ms")
        assets = [s for s in served if "/static/graphiql/" in s[2]]
        check(assets and all(status == 200 and ("javascript" in ctype or "css" in ctype)
                             for status, ctype, _ in assets),
              f"{len(assets)} assets from this server: "
              + ", ".join(f"{url.rsplit('/', 1)[-1]} {status} {ctype.split(';')[0]}" for status, ctype, url in assets))

        no_token = run_query(page, QUERY)
        message = (no_token.get("errors") or [{}])[0].get("message", "")
        check("401" in message and "data" not in no_token, f"without a token the query answers: {message[:90]!r}")

        page.fill("#ikl-token", f"Token {token}")  # pasted with its scheme, as people do
        page.click("#ikl-token-save")
        status_text = page.inner_text(".ikl-token-status")
        check(token[-4:] in status_text, f"token bar after saving: {status_text!r}")
        # The schema is fetched again with the token: the documentation explorer lists the root fields.
        page.click("button[aria-label='Show Documentation Explorer']")
        page.click(".graphiql-doc-explorer-content a:has-text('Query')", timeout=timeout_ms)
        page.wait_for_selector(".graphiql-doc-explorer-content a:has-text('incidents')", timeout=timeout_ms)
        check(True, "schema fetched with the token: the documentation explorer lists Query.incidents")

        data = run_query(page, QUERY)
        total = ((data.get("data") or {}).get("incidents") or {}).get("totalCount")
        check(isinstance(total, int) and total > 0 and not data.get("errors"),
              f"{QUERY} -> {json.dumps({k: v for k, v in data.items() if k != '_ms'})} ({data['_ms']} ms)")
        if screenshot:
            page.screenshot(path=str(screenshot))

        # a subscription goes over the WebSocket (graphql-transport-ws, the token in connection_init): an
        # unknown generation is refused by the resolver, which only the authenticated socket can reach
        sub = run_query(page, 'subscription { postmortemGenerationUpdates(id: "no-such-generation") { status } }')
        codes = [(e.get("extensions") or {}).get("code") for e in sub.get("errors") or []]
        check("GENERATION_NOT_FOUND" in codes, f"a subscription over the WebSocket answers: "
                                               f"{json.dumps({k: v for k, v in sub.items() if k != '_ms'})[:160]}")

        page.reload(wait_until="load")
        page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=timeout_ms)
        again = run_query(page, QUERY)
        check(((again.get("data") or {}).get("incidents") or {}).get("totalCount") == total,
              f"after a reload the token is still in use (localStorage): {json.dumps(again.get('data'))}")

    return run_offline(base, drive, screenshot=screenshot, timeout_ms=timeout_ms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the page after the query")
    args = parser.parse_args()
    if not browser_available():
        print(NEEDS, file=sys.stderr)
        return 2

    from harness import api_server, local_stack  # puts the project on sys.path

    with local_stack("ikl_graphiql_check", IKL_ENVIRONMENT="development"), api_server() as base:
        token = seed(base, "graphiql-check", "GraphiQL check incident")
        print(f"API at {base} (development), admin token ...{token[-4:]}, 3 incidents; Chromium at {CHROMIUM}, "
              "every other host refused")
        results = run_check(base, token, screenshot=args.screenshot)
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
