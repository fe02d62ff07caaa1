"""One Settings object for the whole service, read from the environment (prefix IKL_).

The three server URLs are also read from their conventional names MONGODB_URL, OPENSEARCH_URL
and BROKER_URL, which is what docker-compose and the local stack set.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.discovery import settings_overrides


class OIDCProvider(BaseModel):
    """One OpenID Connect provider whose ID tokens sign in (`Authorization: Bearer <JWT>`, app/users/oidc.py)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    issuer: str                             # the tokens' `iss`, exactly
    audience: str | list[str]               # this service's client id(s): the tokens' `aud` must hold one
    jwks_url: str | None = None             # the provider's JWKS, fetched and cached ...
    jwks_file: str | None = None            # ... or read from a file (one of the two)
    username_claim: str = "preferred_username"
    role_claim: str = "role"
    clearance_claim: str = "clearance"

    @model_validator(mode="after")
    def _one_key_source(self) -> "OIDCProvider":
        if bool(self.jwks_url) == bool(self.jwks_file):
            raise ValueError(f"OIDC provider {self.name!r}: give exactly one of jwks_url and jwks_file")
        url = urlsplit(self.jwks_url or "")
        if self.jwks_url and not (url.scheme == "https" or (url.scheme == "http" and url.hostname in LOOPBACK)):
            raise ValueError(f"OIDC provider {self.name!r}: jwks_url must be https (http only on this machine)")
        return self


