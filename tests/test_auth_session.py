"""Session sign-in, Django's conventions: POST /api/auth/login/ sets an HttpOnly SameSite=Lax `sessionid`
cookie (a revocable server-side session) and a readable `csrftoken`; unsafe requests on a session need
`X-CSRFToken`; logout ends it; a password change ends the other sessions; attempts are limited and
audited; service accounts, SSO users and deactivated users cannot sign in; `ikl set_password` reads stdin."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import httpx
import pytest

from app.users import sessions, signin
from app.users.models import Role, UserCreate
from app.users.service import create_user, issue_token
from tests.conftest import ROOT, fresh_address, unique

PASSWORD = "correct horse battery staple"
LOGIN, LOGOUT, ME = "/api/auth/login/", "/api/auth/logout/", "/api/auth/me/"


@contextlib.asynccontextmanager
async def browser(app, contract, address: str | None = None):
    """A client of its own (a browser: its own cookie jar) whose REST responses must keep the contract, from
    an address no other test fails authentication from."""
    async def keeps_the_contract(response: httpx.Response) -> None:
        await response.aread()
        problems = contract.violations(response.request.method, response.request.url.path, response.status_code,
                                       response.headers.get("content-type", ""), response.content)
        assert not problems, problems

    address = address or fresh_address()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 4242))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                 event_hooks={"response": [keeps_the_contract]}) as c:
        yield c


async def person(bk, role: Role = Role.EDITOR, password: str = PASSWORD, **extra):
    user = await create_user(bk, data=UserCreate(username=unique("sess"), role=role, **extra))
    if password:
        await signin.set_password(bk, user=user, password=password)
    return user


def csrf(c: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRFToken": c.cookies.get("csrftoken") or ""}


async def signed_in(c: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    r = await c.post(LOGIN, json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r


async def test_login_sets_the_session_and_csrf_cookies_and_signs_in(app, bk, contract):
    user = await person(bk)
    async with browser(app, contract) as c:
        r = await signed_in(c, user.username)
        assert r.json() == {"id": user.id, "username": user.username, "email": None, "team": "", "role": "editor",
                            "clearance": "INTERNAL", "auth_method": "session", "is_service_account": False,
                            "sso_provider": None}
        cookies = {h.split("=", 1)[0]: h.lower() for h in r.headers.get_list("set-cookie")}
        assert "httponly" in cookies["sessionid"] and "samesite=lax" in cookies["sessionid"]
        assert "path=/" in cookies["sessionid"] and "max-age=1209600" in cookies["sessionid"]
        assert "httponly" not in cookies["csrftoken"] and "samesite=lax" in cookies["csrftoken"]
        assert "secure" not in cookies["sessionid"]  # the suite runs as "test": plain http
        stored = await bk.mongo.sessions.find_one({"user_id": user.id})
        key = c.cookies["sessionid"]
        assert stored["_id"] != key and len(stored["_id"]) == 64  # only the key's hash is stored
        assert stored["expires_at"] > stored["created_at"] and "last_seen" in stored
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):  # /me answers any method (unsafe ones: CSRF)
            me = await c.request(method, ME, headers=csrf(c))
            assert me.status_code == 200 and me.json()["auth_method"] == "session", (method, me.text)
        assert (await c.get("/api/v1/incidents/?page_size=1")).status_code == 200  # safe: no CSRF needed


async def test_the_session_store_has_a_ttl_index(bk):
    indexes = await bk.mongo.sessions.index_information()
    assert any(ix.get("expireAfterSeconds") == 0 and ix["key"] == [("expires_at", 1)] for ix in indexes.values())


async def test_an_expired_session_no_longer_signs_in(app, bk, contract):
    user = await person(bk)
    async with browser(app, contract) as c:
        await signed_in(c, user.username)
        await bk.mongo.sessions.update_many({"user_id": user.id}, {"$set": {"expires_at": sessions._now()}})
        sessions.forget_user(user.id)
        r = await c.get(ME)
        assert r.status_code == 401 and r.json()["code"] == "NOT_AUTHENTICATED"


async def test_wrong_credentials_are_one_401_and_audited(app, bk, contract):
    user = await person(bk)
    async with browser(app, contract) as c:
        wrong = await c.post(LOGIN, json={"username": user.username, "password": "not the password"})
        nobody = await c.post(LOGIN, json={"username": unique("nobody"), "password": "not the password"})
        for r in (wrong, nobody):
            assert r.status_code == 401 and r.json() == {"error": "Invalid username or password.", "details": None,
                                                         "code": "INVALID_CREDENTIALS"}
            assert "sessionid" not in r.headers.get("set-cookie", "")
        await signed_in(c, user.username)
    actions = [e["action"] async for e in bk.mongo.audit_log.find({"subject_type": "user", "subject_id": user.id})
               if e["action"].startswith("auth.login")]
    assert actions.count("auth.login_failed") == 1 and actions.count("auth.login") == 1, actions
    failed = await bk.mongo.audit_log.find_one({"action": "auth.login_failed", "subject_id": user.id})
    assert failed["changes"]["reason"] == "wrong_password"


async def test_login_takes_json_only(app, bk, contract):
    """A form or a body without a type (what another site's page can send without asking) is refused."""
    user = await person(bk)
    async with browser(app, contract) as c:
        body = f'{{"username": "{user.username}", "password": "{PASSWORD}"}}'
        for headers in ({"Content-Type": "text/plain"}, {}):
            r = await c.post(LOGIN, content=body, headers=headers)
            assert r.status_code == 415 and "sessionid" not in c.cookies, r.text
        r = await c.post(LOGIN, json={"username": user.username})
        assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR"


async def test_unsafe_requests_on_a_session_need_the_csrf_header(app, bk, contract):
    user = await person(bk)
    async with browser(app, contract) as c:
        await signed_in(c, user.username)
        body = {"title": unique("csrf"), "severity": "LOW"}
        r = await c.post("/api/v1/incidents/", json=body)
        assert r.status_code == 403 and r.json() == {"error": "CSRF Failed: CSRF token missing.", "details": None,
                                                     "code": "CSRF_FAILED"}
        r = await c.post("/api/v1/incidents/", json=body, headers={"X-CSRFToken": "forged"})
        assert r.status_code == 403 and r.json()["code"] == "CSRF_FAILED"
        # a cookie the attacker could plant and echo is not enough: the token is the session's own
        forged = "x" * 43
        r = await c.post("/api/v1/incidents/", json=body, headers={"X-CSRFToken": forged,
                                                                   "Cookie": f"sessionid={c.cookies['sessionid']}; "
                                                                             f"csrftoken={forged}"})
        assert r.status_code == 403 and r.json()["code"] == "CSRF_FAILED"
        r = await c.post("/api/v1/incidents/", json=body, headers=csrf(c))
        assert r.status_code == 201, r.text
        # GraphQL: the same rule, in the GraphQL error shape
        mutation = {"query": 'mutation { createIncident(input: {title: "csrf gql", severity: LOW}) { __typename } }'}
        r = await c.post("/graphql", json=mutation)
        assert r.status_code == 403 and r.json()["errors"][0]["extensions"]["code"] == "CSRF_FAILED"
        r = await c.post("/graphql", json=mutation, headers=csrf(c))
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        r = await c.get("/graphql", params={"query": "{ incidents(pageSize: 1) { totalCount } }"})
        assert r.status_code == 200 and "errors" not in r.json()


async def test_token_requests_are_not_asked_for_csrf_even_beside_a_session(app, bk, contract):
    user = await person(bk)
    token = await issue_token(bk, user=user)
    async with browser(app, contract) as c:
        await signed_in(c, user.username)
        r = await c.post("/api/v1/incidents/", json={"title": unique("tok"), "severity": "LOW"},
                         headers={"Authorization": f"Token {token}"})
        assert r.status_code == 201, r.text
        assert (await c.get(ME, headers={"Authorization": f"Token {token}"})).json()["auth_method"] == "token"
        r = await c.get(ME, headers={"Authorization": "Token not-a-token"})  # the header wins over the cookie
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Token"


async def test_logout_ends_the_session_and_clears_the_cookies(app, bk, contract):
    user = await person(bk)
    async with browser(app, contract) as c:
        await signed_in(c, user.username)
        key = c.cookies["sessionid"]
        assert (await c.post(LOGOUT)).status_code == 403  # an unsafe request on a session: CSRF first
        r = await c.post(LOGOUT, headers=csrf(c))
        assert r.status_code == 204
        cleared = " ".join(r.headers.get_list("set-cookie")).lower()
        assert 'sessionid="";' in cleared and 'csrftoken="";' in cleared and "max-age=0" in cleared
        assert await bk.mongo.sessions.count_documents({"user_id": user.id}) == 0
        assert (await c.get(ME)).status_code == 401
        r = await c.get(ME, headers={"Cookie": f"sessionid={key}"})  # the old key, replayed
        assert r.status_code == 401 and r.json()["code"] == "NOT_AUTHENTICATED"
        assert (await c.post(LOGOUT)).status_code == 401  # signed out already
    assert await bk.mongo.audit_log.find_one({"action": "auth.logout", "subject_id": user.id})


async def test_login_attempts_are_limited_per_username_and_per_address(app, bk, contract):
    saved = (bk.settings.login_failures_per_username, bk.settings.login_failures_per_address)
    bk.settings.login_failures_per_username, bk.settings.login_failures_per_address = 3, 5
    try:
        user = await person(bk)
        async with browser(app, contract) as c, browser(app, contract) as other:
            for _ in range(3):
                assert (await c.post(LOGIN, json={"username": user.username, "password": "guess"})).status_code == 401
            r = await other.post(LOGIN, json={"username": user.username, "password": PASSWORD})  # another address
            assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED" and int(r.headers["retry-after"]) > 0
            codes = [(await other.post(LOGIN, json={"username": unique("x"), "password": "guess"})).status_code
                     for _ in range(6)]
            assert codes == [401] * 5 + [429]  # this address, whatever the username
    finally:
        bk.settings.login_failures_per_username, bk.settings.login_failures_per_address = saved


async def test_a_password_change_ends_every_other_session(app, bk, contract):
    user = await person(bk)
    async with browser(app, contract) as a, browser(app, contract) as b:
        await signed_in(a, user.username)
        await signed_in(b, user.username)
        new = "a brand new passphrase"
        r = await a.post("/api/auth/password/", json={"old_password": "wrong", "new_password": new}, headers=csrf(a))
        assert r.status_code == 400 and r.json()["code"] == "INVALID_PASSWORD"
        r = await a.post("/api/auth/password/", json={"old_password": PASSWORD, "new_password": "short"},
                         headers=csrf(a))
        assert r.status_code == 400 and r.json()["code"] == "PASSWORD_TOO_SHORT"
        r = await a.post("/api/auth/password/", json={"old_password": PASSWORD, "new_password": new}, headers=csrf(a))
        assert r.status_code == 204, r.text
        assert (await a.get(ME)).status_code == 200  # the session that changed it stays
        assert (await b.get(ME)).status_code == 401
        assert (await b.post(LOGIN, json={"username": user.username, "password": PASSWORD})).status_code == 401
        await signed_in(b, user.username, new)
    # set by an operator (ikl set_password): every session ends
    assert await signin.set_password(bk, user=user, password="yet another passphrase") == 2


async def test_deactivated_users_service_accounts_and_sso_users_cannot_sign_in(app, bk, contract):
    from app.errors import Conflict
    from app.users import passwords

    gone = await person(bk)
    token = await issue_token(bk, user=gone)
    bot = await person(bk, password="", service_account=True)
    with pytest.raises(Conflict):
        await signin.set_password(bk, user=bot, password=PASSWORD)
    sso = await person(bk, password="")
    await bk.mongo.users.update_one({"_id": sso.id}, {"$set": {"sso_provider": "test-sso"}})
    for u in (bot, sso):  # a hash written straight to the database still does not let them in
        await bk.mongo.users.update_one({"_id": u.id}, {"$set": {"password_hash": await passwords.hash_password(PASSWORD)}})
    async with browser(app, contract) as c:
        await signed_in(c, gone.username)
        await bk.mongo.users.update_one({"_id": gone.id}, {"$set": {"is_active": False}})
        await signin.sign_out_everywhere(bk, user_id=gone.id)
        assert (await c.get(ME)).status_code == 401
        assert (await c.get(ME, headers={"Authorization": f"Token {token}"})).status_code == 401
        for u in (gone, bot, sso):
            r = await c.post(LOGIN, json={"username": u.username, "password": PASSWORD})
            assert r.status_code == 401 and r.json()["error"] == "Invalid username or password.", u.username
    reasons = {e["changes"]["reason"] async for e in bk.mongo.audit_log.find(
        {"action": "auth.login_failed", "subject_id": {"$in": [gone.id, bot.id, sso.id]}})}
    assert reasons == {"inactive", "service_account", "sso_user"}


async def test_cookies_are_secure_outside_development_and_test(stack, bk):
    from app.main import create_app
    from app.settings import Settings

    user = await person(bk)
    prod = create_app(Settings(environment="production", outbox_sweep_interval=0))
    async with prod.router.lifespan_context(prod), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=prod), base_url="https://prod") as c:
        r = await c.post(LOGIN, json={"username": user.username, "password": PASSWORD})
        assert r.status_code == 200
        assert all("; secure" in h.lower() for h in r.headers.get_list("set-cookie"))


