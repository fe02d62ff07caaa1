"""Field types shared by every domain's input models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

from app.errors import ValidationFailed
from app.jsonsafe import free_form
from app.timefmt import as_utc

class InputModel(BaseModel):
    """The base of every input model: unknown fields are refused, strings are trimmed. A REST body is
    validated as JSON, strictly (app/http/responses.read_body), after `reshape`: where a model takes another
    shape of body too, it turns it into the model's own there (no "before" validators: they would make
    pydantic validate what follows as Python objects, not as JSON)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # Other shapes a body may have, turned into this model's by `reshape` (documented as alternatives)
    ALSO: ClassVar[tuple[type[BaseModel], ...]] = ()

    @classmethod
    def reshape(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data


# Search text (`?search=`, knowledge-base queries): long enough for any real query, short enough
# that a regular expression or a search-engine query built from it stays cheap.
MAX_SEARCH_CHARS = 500
MAX_PASTED_CHARS = 5000  # a knowledge-base search may be a pasted incident description


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
# Free-form JSON a caller may store (see app/jsonsafe.py for the rules).
JsonObject = Annotated[dict[str, Any], AfterValidator(free_form)]
JsonList = Annotated[list[Any], AfterValidator(free_form)]


def ascii_int(raw: Any) -> int | None:
    """An integer written in ASCII digits (optional sign) within 64 bits, else None: `int()` alone
    takes `" 7"`, `"1_000"` and Arabic-Indic digits, and integers MongoDB cannot store."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    else:
        text = str(raw)
        digits = text[1:] if text[:1] in "+-" else text
        if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 19:
            return None
        value = int(text)
    return value if -(2 ** 63) <= value < 2 ** 63 else None


def _search_text_value(value: str, max_chars: int = MAX_SEARCH_CHARS) -> str:
    try:
        return search_text(value, field="query", max_chars=max_chars)
    except ValidationFailed as exc:
        raise ValueError(exc.error) from None


def _pasted_text_value(value: str) -> str:
    return _search_text_value(value, MAX_PASTED_CHARS)


def search_text(value: Any, *, field: str = "search", max_chars: int = MAX_SEARCH_CHARS) -> str:
    """Search text as typed by a person: a string of at most `max_chars` with no control characters (a
    NUL cannot reach a regular expression or the search engine)."""
    if not isinstance(value, str):
        raise ValidationFailed(f"Invalid value for '{field}': expected a string", {"field": field})
    if len(value) > max_chars:
        raise ValidationFailed(f"'{field}' is longer than {max_chars} characters",
                               {"field": field, "max_length": max_chars}, code="SEARCH_TOO_LONG")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise ValidationFailed(f"'{field}' contains control characters", {"field": field}, code="INVALID_SEARCH")
    return value


# A search query inside an input model (the knowledge-base search body): the same rules as `?search=`.
SearchText = Annotated[str, AfterValidator(_search_text_value)]
# The knowledge-base search's query: the same rules, up to MAX_PASTED_CHARS (the service cuts it, see
# app/articles/ranking.py `engine_query`).
PastedText = Annotated[str, AfterValidator(_pasted_text_value)]


def http_link(value: str) -> str:
    """An absolute http(s) URL with a host and no credentials in it (`https://user:pass@…` is refused: a link is
    shown to readers), without spaces or control characters."""
    if any(ord(c) <= 32 or ord(c) == 127 for c in value):
        raise ValueError("a URL has no spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port that is not a number is a ValueError
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL may not carry a username or password")
    return value


# A link a person follows or a workflow calls (runbook links, an action item's runbook): http(s), at most 2048
# characters (checked by the field), no credentials.
HttpLink = Annotated[str, AfterValidator(http_link)]


@dataclass(frozen=True)
class Param:
    """A query parameter of an operation (beyond a list's): `kind` is int (within `low`..`high`), str, or
    "list" (a comma list of `enum` values when given, upper-cased). REST reads it from the query string
    (`parse`); GraphQL, where the same parameter is an argument, checks the typed value (`check`): one
    declaration, one set of rules, the same 400 naming it."""

    name: str
    kind: Any = str
    description: str = ""
    default: Any = None
    low: int | None = None
    high: int | None = None
    enum: tuple[str, ...] = ()
    max_length: int = 200

    def parse(self, raw: str | None) -> Any:
        if raw is None or raw == "":
            return self.default
        if self.kind is int:
            value = ascii_int(raw)
            if value is None:
                raise self._not_in_range()
            return self.check(value)
        self._check_length(raw)
        if self.kind == "list":
            return self.check([v.strip().upper() if self.enum else v.strip() for v in raw.split(",") if v.strip()])
        return raw

    def check(self, value: Any) -> Any:
        """A value given typed: within the bounds, or a ValidationFailed naming the parameter."""
        if value is None:
            return self.default
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or \
                    (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                raise self._not_in_range()
        elif self.kind == "list":
            if self.enum and (bad := [v for v in value if v not in self.enum]):
                raise ValidationFailed(f"Invalid value for '{self.name}': {bad[0]!r}",
                                       {"field": self.name, "allowed": list(self.enum)}, code="INVALID_PARAMETER")
        else:
            self._check_length(value)
        return value

    def _not_in_range(self) -> ValidationFailed:
        return ValidationFailed(f"{self.name} must be an integer between {self.low} and {self.high}",
                                {"field": self.name, "min": self.low, "max": self.high}, code="INVALID_PARAMETER")

    def _check_length(self, value: str) -> None:
        if len(value) > self.max_length:
            raise ValidationFailed(f"{self.name} is longer than {self.max_length} characters",
                                   {"field": self.name, "max_length": self.max_length}, code="INVALID_PARAMETER")


def checked(params: tuple[Param, ...], **values: Any) -> dict[str, Any]:
    """Typed arguments (GraphQL's) checked against the declared parameters, by name."""
    by_name = {p.name: p for p in params}
    return {name: by_name[name].check(value) for name, value in values.items()}
