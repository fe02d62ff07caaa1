"""Field types shared by every domain's input models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator

from app.timefmt import as_utc


def unique_stripped(values: list[str]) -> list[str]:
    """Trimmed, blanks dropped, de-duplicated, order kept."""
    out: list[str] = []
    for v in values:
        v = v.strip()
        if v and v not in out:
            out.append(v)
    return out


# Any offset accepted, stored as UTC at millisecond precision; naive values are taken as UTC.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
# A list of labels (tags, services, teams): trimmed and de-duplicated.
StrList = Annotated[list[str], AfterValidator(unique_stripped)]
