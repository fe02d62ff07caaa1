"""A k-NN capable search server for tests: osmem with OpenSearch's `knn` query added in front of it.

osmem (the local OpenSearch-compatible server) accepts a `knn_vector` mapping but refuses `knn`
queries, and no k-NN engine installs from PyPI. So that the service's k-NN path runs end to end in the
tests (the capability probe, index creation with `index.knn` and the `knn_vector` mapping, vectors
written by bulk, the `knn` query with its filter, hit scores turned back into cosines), this server
passes every request through to osmem unchanged except a `_search` whose query is a top-level `knn`:
it fetches the documents matching the clause's `filter` from osmem and ranks them exactly, as OpenSearch's
Lucene engine scores `cosinesimil` ((1 + cos) / 2, best first, `k` hits, then `size`). Lucene's HNSW is
approximate; this is the exact answer it approximates.

Set `IKL_TEST_KNN_OPENSEARCH_URL` to a real OpenSearch with the k-NN plugin to run the same tests
against it instead (tests/test_vectors_knn.py).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

SCAN = 10_000  # documents a knn query may consider: plenty for the tests' indexes


def _knn_clause(body: Any) -> tuple[str, dict[str, Any]] | None:
    query = body.get("query") if isinstance(body, dict) else None
    if isinstance(query, dict) and list(query) == ["knn"] and isinstance(query["knn"], dict) and len(query["knn"]) == 1:
        return next(iter(query["knn"].items()))
    return None


class KnnServer:
    """`with KnnServer(osmem_url) as url:` serves on a free local port until the block ends."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.knn_queries = 0
        self.refuse_knn = False  # answer knn queries as osmem does (a 400), to test the fallback
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _forward(self, path: str, data: bytes | None, method: str | None = None,
                         content_type: str | None = None) -> tuple[int, dict[str, str], bytes]:
                req = urllib.request.Request(outer.upstream + path, data=data, method=method or self.command)
                req.add_header("Content-Type", content_type or self.headers.get("Content-Type") or "application/json")
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        return resp.status, dict(resp.headers), resp.read()
                except urllib.error.HTTPError as exc:
                    return exc.code, dict(exc.headers), exc.read()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                path, _, _ = self.path.partition("?")
                if path.endswith("/_search") and data:
                    try:
                        body = json.loads(data)
                    except ValueError:
                        body = None
                    clause = _knn_clause(body)
                    if clause is not None:
                        self._reply(*outer._knn(path, body, *clause))
                        return
                self._reply(*self._forward(self.path, data))

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._handler = Handler
        self._server: ThreadingHTTPServer | None = None

    def _knn(self, path: str, body: dict, field: str, clause: dict) -> tuple[int, dict[str, str], bytes]:
        self.knn_queries += 1
        headers = {"Content-Type": "application/json"}
        if self.refuse_knn:
            return 400, headers, json.dumps({"error": {"type": "parsing_exception",
                                                       "reason": "[knn] query is not supported"}, "status": 400}).encode()
        q = np.asarray(clause["vector"], dtype=np.float64)
        k = int(clause["k"])
        scan = {"size": SCAN, "query": {"bool": {"filter": [clause.get("filter") or {"match_all": {}}]}}}
        req = urllib.request.Request(self.upstream + path, data=json.dumps(scan).encode(), method="POST",
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                found = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, headers, exc.read()
        hits = []
        for h in found["hits"]["hits"]:
            vec = (h.get("_source") or {}).get(field)
            if not vec:
                continue  # a document without a vector is not in the k-NN graph
            v = np.asarray(vec, dtype=np.float64)
            cos = float(v @ q / (np.linalg.norm(v) * np.linalg.norm(q)))
            hits.append({"_index": h["_index"], "_id": h["_id"], "_score": (1.0 + cos) / 2.0,
                         **({"_source": h["_source"]} if body.get("_source", True) is not False else {})})
        hits.sort(key=lambda h: (-h["_score"], h["_id"]))
        hits = hits[:k][: int(body.get("size", 10))]
        out = {"took": 1, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
               "hits": {"total": {"value": len(hits), "relation": "eq"},
                        "max_score": hits[0]["_score"] if hits else None, "hits": hits}}
        return 200, headers, json.dumps(out).encode()

    def __enter__(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
