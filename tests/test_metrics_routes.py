"""/metrics counts a request answered before routing (a 401) under the route it was for, not as unmatched."""

from __future__ import annotations

import re


def count(text: str, route: str, status: str) -> float:
    pattern = rf'http_requests_total{{method="GET",route="{re.escape(route)}",status="{status}"}} (\S+)'
    return sum(float(m) for m in re.findall(pattern, text))


async def test_a_401_is_counted_under_its_route(client):
    before = (await client.get("/metrics")).text
    assert (await client.get("/api/v1/incidents/")).status_code == 401
    assert (await client.get("/api/v1/incidents/INC-1/timeline")).status_code == 401
    assert (await client.get("/api/no-such-thing/")).status_code == 401
    after = (await client.get("/metrics")).text
    assert count(after, "/api/v1/incidents/", "401") == count(before, "/api/v1/incidents/", "401") + 1
    assert count(after, "/api/v1/incidents/{name}/timeline", "401") == \
        count(before, "/api/v1/incidents/{name}/timeline", "401") + 1
    assert count(after, "unmatched", "401") == count(before, "unmatched", "401") + 1  # no route takes that path
