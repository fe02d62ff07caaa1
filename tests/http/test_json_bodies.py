"""Response bodies (app/http/responses.dumps): orjson, the same bytes json.dumps wrote before — text in any
script, escapes, floats, timestamps as `isoz` writes them — but for the spelling of very small floats (`1e-7`,
was `1e-07`: the same number to any JSON reader), and what orjson refuses still answered the old way."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from bson.tz_util import utc as bson_utc

from app.http.responses import dumps, json_default
from app.timefmt import isoz
from app.users.models import Role


def _old(content):
    return json.dumps(content, default=json_default, ensure_ascii=False, separators=(",", ":")).encode()


def test_the_same_bytes_as_before():
    body = {"count": 3, "next": None, "results": [
        {"title": "Ünïcode — ✓ 日本語 \U0001F600", "text": 'quotes " and \\ and \n\t\r\x01\x1f\x7f', "score": 0.1 + 0.2,
         "huge": 1e16, "neg": -0.0, "int": 2 ** 62, "flag": True, "none": None, "role": Role.ADMIN,
         "at": datetime(2026, 3, 19, 15, 20, 0, 123000, tzinfo=bson_utc),
         "whole": datetime(2026, 3, 19, 15, 20, tzinfo=timezone.utc), "nested": {"a": [1, [2, {"b": []}]]}}]}
    assert dumps(body) == _old(body)
    assert b'"at":"2026-03-19T15:20:00.123000Z"' in dumps(body) and b'"whole":"2026-03-19T15:20:00Z"' in dumps(body)


def test_datetimes_are_written_as_isoz_writes_them():
    # orjson writes the datetimes of a body itself (the serializers leave them as read): the same text as isoz,
    # Django REST framework's, for what MongoDB reads back (bson's UTC), timezone.utc and naive (taken as UTC)
    moments = [datetime(2026, 3, 19, 15, 20, 0, 123000), datetime(2026, 3, 19, 15, 20), datetime(1, 1, 1),
               datetime(9999, 12, 31, 23, 59, 59, 999000), datetime(2024, 2, 29, 0, 0, 0, 1000),
               datetime(2026, 1, 1, 0, 0, 0, 5)]
    for naive in moments:
        for dt in (naive, naive.replace(tzinfo=timezone.utc), naive.replace(tzinfo=bson_utc)):
            assert dumps({"at": dt}) == _old({"at": dt}) == f'{{"at":"{isoz(dt)}"}}'.encode(), dt
            drf = dt.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")  # DRF's DateTimeField
            assert isoz(dt) == drf


def test_small_floats_are_the_same_numbers():
    body = {"tiny": [1e-5, 1e-7, 1.5e-10, 5e-324]}
    assert json.loads(dumps(body)) == json.loads(_old(body)) == body


def test_what_orjson_refuses_is_written_the_old_way():
    body = {"beyond_64_bits": 2 ** 70}
    assert dumps(body) == _old(body) == b'{"beyond_64_bits":1180591620717411303424}'


def test_keys_that_are_not_text_are_written_as_json_writes_them():
    """orjson's first pass takes text keys only; a body counted by number (or by enum) is written by its second."""
    body = {"by_rating": {1: 3, 5: 10}, "by_role": {Role.ADMIN: 1}, "at": datetime(2026, 3, 19, tzinfo=bson_utc)}
    expected = b'{"by_rating":{"1":3,"5":10},"by_role":{"admin":1},"at":"2026-03-19T00:00:00Z"}'
    assert dumps(body) == _old(body) == expected


def test_a_body_carries_a_timestamp_as_its_writer_writes_it():
    """`for_body` (GraphQL's DateTime scalar): a UTC or naive datetime left to the body writer, any other offset
    written as UTC text at once — the same bytes as `isoz` either way."""
    from datetime import timedelta

    from app.timefmt import for_body

    moment = datetime(2026, 3, 19, 15, 20, 0, 123000)
    for dt in (moment, moment.replace(tzinfo=timezone.utc), moment.replace(tzinfo=bson_utc)):
        assert for_body(dt) is dt and dumps({"at": for_body(dt)}) == f'{{"at":"{isoz(dt)}"}}'.encode()
    plus_two = moment.replace(tzinfo=timezone(timedelta(hours=2)))
    assert for_body(plus_two) == isoz(plus_two) == "2026-03-19T13:20:00.123000Z"
    assert for_body(None) is None