def ikl(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], input=stdin, cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


async def test_ikl_set_password_reads_stdin(app, bk, contract, stack):
    from app.users import passwords

    name = unique("cli")
    assert ikl("create_user", name).returncode == 0
    short = ikl("set_password", name, stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    nobody = ikl("set_password", unique("nobody"), stdin="a long enough password\n")
    assert nobody.returncode == 1 and "not found" in nobody.stderr
    password = " spaces  inside and around "  # kept as typed: only the line's end is dropped
    done = ikl("set_password", name, stdin=password + "\n")
    assert done.returncode == 0 and "password set" in done.stdout, done.stdout + done.stderr
    doc = await bk.mongo.users.find_one({"username": name})
    assert doc["password_hash"].startswith("$argon2id$") and await passwords.verify_password(doc["password_hash"], password)
    async with browser(app, contract) as c:
        assert (await c.post(LOGIN, json={"username": name, "password": password})).status_code == 200


async def test_a_session_opens_a_graphql_websocket_with_its_csrf_token(bk, live_api):
    from tests.test_graphql_ws import closed, opened, recv, send

    user = await person(bk)
    async with httpx.AsyncClient(base_url=live_api) as c:
        await signed_in(c, user.username)
        cookie = {"Cookie": f"sessionid={c.cookies['sessionid']}"}
        async with opened(live_api, headers=cookie) as ws:
            await send(ws, {"type": "connection_init", "payload": {"X-CSRFToken": c.cookies["csrftoken"]}})
            assert await recv(ws) == {"type": "connection_ack"}
            await send(ws, {"type": "subscribe", "id": "1", "payload": {"query": "{ incidents(pageSize: 1) { totalCount } }"}})
            assert (await recv(ws))["type"] == "next"
        async with opened(live_api, headers=cookie) as ws:  # another site's page cannot know the token
            await send(ws, {"type": "connection_init", "payload": {}})
            assert (await closed(ws))[0] == 4403
        async with opened(live_api, headers=cookie) as ws:  # the session ends: so does the connection
            await send(ws, {"type": "connection_init", "payload": {"X-CSRFToken": c.cookies["csrftoken"]}})
            assert await recv(ws) == {"type": "connection_ack"}
            assert (await c.post(LOGOUT, headers=csrf(c))).status_code == 204
            assert (await closed(ws, timeout=20))[0] == 4403


async def test_only_credentials_that_could_be_valid_count_against_the_address(app, bk, contract):
    """A malformed session key or JWT is refused without a lookup and not counted (like a header of an unknown
    scheme); a well-formed one that signs nobody in counts like a bad token."""
    from app.http import ratelimit

    saved = bk.settings.auth_failures_per_minute
    bk.settings.auth_failures_per_minute = 3
    try:
        async with browser(app, contract) as c:
            for _ in range(5):
                assert (await c.get(ME, headers={"Cookie": "sessionid=SCHEMATHESIS-INVALID-VALUE"})).status_code == 401
                assert (await c.get(ME, headers={"Authorization": "Bearer not-a-jwt"})).status_code == 401
            codes = [(await c.get(ME, headers={"Cookie": f"sessionid={'A' * 42}{i}"})).status_code for i in range(5)]
            assert codes == [401, 401, 401, 429, 429]
    finally:
        bk.settings.auth_failures_per_minute = saved
        ratelimit._auth_failures.clear()
