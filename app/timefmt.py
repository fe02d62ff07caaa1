"""Timestamps: stored as timezone-aware UTC datetimes at millisecond precision, shown as ISO 8601 with a `Z`."""

from __future__ import annotations

from datetime import datetime, timezone

from bson.tz_util import utc as _bson_utc

_UTC = (timezone.utc, _bson_utc, None)  # what MongoDB reads back (tz_aware) and what we write


def utcnow() -> datetime:
    """Now, at MongoDB's millisecond precision, so what we return equals what we stored."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(dt: datetime) -> datetime:
    """A naive datetime is taken as UTC; an aware one is converted; precision cut to milliseconds.
    A value its offset pushes out of years 1-9999 (`0001-01-01T00:00:00+01:00`) is a ValueError."""
    try:
        dt = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("datetime is out of range once converted to UTC") from None
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def isoz(dt: datetime | None) -> str | None:
    """A timestamp as Django REST framework writes it: UTC ISO 8601 with a `Z`, microseconds when there are
    some (`2026-03-19T15:20:00Z`, `2026-03-19T15:20:00.123000Z`): `isoformat()` with `+00:00` as `Z`. It is
    also what orjson writes for a UTC or naive datetime with `OPT_UTC_Z | OPT_NAIVE_UTC`, so response bodies
    leave datetimes to it (app/http/responses.py). A naive datetime is taken as UTC."""
    if dt is None:
        return None
    if dt.tzinfo not in _UTC:
        offset = dt.utcoffset()
        if offset:
            dt = dt - offset
    base = "%04d-%02d-%02dT%02d:%02d:%02d" % (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)
    return "%s.%06dZ" % (base, dt.microsecond) if dt.microsecond else base + "Z"


def drf_duration(seconds: float | None) -> str | None:
    """A duration as Django REST framework's DurationField writes it: `[DD ]HH:MM:SS` (whole seconds)."""
    if seconds is None:
        return None
    days, rest = divmod(int(round(seconds)), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days} {clock}" if days else clock


def for_body(dt: datetime | None) -> datetime | str | None:
    """A timestamp as a response body carries it to `app.http.responses.dumps` (every HTTP and WebSocket body):
    a UTC or naive datetime as it is, since that writer writes `isoz`'s text for it, in C; any other as `isoz`'s
    text, now."""
    if dt is None or dt.tzinfo in _UTC:
        return dt
    return isoz(dt)
