"""What the audit log REST API answers (app/activity/rest.py), as output models for the OpenAPI document."""

from __future__ import annotations

from pydantic import Field

from app.outputs import JsonObject, Output, Timestamp, examples

_ENTRY = {
    "id": "0b7f8f0e-5d7a-4c55-9a53-2f0d3c1e9a41", "at": "2026-03-19T15:42:07.118000Z", "action": "read",
    "subject_type": "knowledge_article", "subject_id": "5f0c6a0e-2b8e-4c1a-9d3e-7a6b5c4d3e2f",
    "user_id": "9a3e1c2b-7d4f-4e5a-8b6c-1d2e3f4a5b6c", "username": "alice", "auth_method": "token",
    "ip": "10.0.4.17", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "request_id": "6f1c0d8e2b5a4f7e9c3d1a2b4c6e8f0a",
    "changes": {"slug": "database-connection-pool-exhaustion-3f2a9c1d"},
}


class AuditEntry(Output):
    """One entry of the audit log: who did what to which object, when, from where and signed in how.
    Entries are never changed or deleted through the API; the retention job removes old ones."""

    model_config = examples(_ENTRY)

    id: str = Field(description="The entry's id (a UUID)")
    at: Timestamp = Field(description="When it happened")
    action: str = Field(description="What was done: create, update, delete, read, search, resolve, approve, "
                                    "auth.login, auth.login_failed, …")
    subject_type: str = Field(description="The kind of object: incident, knowledge_article, postmortem, "
                                          "postmortem_generation, recommendation, learning_pattern, "
                                          "pattern_mining_run, knowledge_base (a search), user, …")
    subject_id: str | None = Field(description="The object's id (a search: its search_id, the usage event's)")
    user_id: str | None = Field(description="Who did it (null: a failed sign-in of no known user)")
    username: str | None = Field(description="Their username at the time (a failed sign-in: the name it tried)")
    auth_method: str | None = Field(description="How they signed in: token, session or sso (null outside a "
                                                "request: a worker, a command)")
    ip: str | None = Field(description="The client's address (null outside a request)")
    user_agent: str | None = Field(description="The client's User-Agent (its first 512 characters)")
    request_id: str | None = Field(description="The request's id (its X-Request-ID; in the logs too)")
    changes: JsonObject = Field(description="What changed, or what the action concerned (a search: its query, "
                                            "filters and result count)")
