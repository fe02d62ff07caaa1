"""Liveness (the process answers) and readiness (MongoDB, search server and broker answer)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from app.http.responses import JSON, error_response


async def healthz(request: Request) -> JSON:
    return JSON({"status": "ok"})


async def _check(name: str, coro) -> tuple[str, str]:
    try:
        await asyncio.wait_for(coro, timeout=2.0)
        return name, "ok"
    except Exception as exc:  # noqa: BLE001 - anything is "down"
        return name, f"down: {type(exc).__name__}: {str(exc)[:200]}"


async def readyz(request: Request) -> JSON:
    bk = request.app.state.backends
    results = dict(await asyncio.gather(
        _check("mongodb", bk.mongo.command("ping")),
        _check("opensearch", bk.search.cluster.health()),
        _check("broker", bk.redis.ping()),
    ))
    down = sorted(k for k, v in results.items() if v != "ok")
    if down:
        return error_response(503, f"Not ready: {', '.join(down)} unavailable", results, "NOT_READY")
    return JSON({"status": "ready", "checks": results})
