"""Timestamps: stored as timezone-aware UTC datetimes, shown as ISO 8601 with a `Z`."""

from __future__ import annotations

from datetime import datetime, timezone


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
    """`2026-03-19T15:20:00Z`, with `.mmm` only when there are milliseconds (hot path: no strftime)."""
    if dt is None:
        return None
    offset = dt.utcoffset()
    if offset:
        dt = dt - offset
    base = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    ms = dt.microsecond // 1000
    return f"{base}.{ms:03d}Z" if ms else base + "Z"


def drf_duration(seconds: float | None) -> str | None:
    """A duration as Django REST framework's DurationField writes it: `[DD ]HH:MM:SS` (whole seconds)."""
    if seconds is None:
        return None
    days, rest = divmod(int(round(seconds)), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days} {clock}" if days else clock
