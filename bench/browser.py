"""What the browser checks (graphiql_browser_check.py, docs_browser_check.py) share: Debian's Chromium driven by
Playwright (`pip install 'incident-knowledge[browser]'`, `apt-get install chromium`; Playwright never downloads a
browser here) with every request to another host refused, the checks every page gets at the end (no
Content-Security-Policy violation, no request to another host, no page error), the admin token and incidents a
check starts from, and the printed report."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("IKL_CHROMIUM", "/usr/bin/chromium")
# As root on these machines; without the background-networking flags Chromium keeps trying to reach
# Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
NEEDS = (f"needs Playwright (pip install 'incident-knowledge[browser]') and Chromium at {CHROMIUM} "
         "(apt-get install chromium)")

# Collects Content-Security-Policy violations from the first script on.
_INIT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  e => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""

Check = Callable[[bool, str], bool]  # check(passed, description) records one check and returns passed
Served = list[tuple[int, str, str]]  # (status, content type, URL) of every response the page has received


def browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


def run_offline(base: str, drive: Callable[[Any, Check, Served], None], *, screenshot: Path | None = None,
                timeout_ms: int = 30_000, on_request: Callable[[Any], None] | None = None,
                expected_errors: Iterable[str] = ("401",)) -> list[tuple[bool, str]]:
    """Open a page in headless Chromium with only base's origin (and data: URLs) reachable and call
    drive(page, check, served). Should drive raise (a time-out, a missing element), where it stopped and what
    the page shows are recorded as failed checks, and the page saved to `screenshot` if given. Then the closing
    checks: no Content-Security-Policy violation, no request to another host, and no page error or console error
    but those naming one of `expected_errors`. `on_request` sees every request the page makes; `timeout_ms` is
    the page's default time-out. Returns (passed, description) per check, in order."""
    from playwright.sync_api import sync_playwright

    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    results: list[tuple[bool, str]] = []
    blocked: list[str] = []
    served: Served = []
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

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900}, service_workers="block")
            context.set_default_timeout(timeout_ms)
            context.route("**/*", only_this_origin)
            context.add_init_script(_INIT)
            page = context.new_page()
            page.on("response", lambda r: served.append((r.status, r.headers.get("content-type", ""), r.url)))
            if on_request:
                page.on("request", on_request)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            try:
                drive(page, check, served)
            except Exception as exc:  # a time-out or a missing element: say where, with what the page shows
                check(False, f"stopped: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                check(False, f"page text: {page.inner_text('body')[:300]!r}")
                if screenshot:
                    page.screenshot(path=str(screenshot))
            csp = page.evaluate("window.__cspViolations")
            check(not csp, f"Content-Security-Policy violations: {csp or 'none'}")
            check(not blocked, f"requests to other hosts (refused): {blocked or 'none'}")
            # Chromium logs an answer such as the 401 of a token-less request as a failed resource load.
            unexpected = [e for e in errors if not any(expected in e for expected in expected_errors)]
            check(not unexpected, f"page errors: {unexpected or 'none'}")
        finally:
            browser.close()
    return results


def seed(base: str, username: str, title: str) -> str:
    """An admin user `username` and a token for it, and three incidents ("<title> 0" to "<title> 2") created
    through the REST API at base with that token; returns the token. Needs the project on sys.path and the
    stack's settings in os.environ (harness.local_stack puts both there)."""
    return asyncio.run(_seed(base, username, title))


async def _seed(base: str, username: str, title: str) -> str:
    import httpx

    from app.backends import connect
    from app.db import ensure_indexes
    from app.settings import get_settings
    from app.users import service as users
    from app.users.models import Role, UserCreate

    bk = connect(get_settings(), jobs=True)
    try:
        await ensure_indexes(bk)
        user = await users.create_user(bk, data=UserCreate(username=username, role=Role.ADMIN))
        token = await users.issue_token(bk, user=user)
    finally:
        await bk.close()
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Token {token}"}) as client:
        for i, severity in enumerate(("LOW", "HIGH", "CRITICAL")):
            r = await client.post("/api/v1/incidents/", json={"title": f"{title} {i}",
                                                               "severity": severity, "category": "Database"})
            r.raise_for_status()
    return token


def report(results: list[tuple[bool, str]]) -> int:
    """Print one line per check and a summary; the exit status, 1 if any check failed."""
    for ok, what in results:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    failed = sum(not ok for ok, _ in results)
    print("all checks passed" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0
