"""Prose polishing against a real HTTP server speaking the chat-completions protocol (no MongoDB):
the request sent, polished sections accepted, a section with an invented fact rejected, and every
failure (not configured, timeout, connection error, non-2xx, bad bodies, wrong keys, bad values)
leaving the draft unchanged without raising."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.postmortems import generator as g
from app.postmortems.polish import MAX_CHARS, PolishResult, polish
from app.settings import Settings


def t(h: int, m: int = 0) -> datetime:
    return datetime(2024, 1, 15, h, m, tzinfo=timezone.utc)


INCIDENT = {"_id": "i1", "name": "INC-20240115-001", "title": "Database Connection Timeout",
            "description": "Connections to db-primary timed out.", "severity": "HIGH", "status": "RESOLVED",
            "affected_services": ["database", "api"], "affected_teams": ["database.team"], "assignee": "john.doe",
            "root_cause": "Connection pool exhausted by a slow query", "resolution": "Raised pool size",
            "detected_at": t(10, 30), "resolved_at": t(12, 45), "timeline": [
                {"timestamp": t(10), "type": "Detection", "source": "monitoring.system", "message": "Latency alert",
                 "details": {"affected_users": 500}},
                {"timestamp": t(10, 40), "type": "Analysis", "source": "ai-engine", "message": "Pool saturation"},
                {"timestamp": t(11, 50), "type": "Mitigation", "source": "john.doe", "message": "Pool resized"}]}


# --- a real chat-completions server; each test sets `server.reply` --------------------------------

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
        self.server.requests.append(request)
        status, payload, delay = self.server.reply(request["body"])
        if delay and self.server.stop.wait(delay):
            return
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except OSError:  # the client gave up (timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads, srv.block_on_close = True, False
    srv.requests, srv.stop = [], threading.Event()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.stop.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(http_server):
    http_server.requests.clear()
    http_server.reply = lambda body: (500, {"error": "no reply set"}, 0)
    return http_server


def base_url(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/v1"


def settings(url: str | None, **over) -> Settings:
    values = {"postmortem_polish_url": url, "postmortem_polish_model": "test-model",
              "postmortem_polish_api_key": None, "postmortem_polish_timeout_seconds": 0.5, **over}
    return Settings(**values)


def sent(body: dict) -> dict:
    """The sections the client sent in a request."""
    return json.loads(body["messages"][-1]["content"])


def completion(content, model: str = "polisher-1") -> dict:
    if not isinstance(content, str):
        content = json.dumps(content)
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


def rewrite(text: str) -> str:
    return "In short: " + text.replace("\n\n", "\n")


def polishing(body: dict):
    return 200, completion({k: rewrite(v) for k, v in sent(body).items()}), 0


def draft() -> g.Draft:
    d = g.draft(INCIDENT)
    assert all(getattr(d, s) for s in g.TEXT_SECTIONS) and g.check(d, INCIDENT) == []
    return d


def unchanged(result: PolishResult, d: g.Draft, before: g.Draft) -> None:
    assert result.draft is d and d == before
    assert result.polished == [] and result.rejected == []


# --- tests ---------------------------------------------------------------------------------------

async def test_not_configured_returns_draft_unchanged_without_request(server):
    calls = []
    transport = httpx.MockTransport(lambda request: calls.append(request) or httpx.Response(500))
    d = draft()
    before = dataclasses.replace(d)
    result = await polish(settings(None), d, incident=INCIDENT, transport=transport)
    unchanged(result, d, before)
    assert result.error is None and result.model is None
    assert calls == [] and server.requests == []


async def test_polished_sections_replace_the_text_sections_only(server):
    server.reply = polishing
    d = draft()
    before = dataclasses.replace(d)
    cfg = settings(base_url(server), postmortem_polish_api_key="sk-test")
    result = await polish(cfg, d, incident=INCIDENT)

    assert result.error is None and result.rejected == []
    assert result.polished == list(g.TEXT_SECTIONS) and result.model == "polisher-1"
    for s in g.TEXT_SECTIONS:
        assert getattr(result.draft, s) == rewrite(getattr(before, s)).strip()
    assert result.draft.timeline == d.timeline and result.draft.action_items == d.action_items
    assert result.draft.auto_generated_sections == d.auto_generated_sections
    assert d == before  # the input draft is not modified
    assert g.check(result.draft, INCIDENT) == []

    [req] = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    body = req["body"]
    assert body["model"] == "test-model" and body["temperature"] == 0.2
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]
    assert system["role"] == "system" and "not add any fact" in system["content"].lower()
    for s in g.TEXT_SECTIONS:
        assert s in system["content"]
    assert sent(body) == {s: getattr(before, s) for s in g.TEXT_SECTIONS}


async def test_only_present_sections_sent_full_endpoint_url_kept_no_key_no_auth(server):
    server.reply = polishing
    d = dataclasses.replace(draft(), lessons_learned="", impact_assessment="  ")
    cfg = settings(base_url(server) + "/chat/completions")
    result = await polish(cfg, d, incident=INCIDENT)
    assert result.error is None and result.polished == ["executive_summary", "root_cause_analysis"]
    assert result.draft.lessons_learned == "" and result.draft.impact_assessment == "  "
    [req] = server.requests
    assert req["path"] == "/v1/chat/completions" and "Authorization" not in req["headers"]
    assert set(sent(req["body"])) == {"executive_summary", "root_cause_analysis"}


async def test_section_with_invented_fact_is_rejected_others_kept(server):
    def invent(body):
        out = {k: rewrite(v) for k, v in sent(body).items()}
        out["impact_assessment"] += " Recovery took 47 minutes."
        out["root_cause_analysis"] += " The cache-gateway service was also involved."
        return 200, completion(out), 0

    server.reply = invent
    d = draft()
    before = dataclasses.replace(d)
    result = await polish(settings(base_url(server)), d, incident=INCIDENT, similar=[])
    assert result.error is None
    assert result.rejected == ["root_cause_analysis", "impact_assessment"]
    assert result.polished == ["executive_summary", "lessons_learned"]
    assert result.draft.impact_assessment == before.impact_assessment
    assert result.draft.root_cause_analysis == before.root_cause_analysis
    assert result.draft.executive_summary == rewrite(before.executive_summary).strip()
    assert g.check(result.draft, INCIDENT) == []


def with_sections(change):
    def reply(body):
        out = {k: rewrite(v) for k, v in sent(body).items()}
        change(out)
        return 200, completion(out), 0
    return reply


FAILURES = {
    "http 500": (lambda body: (500, {"error": "boom"}, 0), "HTTP 500"),
    "http 429": (lambda body: (429, {"error": "slow down"}, 0), "HTTP 429"),
    "body not JSON": (lambda body: (200, b"<html>oops</html>", 0), "not a chat completion"),
    "no choices": (lambda body: (200, {"choices": []}, 0), "not a chat completion"),
    "content not JSON": (lambda body: (200, completion("Sure! Here is a nicer text."), 0), "not JSON"),
    "content a list": (lambda body: (200, completion(["x"]), 0), "expected keys"),
    "missing key": (with_sections(lambda o: o.pop("lessons_learned")), "expected keys"),
    "extra key": (with_sections(lambda o: o.update(timeline="x")), "expected keys"),
    "wrong keys": (lambda body: (200, completion({"summary": "x", "rca": "y"}), 0), "expected keys"),
    "not a string": (with_sections(lambda o: o.update(lessons_learned=["a", "b"])), "not a non-empty string"),
    "empty string": (with_sections(lambda o: o.update(executive_summary="  ")), "not a non-empty string"),
    "over 3x longer": (with_sections(lambda o: o.update(impact_assessment="word " * 2000)), "too long"),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_bad_responses_leave_the_draft_unchanged(server, case):
    server.reply, expected = FAILURES[case]
    d = draft()
    before = dataclasses.replace(d)
    result = await polish(settings(base_url(server)), d, incident=INCIDENT)
    unchanged(result, d, before)
    assert result.error and expected in result.error and result.model == "test-model"
    assert len(server.requests) == 1


async def test_over_max_chars_rejected_even_within_3x(server):
    server.reply = with_sections(lambda o: o.update(executive_summary="word " * (MAX_CHARS // 5 + 100)))
    d = dataclasses.replace(draft(), executive_summary="text " * 8000)  # 40,000 chars: 3x allows 120,000
    before = dataclasses.replace(d)
    result = await polish(settings(base_url(server)), d, incident=INCIDENT)
    unchanged(result, d, before)
    assert "too long" in result.error


async def test_timeout_from_settings(server):
    server.reply = lambda body: (200, completion({}), 3)
    d = draft()
    before = dataclasses.replace(d)
    started = time.monotonic()
    result = await polish(settings(base_url(server)), d, incident=INCIDENT)
    assert time.monotonic() - started < 2
    unchanged(result, d, before)
    assert "timed out" in result.error


async def test_connection_error(server):
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = draft()
    before = dataclasses.replace(d)
    result = await polish(settings(f"http://127.0.0.1:{port}/v1"), d, incident=INCIDENT)
    unchanged(result, d, before)
    assert result.error.startswith("request failed: ConnectError")
