"""Structured logs: one JSON object per line, in every process that calls `configure_logging` (the API with
uvicorn's own loggers, the worker with Dramatiq's). A line written during a request carries its
`request_id`; a line written while a job runs carries `job_id` (the Dramatiq message id) and `actor` (set
by the worker's middleware, app/jobmetrics.py)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# the job being run in this context: (message id, actor name); asyncio tasks of the job inherit it
job_var: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("job", default=None)

# attributes of every record, and uvicorn's `color_message` (the message again, with terminal colours)
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
# uvicorn's loggers: it gives them handlers of its own (plain text) before the app is loaded
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


_last_second: tuple[int, str] = (-1, "")  # the last second a line was written in, and its text


def _timestamp(created: float) -> str:
    """`created` as ISO 8601 UTC to the millisecond (`2026-12-07T16:49:50.558+00:00`), the second's text made once
    per second: `datetime.fromtimestamp(…).isoformat()` costs a quarter of a line's formatting."""
    global _last_second
    second = int(created)
    micros = round((created - second) * 1e6)  # rounded to the microsecond first, as datetime does
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    last = _last_second  # one read of one tuple: another thread's handler may replace it meanwhile
    if last[0] != second:
        last = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{last[1]}.{micros // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            out["request_id"] = rid
        if (job := job_var.get()) is not None:
            out["job_id"], out["actor"] = job
        for key, value in record.__dict__.items():  # the record's own fields never overwrite the line's keys
            if key not in _RESERVED and not key.startswith("_"):
                out[f"extra_{key}" if key in out else key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return _encode(out)


def _encode(line: dict) -> str:
    """One line's JSON: orjson, a tenth of json's time; a value it refuses (an integer beyond 64 bits) goes the
    json way."""
    try:
        return orjson.dumps(line, default=str).decode()
    except orjson.JSONEncodeError:
        return json.dumps(line, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Every record of the process through one JSON handler on stderr: the root logger's, which uvicorn's
    loggers (once their own text handlers are taken off) and Dramatiq's propagate to; Python warnings too."""
    # what no line carries is not looked up for each (the logging HOWTO's "Optimization"): the thread's and the
    # process's names (the caller's file and line still are: a record asked with stack_info=True needs that walk)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in UVICORN_LOGGERS:  # their levels (uvicorn's --log-level) stay as uvicorn set them
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for noisy in ("pymongo", "httpx", "uvicorn.access"):  # the access log is app.access (with the request id)
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("opensearch").setLevel(logging.ERROR)  # failures are logged by our own code
    logging.captureWarnings(True)
