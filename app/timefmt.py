"""Timestamps: stored as timezone-aware UTC datetimes, shown as ISO 8601 with a `Z`."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Now, at MongoDB's millisecond precision, so what we return equals what we stored."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(dt: datetime) -> datetime:
    """A naive datetime is taken as UTC; an aware one is converted; precision cut to milliseconds."""
    dt = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def isoz(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    dt = as_utc(dt)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
