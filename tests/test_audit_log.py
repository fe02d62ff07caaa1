"""The audit log: reads of articles and postmortems, knowledge-base searches and every change are recorded with
who, what, when, from where (address, user agent, request id) and how the caller signed in; admins query it
(REST and GraphQL) by user, action, subject and time, paginated and read from indexes; nobody changes or deletes
entries through the API (405); the retention job removes old entries only."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app.activity import context, service as audit
from app.timefmt import isoz, utcnow
from tests.conftest import unique
from tests.incidents.test_graphql import gql

LOG = "/api/knowledge/audit-log/"
ARTICLES = "/api/knowledge/knowledge-articles/"
POSTMORTEMS = "/api/knowledge/postmortems/"


def where(tag: str) -> dict[str, str]:
    """Headers naming the client and the request, to find them in the entry."""
    return {"User-Agent": f"audit-test/{tag}", "X-Request-ID": f"req-{tag}"}


async def entries(client, admin, **params) -> list[dict]:
    r = await client.get(LOG, headers=admin, params={"page_size": 100, **params})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def came_from(entry: dict, tag: str, user) -> None:
    assert entry["user_id"] == user.id and entry["username"] == user.username, entry
    assert entry["ip"] == "127.0.0.1" and entry["user_agent"] == f"audit-test/{tag}", entry
    assert entry["request_id"] == f"req-{tag}" and entry["auth_method"] == "token", entry
    assert entry["at"].endswith("Z")


@pytest.fixture
async def article(client, editor):
    r = await client.post(ARTICLES, headers=editor, json={"title": unique("Audited"), "content": "read me",
                                                           "article_type": "RUNBOOK", "category": "Database",
                                                           "status": "PUBLISHED"})
    assert r.status_code == 201, r.text
    return r.json()


# --- what is recorded ----------------------------------------------------------------------------------

async def test_a_viewers_read_of_an_article_is_recorded_with_where_and_how(client, admin, viewer, tokens, article):
    tag = unique("read")
    r = await client.get(f"{ARTICLES}{article['slug']}/", headers={**viewer, **where(tag)})
    assert r.status_code == 200 and r.headers["x-request-id"] == f"req-{tag}"
    found = await entries(client, admin, subject_type="knowledge_article", subject_id=article["id"], action="read")
    assert len(found) == 1, found
    came_from(found[0], tag, tokens["viewer_user"])
    assert found[0]["changes"] == {"slug": article["slug"]}
    # GraphQL reads are the same service: recorded too, with or without counting a view
    for count in ("true", "false"):
        out = await gql(client, {**viewer, **where(f"{tag}-{count}")},
                        f'{{ knowledgeArticle(slug: "{article["slug"]}", countView: {count}) {{ id }} }}')
        assert out["data"]["knowledgeArticle"]["id"] == article["id"], out
    found = await entries(client, admin, subject_id=article["id"], action="read")
    assert sorted(e["user_agent"] for e in found) == sorted(f"audit-test/{t}" for t in (tag, f"{tag}-true",
                                                                                          f"{tag}-false"))
    # a read that finds nothing (missing, or hidden) records nothing
    assert (await client.get(f"{ARTICLES}no-such-{tag}/", headers=viewer)).status_code == 404
    assert not await entries(client, admin, action="read", subject_id=f"no-such-{tag}")


async def test_a_search_is_recorded_with_its_query(client, admin, viewer, tokens):
    tag = unique("search")
    r = await client.post(ARTICLES + "search/", headers={**viewer, **where(tag)},
                          json={"query": f"connection pool {tag}", "categories": ["Database"], "limit": 5})
    assert r.status_code == 200, r.text
    found = await entries(client, admin, subject_type="knowledge_base", action="search",
                          subject_id=r.json()["search_id"])
    assert len(found) == 1, found
    came_from(found[0], tag, tokens["viewer_user"])
    assert found[0]["changes"]["query"] == f"connection pool {tag}"
    assert found[0]["changes"]["filters"]["categories"] == ["Database"]
    assert found[0]["changes"]["result_count"] == r.json()["total_count"]


async def test_writes_are_recorded_with_their_changes(client, admin, editor, tokens):
    tag = unique("write")
    r = await client.post("/api/v1/incidents/", headers={**editor, **where(tag)},
                          json={"title": f"Audited {tag}", "severity": "LOW"})
    assert r.status_code == 201, r.text
    inc = r.json()
    name = inc["name"]
    r = await client.patch(f"/api/v1/incidents/{name}/", headers={**editor, **where(tag + "-2")},
                           json={"severity": "HIGH"})
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/incidents/{name}/events/", headers=editor,
                          json={"type": "Detection", "source": "test", "message": "seen"})
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/incidents/{name}/resolve/", headers=editor, json={"resolution": "fixed"})
    assert r.status_code == 200, r.text
    found = {e["action"]: e for e in await entries(client, admin, subject_type="incident", subject_id=inc["id"])}
    assert set(found) == {"create", "update", "add_events", "resolve"}, found
    came_from(found["create"], tag, tokens["editor_user"])
    came_from(found["update"], tag + "-2", tokens["editor_user"])
    assert found["create"]["changes"]["name"] == name
    assert found["update"]["changes"]["severity"] == {"from": "LOW", "to": "HIGH"}
    assert found["add_events"]["changes"] == {"events": 1, "types": ["Detection"]}
    assert found["resolve"]["changes"]["status"]["to"] == "RESOLVED"
    assert found["resolve"]["changes"]["resolution"] == "fixed"


async def test_a_postmortems_detail_is_a_read_rest_and_graphql(client, admin, editor, viewer, tokens):
    inc = (await client.post("/api/v1/incidents/", headers=editor, json={"title": unique("Pm"), "severity": "LOW"})).json()
    r = await client.post(POSTMORTEMS, headers=editor, json={"title": unique("Postmortem"), "incident": inc["id"]})
    assert r.status_code == 201, r.text
    pm = r.json()
    tag = unique("pm")
    assert (await client.get(f"{POSTMORTEMS}{pm['id']}/", headers={**viewer, **where(tag)})).status_code == 200
    out = await gql(client, viewer, f'{{ postmortem(id: "{pm["id"]}") {{ id }} }}')
    assert out["data"]["postmortem"]["id"] == pm["id"], out
    found = await entries(client, admin, subject_type="postmortem", subject_id=pm["id"])
    assert [e["action"] for e in found] == ["read", "read", "create"], found  # newest first
    came_from(next(e for e in found if e["request_id"] == f"req-{tag}"), tag, tokens["viewer_user"])


def test_the_sign_in_method_is_read_from_the_scope():
    """Another sign-in method puts its name in the scope (scope["auth_method"]); a token leaves it out."""
    scope = {"type": "http", "client": ("10.1.2.3", 5000), "headers": [(b"user-agent", b"x" * 600)]}
    token = context.capture(scope, "rid-1")
    try:
        assert context.fields() == {"ip": "10.1.2.3", "user_agent": "x" * 512, "request_id": "rid-1",
                                    "auth_method": None}  # nobody signed in yet
        scope["user"] = object()
        assert context.fields()["auth_method"] == "token"
        scope["auth_method"] = "session"
        assert context.fields()["auth_method"] == "session"
    finally:
        context.release(token)
    assert context.fields() == context.NONE  # outside a request: a worker, a command


# --- who may read it, and nobody changes it --------------------------------------------------------------

async def test_only_admins_read_the_audit_log_rest_and_graphql(client, editor, viewer):
    some = str(uuid.uuid4())
    for headers in (editor, viewer):
        for path in (LOG, f"{LOG}{some}/"):
            r = await client.get(path, headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "PERMISSION_DENIED", (path, r.text)
        for query in ("{ auditLog { totalCount } }", f'{{ auditEntry(id: "{some}") {{ id }} }}'):
            out = await gql(client, headers, query)
            assert out["data"] is None and out["errors"][0]["extensions"]["code"] == "PERMISSION_DENIED", out
    assert (await client.get(LOG)).status_code == 401


async def test_an_admin_not_cleared_for_everything_does_not_read_it(client, bk):
    """Entries quote documents of every classification (titles changed, search terms): an INTERNAL admin
    would read RESTRICTED text through them."""
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=unique("int-admin"), role=Role.ADMIN,
                                                 clearance=Classification.INTERNAL))
    headers = {"Authorization": f"Token {await issue_token(bk, user=user)}"}
    r = await client.get(LOG, headers=headers)
    assert r.status_code == 403 and r.json()["details"] == {"clearance": "INTERNAL", "required": "RESTRICTED"}, r.text
    out = await gql(client, headers, "{ auditLog { totalCount } }")
    assert out["data"] is None and out["errors"][0]["extensions"]["code"] == "PERMISSION_DENIED", out


async def test_nobody_changes_or_deletes_entries(client, admin, seeded):
    entry = seeded["docs"][0]
    for path in (LOG, f"{LOG}{entry['_id']}/", LOG.rstrip("/")):
        for method in ("PUT", "PATCH", "DELETE", "POST"):
            r = await client.request(method, path, headers=admin, json={})
            assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", (method, path, r.status_code)
    r = await client.get(f"{LOG}{entry['_id']}/", headers=admin)
    assert r.status_code == 200 and r.json()["id"] == entry["_id"] and r.json()["action"] == entry["action"]
    assert (await client.get(f"{LOG}{uuid.uuid4()}/", headers=admin)).json()["code"] == "AUDIT_ENTRY_NOT_FOUND"


# --- filters, pages, indexes ---------------------------------------------------------------------------

@pytest.fixture
async def seeded(bk, tokens):
    """Six entries about one subject: three by the editor, three by the viewer, an hour apart."""
    subject = str(uuid.uuid4())
    base = utcnow() - timedelta(hours=10)
    docs = []
    for i in range(6):
        who = tokens["editor_user"] if i % 2 == 0 else tokens["viewer_user"]
        docs.append({"_id": str(uuid.uuid4()), "action": "update" if i < 4 else "delete", "subject_type": "widget",
                     "subject_id": subject, "user_id": who.id, "username": who.username,
                     "at": base + timedelta(hours=i), "changes": {"n": i, "when": base}, "ip": "10.0.0.1",
                     "user_agent": "seed", "request_id": f"seed-{i}", "auth_method": "token"})
    await bk.mongo.audit_log.insert_many(docs)
    return {"subject": subject, "docs": docs, "base": base}


async def test_filters_and_pages(client, admin, tokens, seeded):
    s, docs = seeded["subject"], seeded["docs"]
    every = await entries(client, admin, subject_id=s)
    assert [e["request_id"] for e in every] == [f"seed-{i}" for i in reversed(range(6))]  # newest first
    assert every[-1]["changes"] == {"n": 0, "when": isoz(seeded["base"])}
    editor_user = tokens["editor_user"]
    for ref in (editor_user.id, editor_user.username):
        assert [e["changes"]["n"] for e in await entries(client, admin, subject_id=s, user=ref)] == [4, 2, 0]
    assert [e["changes"]["n"] for e in await entries(client, admin, subject_id=s, action="delete")] == [5, 4]
    assert [e["changes"]["n"] for e in await entries(client, admin, subject_type="widget", subject_id=s,
                                                      since=isoz(docs[1]["at"]), until=isoz(docs[3]["at"]))] == [3, 2, 1]
    # an offset is converted to UTC
    plus_two = docs[4]["at"].astimezone(timezone(timedelta(hours=2))).isoformat()  # "…T13:47:55.980+02:00"
    assert [e["changes"]["n"] for e in await entries(client, admin, subject_id=s, since=plus_two)] == [5, 4]
    assert await entries(client, admin, subject_id=s, user="nobody-" + s) == []
    r = await client.get(LOG, headers=admin, params={"subject_id": s, "page_size": 4, "page": 2})
    page = r.json()
    assert page["count"] == 6 and page["next"] is None and page["previous"] and len(page["results"]) == 2
    assert (await client.get(LOG, headers=admin, params={"subject_id": s, "page_size": 4, "page": 3})).status_code == 404
    r = await client.get(LOG, headers=admin, params={"since": "yesterday"})
    assert r.status_code == 400 and r.json()["details"]["field"] == "since", r.text
    # GraphQL: the same service, the same filters
    out = await gql(client, admin, """query($s: String!, $u: String!, $since: DateTime!) {
      auditLog(subjectId: $s, user: $u, since: $since, pageSize: 2) {
        totalCount hasNextPage results { action subjectType subjectId userId username ip userAgent requestId
                                         authMethod at changes } } }""",
                    s=s, u=editor_user.username, since=isoz(docs[1]["at"]))
    got = out["data"]["auditLog"]
    assert got["totalCount"] == 2 and not got["hasNextPage"], out
    assert [r["requestId"] for r in got["results"]] == ["seed-4", "seed-2"]
    assert got["results"][0]["changes"] == {"n": 4, "when": isoz(seeded["base"])}
    one = await gql(client, admin, f'{{ auditEntry(id: "{docs[0]["_id"]}") {{ id action ip }} }}')
    assert one["data"]["auditEntry"] == {"id": docs[0]["_id"], "action": "update", "ip": "10.0.0.1"}


async def test_every_filter_is_read_from_an_index(client, admin, bk, tokens, seeded):
    """No COLLSCAN and no blocking SORT, for each filter the list takes (as the service ran them)."""
    db = bk.mongo
    s = seeded["subject"]
    cases = [{}, {"subject_id": s}, {"subject_type": "widget"}, {"action": "delete"},
             {"user": tokens["editor_user"].username}, {"user": "nobody-" + s},
             {"since": isoz(seeded["base"])}, {"subject_id": s, "user": tokens["viewer_user"].id, "ordering": "at"}]
    await db.command("profile", 2)
    try:
        bad, seen = [], 0
        for params in cases:
            since = datetime.now(timezone.utc)
            time.sleep(0.002)
            r = await client.get(LOG, headers=admin, params={"page_size": 5, **params})
            assert r.status_code == 200, r.text
            async for p in db["system.profile"].find({"ts": {"$gte": since}, "ns": f"{db.name}.audit_log"}):
                cmd = p.get("command") or {}
                if "find" in cmd or "aggregate" in cmd:
                    seen += 1
                    if p.get("hasSortStage") or "COLLSCAN" in p.get("planSummary", ""):
                        bad.append(f"{params}: {p.get('planSummary')} sort={p.get('hasSortStage')}")
    finally:
        await db.command("profile", 0)
    assert seen >= len(cases), seen
    assert not bad, "\n".join(bad)


# --- retention -------------------------------------------------------------------------------------------

async def test_retention_removes_old_entries_only(bk, monkeypatch):
    from app import periodic

    mark = unique("retention")
    now = utcnow()
    ages = {"ancient": 900, "old": 366, "recent": 364, "new": 0}
    await bk.mongo.audit_log.insert_many([{"_id": f"{mark}-{name}-{i}", "action": "update", "subject_type": "widget",
                                           "subject_id": mark, "user_id": None, "username": None,
                                           "at": now - timedelta(days=days), "changes": {}}
                                          for name, days in ages.items() for i in range(3)])

    async def left() -> list[str]:
        return sorted({d["_id"].split("-")[-2] async for d in bk.mongo.audit_log.find({"subject_id": mark})})

    monkeypatch.setattr(bk.settings, "audit_retention_days", 0)  # 0: kept forever
    assert await audit.remove_expired(bk) == 0 and await left() == sorted(ages)
    assert periodic.REGISTRY["audit log retention"].period(bk.settings) == 0  # and the job does not run
    monkeypatch.setattr(bk.settings, "audit_retention_days", 365)
    assert periodic.REGISTRY["audit log retention"].period(bk.settings) > 0
    removed = await audit.remove_expired(bk, batch=2)  # in batches, oldest first
    assert removed >= 6 and await left() == ["new", "recent"]
    assert await audit.remove_expired(bk) == 0
