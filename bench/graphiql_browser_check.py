"""GraphiQL works with no internet: checked in a real headless browser.

    .venv/bin/python bench/graphiql_browser_check.py [--screenshot PATH]

Starts a throw-away local stack and the API (IKL_ENVIRONMENT=development), creates an admin token
and three incidents, then drives Debian's Chromium with Playwright (`pip install
'incident-knowledge[browser]'`, `apt-get install chromium`; Playwright never downloads a browser
here) with every request to another host refused: the page loads, the editor renders, a query without
a token answers 401, the token typed into the page's token bar is used for the schema and for
`{ incidents { totalCount } }`, a subscription runs over the WebSocket, and the token is still there after
a reload. Prints one line per check and
exits non-zero if any fails. `run_check()` is also used by tests/test_graphiql.py when a browser is
available.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("IKL_CHROMIUM", "/usr/bin/chromium")
# As root on these machines; without the background-networking flags Chromium keeps trying to reach
# Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
QUERY = "{ incidents { totalCount } }"

# Collects Content-Security-Policy violations from the first script on.
_INIT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  e => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""
_EDITOR_VALUE = ("sel => { const el = document.querySelector(sel); "
                 "return el && el.CodeMirror ? el.CodeMirror.getValue() : null; }")


def browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


def run_check(base: str, token: str, *, screenshot: Path | None = None,
              timeout_ms: int = 30_000) -> list[tuple[bool, str]]:
    """Drive the GraphiQL page at base + /graphql; returns (passed, description) per check."""
    from playwright.sync_api import sync_playwright

    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    results: list[tuple[bool, str]] = []
    blocked: list[str] = []
    served: list[tuple[int, str, str]] = []
    errors: list[str] = []

    def check(ok: bool, what: str) -> bool:
        results.append((bool(ok), what))
        return bool(ok)

    def only_this_origin(route) -> None:
        url = route.request.url
        if url.startswith(origin + "/") or url.startswith("data:"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort("internetdisconnected")

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

    def drive(page) -> None:
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

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900}, service_workers="block")
            context.route("**/*", only_this_origin)
            context.add_init_script(_INIT)
            page = context.new_page()
            page.on("response", lambda r: served.append((r.status, r.headers.get("content-type", ""), r.url)))
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            try:
                drive(page)
            except Exception as exc:  # a time-out or a missing element: say where, with what the page shows
                check(False, f"stopped: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                check(False, f"page text: {page.inner_text('body')[:300]!r}")
                if screenshot:
                    page.screenshot(path=str(screenshot))
            csp = page.evaluate("window.__cspViolations")
            check(not csp, f"Content-Security-Policy violations: {csp or 'none'}")
            check(not blocked, f"requests to other hosts (refused): {blocked or 'none'}")
            # The 401 of the token-less query is logged by Chromium as a failed resource load.
            unexpected = [e for e in errors if "401" not in e]
            check(not unexpected, f"page errors: {unexpected or 'none'}")
        finally:
            browser.close()
    return results


async def _seed(base: str) -> str:
    """An admin token, and three incidents created through the REST API with it."""
    import httpx

    from app.backends import connect
    from app.db import ensure_indexes
    from app.settings import get_settings
    from app.users import service as users
    from app.users.models import Role, UserCreate

    bk = connect(get_settings(), jobs=True)
    try:
        await ensure_indexes(bk)
        user = await users.create_user(bk, data=UserCreate(username="graphiql-check", role=Role.ADMIN))
        token = await users.issue_token(bk, user=user)
    finally:
        await bk.close()
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Token {token}"}) as client:
        for i, severity in enumerate(("LOW", "HIGH", "CRITICAL")):
            r = await client.post("/api/v1/incidents/", json={"title": f"GraphiQL check incident {i}",
                                                               "severity": severity, "category": "Database"})
            r.raise_for_status()
    return token


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the page after the query")
    args = parser.parse_args()
    if not browser_available():
        print(f"needs Playwright (pip install 'incident-knowledge[browser]') and Chromium at {CHROMIUM} "
              "(apt-get install chromium)", file=sys.stderr)
        return 2

    from harness import api_server, local_stack  # puts the project on sys.path

    with local_stack("ikl_graphiql_check", IKL_ENVIRONMENT="development"), api_server() as base:
        token = asyncio.run(_seed(base))
        print(f"API at {base} (development), admin token ...{token[-4:]}, 3 incidents; Chromium at {CHROMIUM}, "
              "every other host refused")
        results = run_check(base, token, screenshot=args.screenshot)
    for ok, what in results:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    failed = sum(not ok for ok, _ in results)
    print("all checks passed" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
