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


async def _broker_ping(url: str) -> None:
    import redis.asyncio as redis

    client = redis.from_url(url, socket_connect_timeout=1.5, socket_timeout=1.5)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def readyz(request: Request) -> JSON:
    bk = request.app.state.backends
    results = dict(await asyncio.gather(
        _check("mongodb", bk.mongo.command("ping")),
        _check("opensearch", bk.search.cluster.health()),
        _check("broker", _broker_ping(bk.settings.broker_url)),
    ))
    down = sorted(k for k, v in results.items() if v != "ok")
    if down:
        return error_response(503, f"Not ready: {', '.join(down)} unavailable", results, "NOT_READY")
    return JSON({"status": "ready", "checks": results})
