"""A page's static assets, served by this service so the page works with no internet: a fixed list of
files from one folder (static/<name>/, see SOURCES.md there), under a path named by a digest of their
content, <prefix>/<digest>/<file>. That path changes whenever a file does, so the assets are cached for
a year; the page naming them is revalidated on every load (PAGE_CACHE). Only the listed files are served,
nothing is listed, and a body is gzipped when the client accepts it. Used by the GraphiQL page
(app/http/graphiql.py) and the API reference (app/http/docs.py).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ASSET_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff",
                 "Vary": "Accept-Encoding"}


# A page whose scripts, styles and connections are this origin's only, with no inline script or style and no
# eval (images may be data: URLs). What the API reference and the dashboard run under.
STRICT_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def page_headers(csp: str) -> dict[str, str]:
    """The headers of a page that loads a bundle: revalidated on every load, under `csp`."""
    return {"Cache-Control": "no-cache", "Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}


class StaticBundle:
    """The stylesheets and scripts of one page, in the order the page loads them."""

    def __init__(self, folder: Path, prefix: str, *, styles: tuple[str, ...], scripts: tuple[str, ...],
                 route_name: str) -> None:
        unknown = [name for name in (*styles, *scripts) if Path(name).suffix not in MEDIA_TYPES]
        if unknown:
            raise ValueError(f"no media type for {unknown}")
        self.folder = folder
        self.prefix = prefix
        self.styles = styles
        self.scripts = scripts
        self.route = Route(prefix + "/{version}/{name}", self.asset, methods=["GET"], name=route_name)

    @functools.cached_property
    def _loaded(self) -> tuple[str, dict[str, bytes]]:
        """The served files and a digest of them all, read once per process."""
        files = {name: (self.folder / name).read_bytes() for name in (*self.styles, *self.scripts)}
        digest = hashlib.sha256()
        for name, body in files.items():
            digest.update(f"{name}\0{len(body)}\0".encode())
            digest.update(body)
        return digest.hexdigest()[:16], files

    @property
    def version(self) -> str:
        return self._loaded[0]

    @property
    def files(self) -> dict[str, bytes]:
        return self._loaded[1]

    @functools.lru_cache(maxsize=None)  # noqa: B019 - one bundle per page, alive as long as the process
    def _gzipped(self, name: str) -> bytes:
        return gzip.compress(self.files[name], compresslevel=6, mtime=0)

    def urls(self, root_path: str = "") -> list[str]:
        """The asset URLs (absolute paths on this server), styles first."""
        return [f"{root_path}{self.prefix}/{self.version}/{name}" for name in (*self.styles, *self.scripts)]

    async def page(self, request: Request, template: str, headers: dict[str, str], **paths: str) -> Response:
        """The page `template` with its asset tags (`{styles}`, `{scripts}`) and each of `paths` as a URL of this
        server (the request's root path before it, HTML-escaped), under `headers`."""
        root = request.scope.get("root_path", "")
        styles, scripts = await self.tags(request)
        urls = {name: html.escape(root + path) for name, path in paths.items()}
        return HTMLResponse(template.format(styles=styles, scripts=scripts, **urls), headers=headers)

    async def tags(self, request: Request, indent: str = "    ") -> tuple[str, str]:
        """The page's <link> tags and <script> tags, each a block of lines, for the request's root path."""
        urls = [html.escape(url) for url in await run_in_threadpool(self.urls, request.scope.get("root_path", ""))]
        styles = "\n".join(f'{indent}<link rel="stylesheet" href="{url}">' for url in urls[:len(self.styles)])
        scripts = "\n".join(f'{indent}<script src="{url}"></script>' for url in urls[len(self.styles):])
        return styles, scripts

    async def asset(self, request: Request) -> Response:
        version, files = await run_in_threadpool(lambda: self._loaded)
        name = request.path_params["name"]
        if request.path_params["version"] != version or name not in files:
            raise HTTPException(404, "Not Found")
        headers = dict(ASSET_HEADERS)
        body = files[name]
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            body = await run_in_threadpool(self._gzipped, name)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=MEDIA_TYPES[Path(name).suffix], headers=headers)
