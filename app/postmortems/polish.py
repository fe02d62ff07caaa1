"""Optional prose polishing of a postmortem draft by an OpenAI-compatible chat-completions endpoint.

`polish(settings, draft, incident=..., similar=..., articles=..., similar_postmortems=...)` sends the non-empty text sections of the draft
(`generator.TEXT_SECTIONS`; never the timeline or action items) to `settings.postmortem_polish_url`
(`/chat/completions` is appended unless the URL already ends with it) and asks for the same text,
more readable, as a JSON object with exactly those keys, adding no fact that is not in the text.

It never raises on network or response problems and always returns a `PolishResult`:
- not configured (no URL): the original draft, `error` None, nothing polished, no request made;
- timeout (`postmortem_polish_timeout_seconds`, for the whole exchange), connection error, non-2xx,
  a body that is not a chat completion, content that is not a JSON object with exactly the keys sent,
  a value that is not a non-empty string, longer than `MAX_GROWTH` times the original or than
  `MAX_CHARS`: the original draft, unchanged, with `error` saying why;
- otherwise a new draft (`dataclasses.replace`) with each polished section that passes the fact check
  on its own (`generator.unsupported_facts` against `generator.source_tokens` of the same sources the
  draft was written from); a section that fails it keeps its original text and is listed in `rejected`.
A draft with no non-empty text section is returned as it is, without a request. `polished` lists
the sections whose text was replaced (and differs); `model` is the model the endpoint reports (else
the configured one) whenever a request was made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.postmortems import generator

MAX_GROWTH = 3       # a polished section may be at most this many times longer than the original
MAX_CHARS = 50_000   # and never longer than this
TEMPERATURE = 0.2

SYSTEM_PROMPT = (
    "You are an editor for incident postmortems. You receive a JSON object whose keys are section names "
    "and whose values are the section texts. Rewrite each text for readability: clear, concise, well-structured "
    "sentences; bullet lists may stay bullet lists. Do NOT add any fact that is not in the text given: no new "
    "numbers, durations, dates, times, names, people, teams or services, and no speculation about causes or "
    "impact. Keep every number, timestamp, identifier and name exactly as written, and do not drop facts. "
    "Answer with a single JSON object with exactly these keys: {keys}; each value must be a non-empty string. "
    "Output nothing else."
)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


@dataclass
class PolishResult:
    draft: generator.Draft
    polished: list[str] = field(default_factory=list)
    error: str | None = None
    model: str | None = None
    rejected: list[str] = field(default_factory=list)


def endpoint(url: str) -> str:
    """The chat-completions URL for a configured base URL (or the full endpoint URL)."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


async def _ask(settings: Any, sections: dict[str, str], transport: httpx.AsyncBaseTransport | None) -> Any:
    """The endpoint's response (raises on any network or HTTP problem)."""
    headers = {}
    if settings.postmortem_polish_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.postmortem_polish_api_key.get_secret_value()}"
    body = {"model": settings.postmortem_polish_model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT.format(keys=", ".join(sections))},
                         {"role": "user", "content": json.dumps(sections, ensure_ascii=False, indent=2)}],
            "temperature": TEMPERATURE, "response_format": {"type": "json_object"}}
    timeout = settings.postmortem_polish_timeout_seconds
    async with httpx.AsyncClient(timeout=timeout, transport=transport) as client:
        response = await asyncio.wait_for(
            client.post(endpoint(settings.postmortem_polish_url), json=body, headers=headers), timeout)
    response.raise_for_status()
    return response


def _content(response: httpx.Response) -> tuple[Any, str | None]:
    """(the JSON object in the completion's message, the model reported); raises ValueError."""
    try:
        body = response.json()
        content = body["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise ValueError(f"response is not a chat completion ({type(e).__name__})") from None
    if not isinstance(content, str):
        raise ValueError("completion content is not text")
    fenced = _FENCE.match(content)
    try:
        data = json.loads(fenced.group(1) if fenced else content)
    except ValueError:
        raise ValueError("completion content is not JSON") from None
    model = body.get("model") if isinstance(body, dict) else None
    return data, model if isinstance(model, str) and model else None


def _validate(data: Any, sections: dict[str, str]) -> dict[str, str]:
    """The polished sections, if the answer has exactly the keys sent and sane values; raises ValueError."""
    if not isinstance(data, dict) or set(data) != set(sections):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"expected keys {sorted(sections)}, got {got}")
    out = {}
    for name, original in sections.items():
        value = data[name]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}: not a non-empty string")
        if len(value) > MAX_GROWTH * len(original) or len(value) > MAX_CHARS:
            raise ValueError(f"{name}: polished text too long ({len(value)} chars, original {len(original)})")
        out[name] = value.strip()
    return out


async def polish(settings: Any, draft: generator.Draft, *, incident: Mapping[str, Any],
                 similar: Iterable[Mapping[str, Any]] = (), articles: Iterable[Mapping[str, Any]] = (),
                 similar_postmortems: Iterable[Mapping[str, Any]] = (), patterns: Iterable[Mapping[str, Any]] = (),
                 transport: httpx.AsyncBaseTransport | None = None) -> PolishResult:
    if not settings.postmortem_polish_url:
        return PolishResult(draft)
    sections = {s: getattr(draft, s) for s in generator.TEXT_SECTIONS if getattr(draft, s).strip()}
    if not sections:
        return PolishResult(draft)
    model = settings.postmortem_polish_model
    try:
        response = await _ask(settings, sections, transport)
        data, reported = _content(response)
        polished = _validate(data, sections)
    except (TimeoutError, httpx.TimeoutException):
        return PolishResult(draft, error=f"timed out after {settings.postmortem_polish_timeout_seconds}s",
                            model=model)
    except httpx.HTTPStatusError as e:
        return PolishResult(draft, error=f"HTTP {e.response.status_code} from the polish endpoint", model=model)
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        return PolishResult(draft, error=f"request failed: {type(e).__name__}: {e}", model=model)
    except ValueError as e:
        return PolishResult(draft, error=str(e), model=model)
    allowed = generator.source_tokens(incident, similar, draft.computed, articles=articles,
                                      similar_postmortems=similar_postmortems, patterns=patterns)
    rejected = [s for s, text in polished.items() if generator.unsupported_facts(text, allowed)]
    accepted = {s: t for s, t in polished.items() if s not in rejected and t != sections[s]}
    return PolishResult(dataclasses.replace(draft, **accepted), polished=list(accepted), model=reported or model,
                        rejected=rejected)
