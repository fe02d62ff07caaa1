"""The API reference page, /docs, works with no internet: checked in a real headless browser.

    .venv/bin/python bench/docs_browser_check.py [--screenshot PATH]
    .venv/bin/python bench/docs_browser_check.py --base http://127.0.0.1:8000 --token KEY [--screenshot PATH]

Without --base: starts a throw-away local stack and the API, creates an admin token and three incidents.
With --base and --token: checks a service already running (`python3 dev.py run` prints both), read-only.
Then drives Debian's Chromium with Playwright (`pip install 'incident-knowledge[browser]'`, `apt-get
install chromium`; Playwright never downloads a browser here) with every request to another host
refused: the page loads Swagger UI from this server, the operations of /openapi.json render, "Try it
out" -> Execute of GET /api/v1/incidents/ answers 401 without a token, 200 once the token is given under
"Authorize" (as `Token <key>`, then again as the bare key), and the page reports no Content-Security-Policy
violation and no error. Prints one line per check and exits non-zero if any fails. The browser set-up, the
closing checks, the seeding and the report are bench/browser.py's, shared with graphiql_browser_check.py.
`run_check()` is also used by tests/http/test_docs.py when a browser is available. Not run by the test suite
otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import CHROMIUM, NEEDS, browser_available, report, run_offline, seed  # noqa: E402

PATH = "/api/v1/incidents/"
# The GET operation of PATH, however Swagger UI names its element.
OPERATION = f".opblock.opblock-get:has(.opblock-summary-path[data-path='{PATH}'])"


def run_check(base: str, token: str, *, screenshot: Path | None = None,
              timeout_ms: int = 30_000) -> list[tuple[bool, str]]:
    """Drive the page at base + /docs; returns (passed, description) per check."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    sent: list[tuple[str, str | None]] = []  # (URL, Authorization) of each request to the API

    def on_request(request) -> None:
        if urlsplit(request.url).path.startswith("/api/"):
            sent.append((request.url, request.headers.get("authorization")))

    def execute(page, operation) -> dict:
        """Execute the (expanded, tried-out) operation; its status, request URL and body."""
        clear = operation.locator("button.btn-clear")
        if clear.count():  # the previous response goes, so the one waited for below is the new one
            clear.click()
            operation.locator(".live-responses-table").wait_for(state="detached", timeout=timeout_ms)
        before = time.monotonic()
        operation.locator("button.execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status").first
        status.wait_for(timeout=timeout_ms)
        text = operation.locator(".live-responses-table .response-col_description pre").first.inner_text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text[:200]
        return {"status": status.inner_text().strip().split()[0], "ms": round((time.monotonic() - before) * 1000),
                "url": operation.locator(".request-url pre").first.inner_text().strip(), "body": body}

    def authorize(page, value: str) -> None:
        page.locator(".auth-wrapper button.authorize").click()
        dialog = page.locator(".dialog-ux .modal-ux")
        box = dialog.locator(".auth-container").first  # TokenAuth, the first of the document's schemes
        logout = box.locator("button:has-text('Logout')")
        if logout.count():
            logout.click()
        box.locator("input").first.fill(value)
        box.locator("button[type=submit]:has-text('Authorize')").click()
        box.locator("button:has-text('Logout')").wait_for(timeout=timeout_ms)
        box.locator("button.btn-done").click()

    def drive(page, check, served) -> None:
        started = time.monotonic()
        nav = page.goto(f"{base}/docs", wait_until="load", timeout=timeout_ms)
        check(nav is not None and nav.status == 200 and "text/html" in nav.headers.get("content-type", ""),
              f"GET /docs as a browser, no token: {nav and nav.status} {nav and nav.headers.get('content-type')}")
        page.wait_for_selector(".swagger-ui .opblock", timeout=timeout_ms)
        count = page.locator(".swagger-ui .opblock").count()
        title = page.locator(".swagger-ui .info .title").first.inner_text().splitlines()[0]
        check(count > 10, f"Swagger UI rendered {title!r}: {count} operations in "
                          f"{round((time.monotonic() - started) * 1000)} ms")
        assets = [s for s in served if "/static/swagger-ui/" in s[2]]
        check(len(assets) == 4 and all(status == 200 and ("javascript" in ctype or "css" in ctype)
                                       for status, ctype, _ in assets),
              f"{len(assets)} assets from this server: "
              + ", ".join(f"{url.rsplit('/', 1)[-1]} {status} {ctype.split(';')[0]}" for status, ctype, url in assets))
        spec = [s for s in served if urlsplit(s[2]).path == "/openapi.json"]
        check(spec and spec[0][0] == 200, f"the document, /openapi.json: {spec and spec[0][0]}")

        operation = page.locator(OPERATION).first
        operation.locator(".opblock-summary").first.click()
        operation.locator("button.try-out__btn").click()
        hash_ = page.evaluate("location.hash")
        check(hash_.startswith("#/"), f"GET {PATH} expanded, deep link {hash_!r}")

        no_token = execute(page, operation)
        check(no_token["status"] == "401",
              f"Execute without a token: {no_token['status']} {json.dumps(no_token['body'])[:90]}")

        for value, how in ((f"Token {token}", "as 'Token <key>'"), (token, "as the bare key")):
            authorize(page, value)
            done = execute(page, operation)
            body = done["body"] if isinstance(done["body"], dict) else {}
            check(done["status"] == "200" and isinstance(body.get("count"), int)
                  and done["url"].startswith(origin + PATH),
                  f"Authorize {how}, Execute: {done['status']} from {done['url']} count={body.get('count')} "
                  f"results={len(body.get('results') or [])} ({done['ms']} ms)")
        headers = {auth for url, auth in sent if urlsplit(url).path == PATH}
        check(headers == {None, f"Token {token}"},
              "Authorization sent: " + ", ".join(sorted(f"Token ...{h[-4:]}" if h else "none" for h in headers)))
        if screenshot:
            page.screenshot(path=str(screenshot), full_page=False)

    return run_offline(base, drive, screenshot=screenshot, timeout_ms=timeout_ms, on_request=on_request)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a running service, e.g. http://127.0.0.1:8000 (needs --token)")
    parser.add_argument("--token", help="an API token for --base")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the page after the last Execute")
    args = parser.parse_args()
    if bool(args.base) != bool(args.token):
        parser.error("--base and --token go together")
    if not browser_available():
        print(NEEDS, file=sys.stderr)
        return 2

    if args.base:
        base = args.base.rstrip("/")
        print(f"API at {base}, token ...{args.token[-4:]}; Chromium at {CHROMIUM}, every other host refused")
        results = run_check(base, args.token, screenshot=args.screenshot)
    else:
        from harness import api_server, local_stack  # puts the project on sys.path

        with local_stack("ikl_docs_check"), api_server() as base:
            token = seed(base, "docs-check", "Docs check incident")
            print(f"API at {base}, admin token ...{token[-4:]}, 3 incidents; Chromium at {CHROMIUM}, "
                  "every other host refused")
            results = run_check(base, token, screenshot=args.screenshot)
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
