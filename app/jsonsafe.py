"""JSON that every layer below can store and serve: checked once at the edge.

Python's `json` accepts what MongoDB or a browser cannot take: `NaN`/`Infinity` (and `1e400`,
which becomes infinity), unbounded nesting (a RecursionError deep in the decoder), integers of any
size (BSON stops at 64 bits), NUL bytes in keys, and duplicate keys (where the last one silently
wins). Request bodies go through `loads()`; free-form JSON fields (event `details`, an article's
`external_references`) are checked again by `check()` because GraphQL literals reach them without
passing through a JSON decoder.

Rules (documented in docs/api/rest.md): at most `max_depth` levels of nesting and MAX_VALUES values;
integers within [-2^63, 2^63); finite numbers only; no duplicate keys; text that is valid UTF-8 once
decoded (no lone surrogates); object keys without NUL and not starting with `$` (MongoDB operator
syntax).
"""

from __future__ import annotations

import json
import math
from typing import Any

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
FREE_FORM_MAX_DEPTH = 8
MAX_VALUES = 20_000  # values (objects, lists, scalars) in one document: a 1 MB body of tiny items stays cheap


class JSONRejected(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _constant(name: str) -> Any:
    raise JSONRejected("INVALID_NUMBER", f"{name} is not a valid JSON number")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise JSONRejected("DUPLICATE_KEY", f"Duplicate key in JSON object: {dup[:100]!r}")
    return out


def loads(raw: bytes | str, *, max_depth: int) -> Any:
    """Decode JSON, refusing anything `check` refuses; raises JSONRejected."""
    try:
        value = json.loads(raw, parse_constant=_constant, object_pairs_hook=_pairs)
    except JSONRejected:
        raise
    except RecursionError:
        raise JSONRejected("JSON_TOO_DEEP", f"JSON nested more than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JSONRejected("MALFORMED_JSON", f"Malformed JSON: {exc}") from None
    check(value, max_depth=max_depth)
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a lone surrogate (`"\ud800"`): valid JSON, not storable text
        return False


def check(value: Any, *, max_depth: int = FREE_FORM_MAX_DEPTH, path: str = "") -> None:
    """Raise JSONRejected if `value` (already decoded) breaks a rule above. Iterative: no recursion."""
    stack: list[tuple[Any, int, str]] = [(value, 0, path)]
    seen = 0
    while stack:
        item, depth, where = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise JSONRejected("JSON_TOO_LARGE", f"JSON holds more than {MAX_VALUES} values")
        if isinstance(item, dict):
            if depth >= max_depth:
                raise JSONRejected("JSON_TOO_DEEP", f"JSON nested more than {max_depth} levels at {where or '$'}")
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise JSONRejected("INVALID_KEY", f"Object keys must be strings at {where or '$'}")
                if "\x00" in key or key.startswith("$") or not _encodable(key):
                    raise JSONRejected("INVALID_KEY", f"Object key {key[:50]!r} at {where or '$'} may not contain "
                                       "NUL or a lone surrogate, or start with '$'")
                stack.append((sub, depth + 1, f"{where}.{key[:50]}"))
        elif isinstance(item, (list, tuple)):
            if depth >= max_depth:
                raise JSONRejected("JSON_TOO_DEEP", f"JSON nested more than {max_depth} levels at {where or '$'}")
            stack.extend((sub, depth + 1, f"{where}[{i}]") for i, sub in enumerate(item))
        elif isinstance(item, str):
            if not _encodable(item):
                raise JSONRejected("INVALID_STRING", f"String with a lone surrogate at {where or '$'}")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise JSONRejected("INVALID_NUMBER", f"Integer out of the 64-bit range at {where or '$'}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise JSONRejected("INVALID_NUMBER", f"Non-finite number at {where or '$'}")
        else:
            raise JSONRejected("INVALID_VALUE", f"Unsupported value of type {type(item).__name__} at {where or '$'}")


def free_form(value: Any) -> Any:
    """Pydantic AfterValidator for free-form JSON fields (ValueError → a validation error)."""
    try:
        check(value, max_depth=FREE_FORM_MAX_DEPTH)
    except JSONRejected as exc:
        raise ValueError(exc.message) from None
    return value
