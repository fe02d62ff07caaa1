"""Users and their tokens managed by admins through the API (REST /api/auth/users/, GraphQL): create, change
role and clearance, deactivate (its sessions and tokens end at once) and reactivate; tokens shown once, listed
without secrets, revoked; service accounts never sign in with a password. Everyone else: 403, before the body
is looked at."""

from __future__ import annotations

from app.users.models import Classification, Role, UserCreate
from app.users.service import create_user, issue_token
from tests.conftest import unique
from tests.incidents.test_graphql import gql
from tests.test_auth_session import PASSWORD, browser, csrf, signed_in

USERS = "/api/auth/users/"
ME = "/api/auth/me/"


async def make(client, admin, **body) -> dict:
    r = await client.post(USERS, headers=admin, json={"username": unique("u"), **body})
    assert r.status_code == 201, r.text
    return r.json()


async def new_token(client, admin, uid: str, name: str = "ci") -> dict:
    r = await client.post(f"{USERS}{uid}/tokens/", headers=admin, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


def as_token(key: str) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


async def test_an_admin_creates_a_user_gives_it_a_token_and_deactivating_it_ends_the_token(client, admin, bk):
    user = await make(client, admin, role="viewer", clearance="PUBLIC", team="sre", email="a@example.com")
    assert {k: user[k] for k in ("role", "clearance", "team", "is_active", "is_service_account", "has_password")} == \
        {"role": "viewer", "clearance": "PUBLIC", "team": "sre", "is_active": True, "is_service_account": False,
         "has_password": False}
    token = await new_token(client, admin, user["id"])
    assert len(token["key"]) == 40 and token["name"] == "ci"
    me = await client.get(ME, headers=as_token(token["key"]))
    assert me.status_code == 200 and me.json()["username"] == user["username"] and me.json()["clearance"] == "PUBLIC"

    listed = await client.get(f"{USERS}{user['id']}/tokens/", headers=admin)
    assert listed.status_code == 200 and [t["id"] for t in listed.json()] == [token["id"]]
    assert "key" not in listed.text and "key_hash" not in listed.text

    r = await client.patch(f"{USERS}{user['id']}/", headers=admin, json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert (await client.get(ME, headers=as_token(token["key"]))).status_code == 401  # at once, not after a cache
    assert await bk.mongo.tokens.count_documents({"user_id": user["id"]}) == 0  # revoked, not only suspended

    r = await client.patch(f"{USERS}{user['id']}/", headers=admin, json={"is_active": True})
    assert r.status_code == 200 and r.json()["is_active"] is True
    assert (await client.get(ME, headers=as_token(token["key"]))).status_code == 401  # reactivation is no revival
    fresh = await new_token(client, admin, user["id"])
    assert (await client.get(ME, headers=as_token(fresh["key"]))).status_code == 200

    actions = [e["action"] async for e in bk.mongo.audit_log.find({"subject_type": "user", "subject_id": user["id"]})]
    assert {"user.create", "token.create", "user.update"} <= set(actions), actions


async def test_a_token_lookup_that_read_the_user_before_a_deactivation_caches_nothing(bk, monkeypatch):
    """A lookup read the user; the user was deactivated (`forget_user`) before the lookup cached it. It must not
    cache what it read, or the deactivated user would be let in by this process for AUTH_CACHE_SECONDS more."""
    from app.users import service

    user = await create_user(bk, data=UserCreate(username=unique("race"), role=Role.VIEWER))
    key = await issue_token(bk, user=user)
    to_user = service._to_user

    def deactivated_meanwhile(doc):
        service.forget_user(doc["_id"])  # the deactivation lands between this lookup's read and its caching
        return to_user(doc)

    monkeypatch.setattr(service, "_to_user", deactivated_meanwhile)
    assert (await service.authenticate(bk, key=key)).id == user.id  # it began before: it is answered
    assert service.cached_user(key=key) is None  # but not remembered
    monkeypatch.setattr(service, "_to_user", to_user)
    assert (await service.authenticate(bk, key=key)).id == user.id
    assert service.cached_user(key=key) is not None  # with no deactivation beside it, cached as before


async def test_deactivation_ends_every_session_of_the_user(app, bk, contract, client, admin):
    person = await create_user(bk, data=UserCreate(username=unique("sess"), role=Role.EDITOR))
    from app.users import signin
    await signin.set_password(bk, user=person, password=PASSWORD)
    async with browser(app, contract) as c:
        await signed_in(c, person.username)
        assert (await c.get(ME)).status_code == 200
        r = await client.patch(f"{USERS}{person.id}/", headers=admin, json={"is_active": False})
        assert r.status_code == 200
        assert (await c.get(ME)).status_code == 401
        assert (await c.post("/api/auth/login/", json={"username": person.username, "password": PASSWORD})
                ).status_code == 401
    assert await bk.mongo.sessions.count_documents({"user_id": person.id}) == 0


async def test_a_role_change_applies_to_the_next_request(client, admin):
    user = await make(client, admin, role="viewer")
    key = (await new_token(client, admin, user["id"]))["key"]
    body = {"title": unique("promoted"), "severity": "LOW"}
    assert (await client.post("/api/v1/incidents/", headers=as_token(key), json=body)).status_code == 403
    assert (await client.patch(f"{USERS}{user['id']}/", headers=admin, json={"role": "editor"})).status_code == 200
    assert (await client.post("/api/v1/incidents/", headers=as_token(key), json=body)).status_code == 201


async def test_revoking_a_token_ends_it_and_only_it(client, admin):
    user = await make(client, admin)
    one, two = await new_token(client, admin, user["id"], "one"), await new_token(client, admin, user["id"], "two")
    assert (await client.get(ME, headers=as_token(one["key"]))).status_code == 200
    r = await client.delete(f"{USERS}{user['id']}/tokens/{one['id']}/", headers=admin)
    assert r.status_code == 204
    assert (await client.get(ME, headers=as_token(one["key"]))).status_code == 401
    assert (await client.get(ME, headers=as_token(two["key"]))).status_code == 200
    again = await client.delete(f"{USERS}{user['id']}/tokens/{one['id']}/", headers=admin)
    assert again.status_code == 404 and again.json()["code"] == "TOKEN_NOT_FOUND"
    # another user's token is not revoked through this user's path
    other = await make(client, admin)
    theirs = await new_token(client, admin, other["id"])
    r = await client.delete(f"{USERS}{user['id']}/tokens/{theirs['id']}/", headers=admin)
    assert r.status_code == 404
    assert (await client.get(ME, headers=as_token(theirs["key"]))).status_code == 200


async def test_a_token_made_with_the_cli_is_listed_and_revoked_too(client, admin, bk):
    user = await create_user(bk, data=UserCreate(username=unique("cli")))
    key = await issue_token(bk, user=user)
    listed = (await client.get(f"{USERS}{user.id}/tokens/", headers=admin)).json()
    assert len(listed) == 1 and listed[0]["created_by"] is None
    assert (await client.delete(f"{USERS}{user.id}/tokens/{listed[0]['id']}/", headers=admin)).status_code == 204
    assert (await client.get(ME, headers=as_token(key))).status_code == 401


async def test_users_are_listed_filtered_and_searched(client, admin):
    team = unique("team")
    bot = await make(client, admin, team=team, service_account=True, role="editor")
    person = await make(client, admin, team=team, role="viewer")
    r = await client.get(USERS, headers=admin, params={"team": team})
    assert r.status_code == 200 and r.json()["count"] == 2
    assert [u["username"] for u in r.json()["results"]] == sorted([bot["username"], person["username"]])
    bots = (await client.get(USERS, headers=admin, params={"team": team, "service_account": "true"})).json()
    assert [u["id"] for u in bots["results"]] == [bot["id"]] and bots["results"][0]["is_service_account"]
    found = (await client.get(USERS, headers=admin, params={"search": person["username"]})).json()
    assert [u["id"] for u in found["results"]] == [person["id"]]
    r = await client.get(USERS, headers=admin, params={"role": "wizard"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_FILTER"
    everyone = (await client.get(USERS, headers=admin, params={"page_size": 100})).text
    assert "password_hash" not in everyone and "argon2" not in everyone


async def test_bad_input_is_a_400_and_duplicates_a_409(client, admin):
    user = await make(client, admin)
    r = await client.post(USERS, headers=admin, json={"username": user["username"]})
    assert r.status_code == 409 and r.json()["code"] == "USER_EXISTS"
    for body in ({"username": "has space"}, {"username": unique("u"), "role": "root"},
                 {"username": unique("u"), "password_hash": "x"}, {"username": unique("u"), "password": "short"}):
        r = await client.post(USERS, headers=admin, json=body)
        assert r.status_code == 400, (body, r.text)
        assert set(r.json()) == {"error", "details", "code"}
    r = await client.patch(f"{USERS}{user['id']}/", headers=admin, json={"username": "renamed"})
    assert r.status_code == 400
    assert (await client.get(f"{USERS}no-such-user/", headers=admin)).status_code == 404
    assert (await client.delete(f"{USERS}{user['id']}/", headers=admin)).status_code == 405  # deactivate instead


async def test_a_user_created_with_a_password_signs_in_and_a_service_account_never_does(app, contract, client, admin):
    person = await make(client, admin, password=PASSWORD)
    assert person["has_password"] is True
    async with browser(app, contract) as c:
        await signed_in(c, person["username"])
        assert (await c.get(ME)).json()["auth_method"] == "session"
        assert (await c.post("/api/auth/logout/", headers=csrf(c))).status_code == 204
    r = await client.post(USERS, headers=admin, json={"username": unique("bot"), "service_account": True,
                                                      "password": PASSWORD})
    assert r.status_code == 409 and r.json()["code"] == "PASSWORD_NOT_ALLOWED"
    bot = await make(client, admin, service_account=True)
    key = (await new_token(client, admin, bot["id"]))["key"]
    assert (await client.get(ME, headers=as_token(key))).json()["is_service_account"] is True


async def test_no_admin_grants_more_than_their_clearance_or_locks_themselves_out(client, admin, bk, tokens):
    limited = await create_user(bk, data=UserCreate(username=unique("adm"), role=Role.ADMIN,
                                                    clearance=Classification.CONFIDENTIAL))
    headers = as_token(await issue_token(bk, user=limited))
    r = await client.post(USERS, headers=headers, json={"username": unique("u"), "clearance": "RESTRICTED"})
    assert r.status_code == 403 and r.json()["code"] == "CLEARANCE_TOO_HIGH"
    someone = await make(client, admin)
    r = await client.patch(f"{USERS}{someone['id']}/", headers=headers, json={"clearance": "RESTRICTED"})
    assert r.status_code == 403
    for change in ({"is_active": False}, {"role": "editor"}):
        r = await client.patch(f"{USERS}{limited.id}/", headers=headers, json=change)
        assert r.status_code == 409 and r.json()["code"] == "SELF_LOCKOUT", change
    assert (await client.get(ME, headers=headers)).json()["role"] == "admin"


async def test_only_admins_manage_users_and_are_refused_before_the_body_is_read(client, admin, editor, viewer):
    user = await make(client, admin)
    for headers in (editor, viewer):
        for method, path, body in (("GET", USERS, None), ("POST", USERS, {"username": "x", "role": "admin"}),
                                   ("POST", USERS, {"not": "valid"}), ("GET", f"{USERS}{user['id']}/", None),
                                   ("PATCH", f"{USERS}{user['id']}/", {"role": "admin"}),
                                   ("GET", f"{USERS}{user['id']}/tokens/", None),
                                   ("POST", f"{USERS}{user['id']}/tokens/", None),
                                   ("GET", "/api/auth/permissions/", None)):
            r = await client.request(method, path, headers=headers, json=body)
            assert r.status_code == 403, (method, path, r.text)
    assert (await client.get(USERS, headers={})).status_code == 401
    assert (await client.get(f"{USERS}{user['id']}/", headers=admin)).json()["role"] == "viewer"


# --- GraphQL --------------------------------------------------------------------------------------------

CREATE = """mutation($input: CreateUserInput!) { createUser(input: $input) {
  __typename ... on UserAccount { id username role clearance isActive } ... on UserError { code field } } }"""
UPDATE = """mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) {
  __typename ... on UserAccount { id role isActive } ... on UserError { code } } }"""
TOKEN = """mutation($userId: ID!) { createUserToken(userId: $userId, name: "gql") {
  __typename ... on ApiToken { id key name } ... on UserError { code } } }"""


async def test_graphql_manages_users_and_tokens_for_admins(client, admin):
    name = unique("g")
    made = (await gql(client, admin, CREATE, input={"username": name, "role": "EDITOR", "clearance": "PUBLIC"}))
    user = made["data"]["createUser"]
    assert user["__typename"] == "UserAccount" and user["role"] == "EDITOR" and user["clearance"] == "PUBLIC"
    token = (await gql(client, admin, TOKEN, userId=user["id"]))["data"]["createUserToken"]
    assert token["__typename"] == "ApiToken" and len(token["key"]) == 40
    me = await gql(client, as_token(token["key"]), "{ me { username role authMethod } }")
    assert me["data"]["me"] == {"username": name, "role": "EDITOR", "authMethod": "token"}
    listed = await gql(client, admin, "query($id: ID!) { userTokens(userId: $id) { id key } }", id=user["id"])
    assert listed["data"]["userTokens"] == [{"id": token["id"], "key": None}]
    found = await gql(client, admin, "query($s: String) { users(search: $s) { totalCount results { username } } }", s=name)
    assert found["data"]["users"] == {"totalCount": 1, "results": [{"username": name}]}
    off = (await gql(client, admin, UPDATE, id=user["id"], input={"isActive": False}))["data"]["updateUser"]
    assert off == {"__typename": "UserAccount", "id": user["id"], "role": "EDITOR", "isActive": False}
    assert (await client.get(ME, headers=as_token(token["key"]))).status_code == 401
    dup = (await gql(client, admin, CREATE, input={"username": name}))["data"]["createUser"]
    assert dup == {"__typename": "ConflictError", "code": "USER_EXISTS", "field": None}


async def test_graphql_refuses_everyone_else_before_the_input_is_validated(client, admin, editor, viewer):
    user = (await gql(client, admin, CREATE, input={"username": unique("g")}))["data"]["createUser"]
    for headers in (editor, viewer):
        for query, variables in ((CREATE, {"input": {"username": "bad name!"}}),
                                 (UPDATE, {"id": user["id"], "input": {"role": "ADMIN"}}),
                                 (TOKEN, {"userId": user["id"]})):
            out = await gql(client, headers, query, **variables)
            field = next(iter(out["data"].values()))
            assert field["__typename"] == "PermissionDeniedError" and field["code"] == "PERMISSION_DENIED", out
        for query in ("{ users { totalCount } }", '{ user(id: "%s") { id } }' % user["id"],
                      '{ userTokens(userId: "%s") { id } }' % user["id"]):
            out = await gql(client, headers, query)
            assert out["data"] is None and out["errors"][0]["extensions"]["code"] == "PERMISSION_DENIED", out