LOOPBACK = ("127.0.0.1", "::1", "localhost")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IKL_", extra="ignore")

    environment: str = "development"
    mongodb_url: str = Field("mongodb://127.0.0.1:27017/?replicaSet=rs0",
                             validation_alias=AliasChoices("MONGODB_URL", "IKL_MONGODB_URL"))
    mongodb_db: str = Field("incident_knowledge", validation_alias=AliasChoices("MONGODB_DB", "IKL_MONGODB_DB"))
    opensearch_url: str = Field("http://127.0.0.1:9200",
                                validation_alias=AliasChoices("OPENSEARCH_URL", "IKL_OPENSEARCH_URL"))
    opensearch_password: SecretStr | None = None
    broker_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=AliasChoices("BROKER_URL", "IKL_BROKER_URL"))

    index_prefix: str = "ikl"
    # Search incidents by meaning with the search server's k-NN (`knn_vector`) when it offers it (a
    # capability probe decides; app/vectors/knn.py); false: always the in-process vector index.
    search_knn: bool = True
    # Seconds between sweeps of the index outbox (API process and worker both sweep).
    outbox_sweep_interval: float = 5.0
    outbox_lease_seconds: float = 30.0
    outbox_max_backoff: float = 30.0
    # A write is indexed inline, right after its MongoDB commit, within this many seconds (and refreshed, so
    # the next request's search sees it); past it, or when the engine fails, the outbox delivers it. 0: off.
    index_inline_timeout: float = 2.0
    # A search index that must be rebuilt from MongoDB (missing, or built from another definition) over at
    # most this many documents is rebuilt by the process that finds it (a start waits for it); a larger one
    # by the workers, once, while the API serves (from the old index, if there is one).
    search_inline_rebuild_max: int = 50_000

    page_size: int = 20
    max_page_size: int = 100

    graphql_max_depth: int = 10
    graphql_max_tokens: int = 2000
    graphql_max_aliases: int = 30
    # Cost of a document: every selected field costs 1, times the page size of each list above it
    # (see schema/limits.py). Also the cap on root fields per document (aliases or repeats).
    graphql_max_cost: int = 10000
    graphql_max_root_fields: int = 30
    # The largest GraphQL response body (JSON bytes); a larger one is replaced by a RESPONSE_TOO_LARGE error.
    graphql_max_response_bytes: int = 4_194_304
    # Seconds a knowledge-base statistics result is reused for readers who see the same articles and
    # usage events (0: only computations running at the same moment are shared).
    statistics_cache_seconds: float = 0.0
    # Request bodies (REST and GraphQL) and JSON structure.
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 32

    # Every request has a deadline; the drivers give up before it.
    request_timeout_seconds: float = 15.0
    # A GraphQL WebSocket re-checks its token and user against the database on every operation and this
    # often while it is open: a revoked token or a deactivated user closes it (4403).
    graphql_ws_recheck_seconds: float = 5.0
    graphql_ws_max_per_user: int = 20     # open GraphQL WebSockets per user, per process
    graphql_ws_max_per_address: int = 50  # and per client address (IPv4, or the IPv6 /64)
    # One deadline per MongoDB operation: server selection, connection, the reply and the driver's own
    # retries together (CSOT `timeoutMS`); a whole transaction, its retries included, ends within it too.
    # The API's is short, so a database that is down or frozen answers 503 fast; workers and commands
    # (aggregations over whole collections) have their own.
    mongodb_timeout_ms: int = 2500
    mongodb_job_timeout_ms: int = 60000
    search_timeout_seconds: float = 10.0
    broker_timeout_seconds: float = 1.0
    # Failed authentications per client address per minute before 429.
    auth_failures_per_minute: int = 30
    # Audit log entries older than this many days are removed by the workers' retention job (0: kept forever).
    audit_retention_days: int = Field(365, ge=0)

    # Session sign-in (POST /api/auth/login/): a session lasts this long from sign-in (Django's 2 weeks).
    session_lifetime_seconds: int = 1_209_600
    # The session and CSRF cookies are `Secure` (sent over HTTPS only) outside development and test; true or
    # false decides it everywhere.
    session_cookie_secure: bool | None = None
    # Failed logins before 429, per username and per client address, in fixed windows of this many seconds.
    login_failures_per_username: int = 10
    login_failures_per_address: int = 50
    login_failure_window_seconds: int = 900
    # SSO: OpenID Connect providers (a JSON list in IKL_OIDC_PROVIDERS; see docs/operations.md).
    oidc_providers: list[OIDCProvider] = []
    # A role claim of `admin` is honoured only when this is true (otherwise the user gets the default role).
    oidc_admin_from_claim: bool = False
    oidc_leeway_seconds: float = 30.0           # clock skew allowed on exp / nbf / iat
    oidc_jwks_cache_seconds: float = 3600.0     # a fetched JWKS is used this long before it is fetched again
    oidc_jwks_refetch_seconds: float = 30.0     # an unknown key id refetches the JWKS at most this often

    # Timelines stay far below MongoDB's 16 MB document limit.
    max_events_per_incident: int = 5000
    max_timeline_bytes: int = 8_000_000

    log_level: str = "INFO"

    # Requests per user per hour (the documented limits); 0 turns a class off.
    rate_limit_read: int = 1000
    rate_limit_write: int = 100
    rate_limit_search: int = 500

    # Knowledge base
    review_interval_days: int = 90
    ranking_weight_relevance: float = 0.35
    ranking_weight_similarity: float = 0.50
    ranking_weight_popularity: float = 0.15
    # Within similarity: the share given to topic affinity (the rest is the term-vector cosine).
    ranking_similarity_topic_share: float = 0.5
    # Within similarity: the share given to meaning (the query's embedding against the article's); for an
    # article not embedded yet it goes to the term-vector cosine.
    ranking_similarity_semantic_share: float = 0.5

    # Postmortems
    # Separation of duties on approval: nobody approves a postmortem they answer for (owner, author, former
    # owner), but an admin may, as an audit-logged override; true refuses admins too.
    strict_separation_of_duties: bool = False
    postmortem_due_days: dict[str, int] = {"CRITICAL": 3, "HIGH": 5, "MEDIUM": 10, "LOW": 20}  # after resolution
    # ... but never less than this many days after the postmortem is created (not overdue the moment it exists)
    postmortem_due_min_days: float = 2.0
    # Resolving an incident of one of these severities starts one generation job (trigger incident_resolved).
    postmortem_auto_severities: list[str] = ["HIGH", "CRITICAL"]
    # A generation whose draft confidence is below this ends REVIEW_REQUIRED instead of COMPLETED.
    postmortem_review_threshold: float = 0.6
    # A worker holds a generation this long; past it (worker killed) the sweep runs it again.
    postmortem_generation_lease_seconds: float = 60.0
    # Attempts before a generation that keeps failing on transient errors is marked FAILED.
    postmortem_generation_max_attempts: int = 3
    # Seconds between the worker's sweeps for generations left PENDING (broker down) or with an expired lease.
    postmortem_generation_sweep_interval: float = 5.0
    # A PENDING generation this old is picked up by the sweep (its message was lost or the broker was down).
    postmortem_generation_requeue_seconds: float = 10.0
    # Optional prose polishing by an OpenAI-compatible chat-completions endpoint (off when no URL).
    postmortem_polish_url: str | None = None
    postmortem_polish_model: str = "gpt-4o-mini"
    postmortem_polish_api_key: SecretStr | None = None
    postmortem_polish_timeout_seconds: float = 20.0

    # Recommendations: opening an incident of one of these severities generates them through the worker;
    # an open incident that learns more (a root cause, Analysis events) refreshes them after this debounce.
    recommendation_auto_severities: list[str] = ["HIGH", "CRITICAL"]
    recommendation_auto_max: int = 5
    recommendation_refresh_debounce_seconds: float = 30.0
    recommendation_calibration_refit_seconds: float = 3600.0
    # Learning patterns are mined by the workers this often (0: only by hand), over this many days.
    pattern_mining_interval_seconds: float = 86400.0
    pattern_mining_days: int = 30
    pattern_mining_min_frequency: int = 3

    # Outbound webhooks (app/webhooks/, docs/domains/webhooks.md). Targets on this machine's loopback, or on
    # private / shared / documentation ranges, are refused unless allowed here (link-local and cloud metadata
    # addresses always are). A delivery that fails is retried after webhook_first_retry_seconds, doubling up to
    # webhook_max_backoff_seconds, webhook_max_attempts attempts in all; each attempt (DNS, connection, answer)
    # ends within webhook_timeout_seconds. Workers look for due deliveries every webhook_sweep_seconds.
    webhook_allow_loopback: bool = False
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60)
    webhook_first_retry_seconds: float = Field(5.0, ge=0)
    webhook_max_backoff_seconds: float = Field(3600.0, ge=0)
    webhook_max_attempts: int = Field(10, ge=1, le=50)
    webhook_sweep_seconds: float = 1.0
    webhook_delivery_retention_days: int = Field(30, ge=1)

    # Live updates (SSE and GraphQL subscriptions): a stream ends after this many seconds; keep-alive interval.
    live_stream_max_seconds: float = 900.0
    live_keepalive_seconds: float = 15.0
    live_max_streams: int = 1000           # per process
    live_max_streams_per_user: int = 10    # per process
    # An open SSE stream re-checks its token and user against the database this often (not the token
    # cache): a deleted token or a deactivated user ends it.
    live_recheck_seconds: float = 5.0

    @model_validator(mode="after")
    def _distinct_providers(self) -> "Settings":
        for attr in ("name", "issuer"):
            values = [getattr(p, attr) for p in self.oidc_providers]
            if len(values) != len(set(values)):
                raise ValueError(f"IKL_OIDC_PROVIDERS: two providers have the same {attr}")
        return self

    @property
    def development(self) -> bool:
        return self.environment == "development"


@lru_cache
def get_settings() -> Settings:
    # A server the environment does not name is taken from the running `dev.py run`, if any (app/discovery.py).
    return Settings(**settings_overrides())
