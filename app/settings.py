"""One Settings object for the whole service, read from the environment (prefix IKL_).

The three server URLs are also read from their conventional names MONGODB_URL, OPENSEARCH_URL
and BROKER_URL, which is what docker-compose and the local stack set.
"""

from __future__ import annotations

import json
from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.discovery import settings_overrides


class OIDCProvider(BaseModel):
    """One OpenID Connect provider whose ID tokens sign in (`Authorization: Bearer <JWT>`, app/users/oidc.py)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Letters, digits, `._-`: marks the users "
                      "it creates")
    issuer: str = Field(description="The tokens' `iss`, exactly")
    audience: str | list[str] = Field(description="This service's client id (or a list of them): the tokens' "
                                      "`aud` must hold one")
    jwks_url: str | None = Field(None, description="The provider's signing keys (JWKS), fetched over https and "
                                 "cached ...")
    jwks_file: str | None = Field(None, description="... or read from a file (exactly one of the two)")
    username_claim: str = Field("preferred_username", description="The claim that names the user")
    role_claim: str = Field("role", description="The claim that gives the role (viewer when absent)")
    clearance_claim: str = Field("clearance", description="The claim that gives the clearance (INTERNAL when "
                                 "absent)")

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
    """Every setting has a description: docs/settings.md is made from them (`ikl settings --markdown`)."""

    model_config = SettingsConfigDict(env_prefix="IKL_", extra="ignore")

    environment: str = Field("development", description="`development` serves GraphiQL and relaxes the cookies' "
                             "`Secure` flag; `test` is what the test suite runs as; anything else is production")
    mongodb_url: str = Field("mongodb://127.0.0.1:27017/?replicaSet=rs0",
                             validation_alias=AliasChoices("MONGODB_URL", "IKL_MONGODB_URL"),
                             description="MongoDB, a replica set (transactions); the source of truth")
    mongodb_db: str = Field("incident_knowledge", validation_alias=AliasChoices("MONGODB_DB", "IKL_MONGODB_DB"),
                            description="The MongoDB database")
    opensearch_url: str = Field("http://127.0.0.1:9200",
                                validation_alias=AliasChoices("OPENSEARCH_URL", "IKL_OPENSEARCH_URL"),
                                description="The OpenSearch-compatible search server")
    opensearch_password: SecretStr | None = Field(None, description="HTTP basic auth to the search server as "
                                                  "`admin`, when set")
    broker_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=AliasChoices("BROKER_URL", "IKL_BROKER_URL"),
                            description="Valkey (Redis protocol): the job queue, rate limits, live updates")

    index_prefix: str = Field("ikl", description="Search indices are `<prefix>-incidents`, `<prefix>-articles` "
                              "(aliases of versioned indices)")
    search_knn: bool = Field(True, description="Search incidents by meaning with the search server's k-NN "
                             "(`knn_vector`) when a probe finds it; false: always the in-process vector index")
    search_replicas: int = Field(0, ge=0, le=10, description="Replicas of each search index: set on every index "
                                 "built and on the live one at start (1 or more on a cluster; 0 on one node)")
    outbox_sweep_interval: float = Field(5.0, description="Seconds between sweeps of the index outbox (API and "
                                         "worker processes both sweep); 0 disables the sweep")
    outbox_lease_seconds: float = Field(30.0, description="An outbox entry's lease; a job's is renewed while "
                                        "it runs")
    outbox_max_backoff: float = Field(30.0, description="The longest wait before an entry that failed is tried "
                                      "again (seconds)")
    index_inline_timeout: float = Field(2.0, description="A write is indexed inline right after its MongoDB "
                                        "commit, and refreshed, within this many seconds (so the next search sees "
                                        "it); past it, or when the engine fails, the outbox delivers it. 0: off")
    search_inline_rebuild_max: int = Field(50_000, description="A search index that must be rebuilt (missing, or "
                                           "built from another definition) over at most this many documents is "
                                           "rebuilt by the process that finds it (a start waits); a larger one by "
                                           "the workers, once, while the API serves")

    page_size: int = Field(20, description="A list's page size when `page_size` is not given")
    max_page_size: int = Field(100, description="The largest `page_size` a list takes")

    graphql_max_depth: int = Field(10, description="GraphQL: the deepest selection (introspection not counted)")
    graphql_max_tokens: int = Field(2000, description="GraphQL: the most tokens a document may have")
    graphql_max_aliases: int = Field(30, description="GraphQL: aliases in the expanded document")
    graphql_max_cost: int = Field(10000, description="GraphQL: the cost of a document — every selected field "
                                  "costs 1, times the page size of each list above it (schema/limits.py)")
    graphql_max_root_fields: int = Field(30, description="GraphQL: root fields per document (aliases or repeats)")
    graphql_max_response_bytes: int = Field(4_194_304, description="GraphQL: the largest response body (JSON "
                                            "bytes); a larger one is replaced by a RESPONSE_TOO_LARGE error")
    statistics_cache_seconds: float = Field(0.0, description="Seconds a knowledge-base statistics result is "
                                            "reused for readers who see the same articles and usage events (0: "
                                            "only computations running at the same moment are shared)")
    max_body_bytes: int = Field(1_048_576, description="The largest request body (REST and GraphQL)")
    max_json_depth: int = Field(32, description="The deepest nesting of a JSON request body")

    request_timeout_seconds: float = Field(15.0, description="Every request's deadline; the drivers give up "
                                           "before it")
    graphql_ws_recheck_seconds: float = Field(5.0, description="A GraphQL WebSocket re-checks its token and user "
                                              "against the database on every operation and this often while "
                                              "open: a revoked token or a deactivated user closes it (4403)")
    graphql_ws_max_per_user: int = Field(20, description="Open GraphQL WebSockets per user, per process")
    graphql_ws_max_per_address: int = Field(50, description="Open GraphQL WebSockets per client address (IPv4, "
                                            "or the IPv6 /64), per process")
    mongodb_timeout_ms: int = Field(2500, description="The API's one deadline per MongoDB operation (server "
                                    "selection, connection, reply and retries; a whole transaction too): a "
                                    "database that is down or frozen answers 503 fast")
    mongodb_job_timeout_ms: int = Field(60000, description="The same deadline for workers and commands "
                                        "(aggregations over whole collections, index builds, migrations)")
    search_timeout_seconds: float = Field(10.0, description="Every search-server call ends within this; without "
                                          "the engine, searches answer 503 SEARCH_UNAVAILABLE")
    broker_timeout_seconds: float = Field(1.0, description="Every broker (Valkey) call ends within this")
    auth_failures_per_minute: int = Field(30, description="Failed authentications per client address per minute "
                                          "before 429")
    audit_retention_days: int = Field(365, ge=0, description="Audit log entries older than this many days are "
                                      "removed by the workers' hourly retention job (0: kept forever)")

    session_lifetime_seconds: int = Field(1_209_600, description="A sign-in session (POST /api/auth/login/) ends "
                                          "this long after sign-in (Django's two weeks)")
    session_cookie_secure: bool | None = Field(None, description="Unset: the `sessionid` and `csrftoken` cookies "
                                               "are `Secure` (HTTPS only) outside development and test; true or "
                                               "false decides it everywhere")
    login_failures_per_username: int = Field(10, description="Failed logins per username before 429, per window "
                                             "(0: off)")
    login_failures_per_address: int = Field(50, description="Failed logins per client address before 429, per "
                                            "window (0: off)")
    login_failure_window_seconds: int = Field(900, description="The fixed window of the two login limits")
    oidc_providers: list[OIDCProvider] = Field([], description="SSO: OpenID Connect providers whose ID tokens "
                                               "sign in, a JSON list (docs/operations.md#single-sign-on)")
    oidc_admin_from_claim: bool = Field(False, description="A role claim of `admin` is honoured only when true "
                                        "(otherwise the user gets the default role)")
    oidc_leeway_seconds: float = Field(30.0, description="Clock skew allowed on `exp` / `nbf` / `iat`")
    oidc_jwks_cache_seconds: float = Field(3600.0, description="A provider's keys are loaded again this often")
    oidc_jwks_refetch_seconds: float = Field(30.0, description="An unknown key id loads a provider's keys again "
                                             "at most this often")

    max_events_per_incident: int = Field(5000, description="Timeline events per incident (far below MongoDB's "
                                         "16 MB document limit)")
    max_timeline_bytes: int = Field(8_000_000, description="A timeline's stored size")

    log_level: str = Field("INFO", description="Logs are JSON lines carrying the request id or the job id")

    rate_limit_read: int = Field(1000, description="Read requests per user per hour (0: off)")
    rate_limit_write: int = Field(100, description="Write requests per user per hour (0: off)")
    rate_limit_search: int = Field(500, description="Searches per user per hour (0: off)")

    review_interval_days: int = Field(90, description="An article is due for review this long after its last "
                                      "review")
    ranking_weight_relevance: float = Field(0.35, description="Knowledge-base search: the weight of the engine's "
                                            "text relevance")
    ranking_weight_similarity: float = Field(0.50, description="Knowledge-base search: the weight of similarity "
                                             "(topic, terms, meaning)")
    ranking_weight_popularity: float = Field(0.15, description="Knowledge-base search: the weight of popularity "
                                             "(views, ratings)")
    ranking_similarity_topic_share: float = Field(0.5, description="Within similarity: the share of topic "
                                                  "affinity (the rest is the term-vector cosine)")
    ranking_similarity_semantic_share: float = Field(0.5, description="Within similarity: the share of meaning "
                                                     "(the query's embedding against the article's); for an "
                                                     "article not embedded yet it goes to the term-vector cosine")

    strict_separation_of_duties: bool = Field(False, description="Nobody approves a postmortem they answer for "
                                              "(owner, author, former owner), but an admin may, audit-logged as "
                                              "`self_approval`; true refuses admins too")
    postmortem_due_days: dict[str, int] = Field({"CRITICAL": 3, "HIGH": 5, "MEDIUM": 10, "LOW": 20},
                                                description="Days after resolution a postmortem is due, by "
                                                "severity (JSON)")
    postmortem_due_min_days: float = Field(2.0, description="... but never less than this many days after the "
                                           "postmortem is created")
    postmortem_auto_severities: list[str] = Field(["HIGH", "CRITICAL"], description="Resolving an incident of "
                                                  "these severities starts a generation (JSON; `[]`: off)")
    postmortem_review_threshold: float = Field(0.6, description="A generation whose draft confidence is below "
                                               "this ends REVIEW_REQUIRED instead of COMPLETED")
    postmortem_generation_lease_seconds: float = Field(60.0, description="A generation's lease, renewed while it "
                                                       "runs; past it (worker killed) the sweep runs it again")
    postmortem_generation_max_attempts: int = Field(3, description="Attempts before a generation that keeps "
                                                    "failing on transient errors is FAILED")
    postmortem_generation_sweep_interval: float = Field(5.0, description="Seconds between the workers' sweeps "
                                                        "for generations left PENDING or with an expired lease")
    postmortem_generation_wait_seconds: float = Field(8.0, ge=0, description="Drafting a postmortem by hand "
                                                      "(generate_automated/, generatePostmortemDraft) while a "
                                                      "generation of its incident is PENDING or PROCESSING waits "
                                                      "this long for it to finish (at most half of "
                                                      "request_timeout_seconds), then drafts; still running then: "
                                                      "409 GENERATION_IN_PROGRESS (0: at once)")
    postmortem_generation_requeue_seconds: float = Field(10.0, description="A PENDING generation this old is "
                                                         "picked up by the sweep (its message was lost)")
    postmortem_polish_url: str | None = Field(None, description="Optional prose polishing of drafts by an "
                                              "OpenAI-compatible chat-completions endpoint (off when unset)")
    postmortem_polish_model: str = Field("gpt-4o-mini", description="The polishing endpoint's model")
    postmortem_polish_api_key: SecretStr | None = Field(None, description="The polishing endpoint's key")
    postmortem_polish_timeout_seconds: float = Field(20.0, description="A polishing call ends within this")

    recommendation_auto_severities: list[str] = Field(["HIGH", "CRITICAL"], description="Opening an incident "
                                                      "of these severities generates its recommendations "
                                                      "through the workers (JSON; `[]`: off)")
    recommendation_auto_max: int = Field(5, description="How many recommendations that generation keeps")
    recommendation_refresh_debounce_seconds: float = Field(30.0, description="An open incident that learns more "
                                                           "(a root cause, Analysis events) has its "
                                                           "recommendations refreshed after this debounce")
    recommendation_calibration_refit_seconds: float = Field(3600.0, description="How often the workers refit "
                                                            "the confidence calibration on the ratings")
    pattern_mining_interval_seconds: float = Field(86400.0, description="The workers mine learning patterns "
                                                   "this often (0: only by hand)")
    pattern_mining_days: int = Field(30, description="... over the incidents of this many days")
    pattern_mining_min_frequency: int = Field(3, description="... a pattern seen at least this often")

    webhook_allow_loopback: bool = Field(False, description="A webhook may target this machine (127.0.0.0/8, "
                                         "::1, names resolving there): for tests and local automation only")
    webhook_allow_private: bool = Field(False, description="A webhook may target private and other non-public "
                                        "ranges (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10); link-local "
                                        "and cloud metadata addresses are refused whatever this says")
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60, description="One delivery attempt, from the DNS "
                                           "lookup to the answer's status line")
    webhook_first_retry_seconds: float = Field(5.0, ge=0, description="The first retry after a failed attempt; "
                                               "each next one waits twice as long")
    webhook_max_backoff_seconds: float = Field(3600.0, ge=0, description="The longest wait between attempts")
    webhook_max_attempts: int = Field(10, ge=1, le=50, description="Attempts in all; then the delivery is "
                                      "`failed` (an admin may redeliver it)")
    webhook_sweep_seconds: float = Field(1.0, description="How often each worker looks for due deliveries "
                                         "(0: stops sending)")
    webhook_delivery_retention_days: int = Field(30, ge=1, description="Finished deliveries are removed after "
                                                 "this")

    live_stream_max_seconds: float = Field(900.0, description="A live-update stream (SSE, GraphQL subscription) "
                                           "ends after this")
    live_keepalive_seconds: float = Field(15.0, description="A live-update stream's keep-alive interval")
    live_max_streams: int = Field(1000, description="Open live-update streams per process")
    live_max_streams_per_user: int = Field(10, description="Open live-update streams per user, per process")
    live_recheck_seconds: float = Field(5.0, description="An open SSE stream re-checks its token and user "
                                        "against the database this often: a deleted token or a deactivated "
                                        "user ends it")

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


def _variables(name: str, field) -> list[str]:
    alias = field.validation_alias
    return list(alias.choices) if isinstance(alias, AliasChoices) else [f"IKL_{name.upper()}"]


def _shown(value: object) -> str:
    if value is None or isinstance(value, SecretStr):
        return "unset"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{json.dumps(value)}`"


def settings_page(*, markdown: bool = False) -> str:
    """Every setting: its environment variables, default and description — JSON, or the page
    docs/settings.md (kept current by tests/test_settings.py)."""
    rows = [{"variables": _variables(name, field), "default": field.get_default(call_default_factory=True),
             "description": field.description} for name, field in Settings.model_fields.items()]
    if not markdown:
        return json.dumps(rows, indent=2, default=str)
    provider = [f"| `{name}` | {'required' if f.is_required() else _shown(f.get_default())} | {f.description} |"
                for name, f in OIDCProvider.model_fields.items()]
    return "\n".join([
        "# Settings", "",
        "<!-- Made from the settings' field descriptions (app/settings.py): "
        "`ikl settings --markdown > docs/settings.md`. -->", "",
        "Read from the environment when a process starts. Lists and objects take JSON "
        "(`IKL_POSTMORTEM_AUTO_SEVERITIES='[\"CRITICAL\"]'`). A server the environment does not name is taken from "
        "the running `dev.py run`, if any ([operations](operations.md#settings)).", "",
        "| variable | default | what it does |", "| --- | --- | --- |",
        *(f"| {' / '.join(f'`{v}`' for v in r['variables'])} | {_shown(r['default'])} | {r['description']} |"
          for r in rows),
        "", "## An SSO provider (`IKL_OIDC_PROVIDERS`, one JSON object each)", "",
        "| field | default | what it is |", "| --- | --- | --- |", *provider, ""])


@lru_cache
def get_settings() -> Settings:
    # A server the environment does not name is taken from the running `dev.py run`, if any (app/discovery.py).
    return Settings(**settings_overrides())
