"""Settings: `hivegraph.yaml` plus `HIVEGRAPH_...__...` environment overrides.

Precedence, highest first: keyword arguments, environment variables, the YAML
file, the profile's defaults, the field defaults. Backends are chosen by a
plain string (`vector_store.backend`) with one sub-model per built-in backend;
`hivegraph.registry.check_backends` checks the names against the registries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hivegraph.errors import ConfigError

CONFIG_ENV_VAR = "HIVEGRAPH_CONFIG"
DEFAULT_HOME = Path(os.environ.get("HIVEGRAPH_HOME", Path.home() / ".cache" / "hivegraph"))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class PostgresSettings(_Section):
    """A PostgreSQL server, reached through a `psycopg_pool` connection pool."""

    dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/hivegraph")
    """libpq connection string (URL or `key=value` form); secret because it may hold a password."""
    pool_min: int = Field(default=1, ge=0)
    """Connections the pool keeps open."""
    pool_max: int = Field(default=8, ge=1)
    """Most connections the pool opens at once."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """How long to wait for the server at start-up before giving up."""
    statement_timeout_s: float = Field(default=30.0, ge=0)
    """Server-side limit on one statement (`statement_timeout`); 0 disables it."""
    read_timeout_s: float = Field(default=60.0, gt=0)
    """Client-side limit on waiting for one call's answer (a stalled server cannot time out by itself)."""

    @model_validator(mode="after")
    def _pool_bounds(self) -> PostgresSettings:
        if self.pool_max < self.pool_min:
            raise ValueError(f"pool_max ({self.pool_max}) is smaller than pool_min ({self.pool_min})")
        return self


class ModelServerSettings(_Section):
    """How `hivegraph model prepare|serve` builds and runs the local vLLM server."""

    home: Path = DEFAULT_HOME / "model-server"
    """Where the server's virtual environment, model folder, logs and pid file live."""
    device: Literal["auto", "cpu", "gpu"] = "auto"
    """`auto` uses the GPU build when `nvidia-smi` finds a GPU, the CPU build otherwise."""
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    served_model_name: str = "smollm2"
    gpu_model: str | None = None
    """Model folder served on a GPU; the prepared bundled model when unset."""
    max_model_len: int = Field(default=4096, ge=256)
    max_num_seqs: int = Field(default=4, ge=1)
    kv_cache_gib: int = Field(default=1, ge=1)
    """KV cache size for the CPU build (`VLLM_CPU_KVCACHE_SPACE`)."""
    start_timeout_s: float = Field(default=600.0, gt=0)
    extra_args: list[str] = Field(default_factory=list[str])
    python: str = "python3.11"
    """Interpreter for the server's environment (vLLM's CPU build needs 3.11)."""


class ModelSettings(_Section):
    """The chat model every agent uses unless given another."""

    provider: str = "openai_compat"
    base_url: str = "http://127.0.0.1:8765/v1"
    model: str = "smollm2"
    api_key: SecretStr = SecretStr("EMPTY")
    max_concurrency: int = Field(default=4, ge=1)
    """Requests in flight at once, per process and event loop."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Extra attempts when a structured reply does not validate."""
    timeout_s: float = Field(default=120.0, gt=0)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, ge=1)
    native_tools: bool = False
    """Whether the server parses tool calls itself (vLLM with `--enable-auto-tool-choice`); otherwise agents
    choose tools through JSON-schema-constrained actions, which every served model supports."""
    server: ModelServerSettings = Field(default_factory=ModelServerSettings)


class OpenAIEmbedderSettings(_Section):
    """An OpenAI-compatible `/v1/embeddings` endpoint (vLLM can serve one)."""

    base_url: str = "http://127.0.0.1:8766/v1"
    model: str = "embedder"
    api_key: SecretStr = SecretStr("EMPTY")
    dimensions: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)


class HashEmbedderSettings(_Section):
    """The deterministic hash embedder for unit tests."""

    dim: int = Field(default=64, ge=8)


class EmbedderSettings(_Section):
    """Which embedder turns text into vectors."""

    backend: str = "minilm"
    openai: OpenAIEmbedderSettings = Field(default_factory=OpenAIEmbedderSettings)
    hash: HashEmbedderSettings = Field(default_factory=HashEmbedderSettings)
    batch_size: int = Field(default=64, ge=1)


class ChromaSettings(_Section):
    """Chroma: embedded (`persistent`) or a Chroma server (`http`)."""

    mode: Literal["persistent", "http"] = "persistent"
    path: Path | None = None
    """Folder of the embedded database; `<data_dir>/chroma` when unset."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    timeout_s: float = Field(default=10.0, gt=0)
    """Connect and read timeout of each request to a Chroma server, in seconds."""
    collection_prefix: str = Field(default="hivegraph", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,40}$")


class VectorStoreSettings(_Section):
    """Which vector index holds the memory records."""

    model_config = ConfigDict(extra="allow", validate_default=True)
    backend: str = "chroma"
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)


class SqliteGraphSettings(_Section):
    """The graph in SQLite tables (the embedded default)."""

    path: Path | None = None
    """The database file; the SQLite journal's own file when unset (`<data_dir>/graph.sqlite` with another journal)."""
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"


class LadybugSettings(_Section):
    """The ladybug embedded graph database (one process per database)."""

    path: Path | None = None
    """The database file; `<data_dir>/graph.lbug` when unset."""


class Neo4jSettings(_Section):
    """A Neo4j (or other Bolt) server through the official driver."""

    uri: str = "bolt://127.0.0.1:7687"
    user: str = "neo4j"
    password: SecretStr = SecretStr("")
    database: str = "neo4j"
    timeout_s: float = Field(default=10.0, gt=0)
    """Connect and acquire timeout of the driver, and the longest a transaction is retried, in seconds."""


class GraphStoreSettings(_Section):
    """Which graph store holds the memory graph (G-Memory's tiers, links between records)."""

    model_config = ConfigDict(extra="allow", validate_default=True)
    backend: str = "sqlite"
    sqlite: SqliteGraphSettings = Field(default_factory=SqliteGraphSettings)
    ladybug: LadybugSettings = Field(default_factory=LadybugSettings)
    neo4j: Neo4jSettings = Field(default_factory=Neo4jSettings)
    entities: bool = True
    """Also project episodic and semantic records, and the entities they mention, for the `graph` retrieval source."""


class SqliteJournalSettings(_Section):
    """The SQLite journal (WAL mode)."""

    path: Path | None = None


class JournalSettings(_Section):
    """Where every memory operation is recorded."""

    model_config = ConfigDict(extra="allow", validate_default=True)
    backend: str = "sqlite"
    sqlite: SqliteJournalSettings = Field(default_factory=SqliteJournalSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)


class CheckpointerSettings(_Section):
    """Where LangGraph checkpoints runs so they can be resumed."""

    model_config = ConfigDict(extra="allow", validate_default=True)
    backend: str = "sqlite"
    path: Path | None = None
    """SQLite file of the checkpoints; `<data_dir>/checkpoints.sqlite` when unset."""
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    """The server of the `postgres` backend."""


class MemoryPolicySettings(_Section):
    """How much memory the agents see and how the manager works."""

    recall_k: int = Field(default=5, ge=1, le=100)
    recall_token_budget: int = Field(default=600, ge=16)
    manager_neighbours: int = Field(default=5, ge=1, le=50)
    """Nearest stored memories shown to the manager for each candidate fact."""
    max_candidates: int = Field(default=8, ge=1, le=64)
    facts_from: Literal["conversation", "user"] = "conversation"
    """What a team's memory manager extracts facts from after a run: the whole conversation, or only what the
    user said (the task), as a personal assistant wants (small models also extract better from it alone)."""
    max_text_chars: int = Field(default=2000, ge=16)
    """Longest memory text accepted; longer input is refused, not truncated."""
    procedural_min_uses: int = Field(default=3, ge=1)
    """Uses a procedure must have before it can be deprecated."""
    procedural_deprecate_below: float = Field(default=0.5, ge=0.0, le=1.0)
    """Success rate under which a procedure with enough uses is deprecated (closed)."""
    max_trajectory_chars: int = Field(default=6000, ge=500)
    """Longest trajectory shown to the procedure distiller (the middle is elided)."""
    tenant_key: Literal["user_id", "agent_id", "team_id", "run_id"] | None = "user_id"
    """The scope field whose value gives each tenant its own live vector collections (None: one for all)."""
    exact_max_items: int = Field(default=2048, ge=0)
    """Live collections of at most this many vectors are searched exactly in-process when unfiltered (0: never)."""
    exact_max_vectors: int = Field(default=131_072, ge=0)
    """Vectors held in all for those exact searches (the least recently searched collections are dropped)."""
    projections: list[str] = Field(default_factory=lambda: ["graph"])
    """Further projections of the journal, by registry name (`PROJECTIONS`): the memory graph by default."""


class RetrievalConfig(_Section):
    """How recall gathers, fuses, expands and boosts candidates (neutral defaults; LoCoMo-style data turns on more)."""

    candidates: int = Field(default=50, ge=1, le=1000)
    """Candidates asked of each retrieval source."""
    rrf_k: int = Field(default=10, ge=1)
    """Reciprocal-rank fusion constant."""
    vector_weight: float = Field(default=1.0, ge=0.0)
    keyword_weight: float = Field(default=1.0, ge=0.0)
    graph_weight: float = Field(default=0.5, ge=0.0)
    """Fusion weight of the `graph` source (Personalized PageRank over the entity graph; 1 was worse on LoCoMo dev)."""
    graph_dense_seeds: int = Field(default=10, ge=0, le=100)
    """Best vector hits that also start the graph walk, as HippoRAG 2 does (0: the query's entities only)."""
    graph_dense_share: float = Field(default=0.5, ge=0.0, le=1.0)
    """Share of the walk's restart mass on those hits (the rest on the query's entities)."""
    after_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of a session turn's score passed to the next turn (0: no neighbour expansion)."""
    before_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of a session turn's score passed to the previous turn."""
    speaker_boost: float = Field(default=1.0, gt=0.0)
    """Episodic search: factor for the turns of a speaker the query names (1: off)."""
    time_boost: float = Field(default=1.0, gt=0.0)
    """Episodic search: factor for events in a month or year the query names (1: off)."""
    strip_speakers: bool = False
    """Episodic search: take named speakers out of the query text."""
    when_boost: float = Field(default=1.0, gt=0.0)
    """Episodic search: factor for turns that mention a time when the query asks "when" (1: off)."""
    question_factor: float = Field(default=1.0, gt=0.0)
    """Episodic search: factor for turns that ask a question (1: off)."""
    session_lift: float = Field(default=0.0, ge=0.0)
    """How much a session's strength lifts the scores of its turns (0: off)."""


class GMemoryConfig(_Section):
    """How a team's G-Memory links tasks, retrieves and scores insights (scores: the G-Memory reference code)."""

    enabled: bool = True
    """Teams recall from and record into G-Memory (needs `graph` in `memory.projections`)."""
    similar_links: int = Field(default=3, ge=0, le=50)
    """`SIMILAR` links a new task gets to its nearest earlier tasks."""
    similarity_threshold: float = Field(default=0.5, ge=-1.0, le=1.0)
    """The least cosine similarity of a `SIMILAR` link (measured for MiniLM: benchmarks/gmemory_retrieval.py)."""
    similar_tasks: int = Field(default=3, ge=0, le=50)
    insights: int = Field(default=5, ge=0, le=50)
    trajectories: int = Field(default=2, ge=0, le=10)
    token_budget: int = Field(default=600, ge=0)
    """Tokens of G-Memory context per agent (insights first, then trajectories)."""
    reflect: bool = True
    """After each task with an outcome, the reflector proposes insight ops (one model call)."""
    model_summaries: bool = False
    """Trajectories are summarised by the model instead of condensed by rules (for capable models)."""


PROFILES: dict[str, dict[str, Any]] = {
    "embedded": {},
    "server": {
        "vector_store": {"chroma": {"mode": "http"}},
        "graph_store": {"backend": "neo4j"},
        "journal": {"backend": "postgres"},
        "checkpointer": {"backend": "postgres"},
    },
}


class HivegraphSettings(BaseSettings):
    """The effective configuration of one hivegraph process."""

    model_config = SettingsConfigDict(
        env_prefix="HIVEGRAPH_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )
    yaml_file: ClassVar[Path | None] = None

    profile: Literal["embedded", "server"] = "embedded"
    data_dir: Path = Path(".hivegraph")
    """Folder of the embedded stores (Chroma, journal, checkpoints)."""
    model: ModelSettings = Field(default_factory=ModelSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    vector_store: VectorStoreSettings = Field(default_factory=VectorStoreSettings)
    graph_store: GraphStoreSettings = Field(default_factory=GraphStoreSettings)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    checkpointer: CheckpointerSettings = Field(default_factory=CheckpointerSettings)
    memory: MemoryPolicySettings = Field(default_factory=MemoryPolicySettings)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    gmemory: GMemoryConfig = Field(default_factory=GMemoryConfig)

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = cast(dict[str, Any], data)
        defaults = PROFILES.get(str(given.get("profile", "embedded")), {})
        return _deep_merge(defaults, given)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then environment, then the YAML file."""
        return (init_settings, env_settings, _YamlSource(settings_cls, cls.yaml_file))

    def resolve(self, path: Path | None, default_name: str) -> Path:
        """Return `path`, or `<data_dir>/<default_name>` when it is unset."""
        return path if path is not None else self.data_dir / default_name

    def masked(self) -> dict[str, Any]:
        """The settings as plain data, with every secret masked."""
        return self.model_dump(mode="json")


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file and turns any parse problem into a `ConfigError`."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data = _read_yaml(path) if path is not None else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
    mapping = cast(dict[Any, Any], data)
    return {str(key): value for key, value in mapping.items()}


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)  # pyright: ignore[reportUnknownArgumentType]
        else:
            merged[key] = value
    return merged


def config_path(explicit: str | Path | None = None) -> Path | None:
    """The configuration file to read: `explicit`, `$HIVEGRAPH_CONFIG`, `./hivegraph.yaml`, or none."""
    if explicit is not None:
        return Path(explicit)
    if env := os.environ.get(CONFIG_ENV_VAR):
        return Path(env)
    local = Path("hivegraph.yaml")
    return local if local.is_file() else None


def load_settings(path: str | Path | None = None, **overrides: Any) -> HivegraphSettings:
    """Load the effective settings; every problem becomes a one-line `ConfigError`.

    Raises:
        ConfigError: the file cannot be read or parsed, or a value is invalid.

    """
    source = config_path(path)
    if source is not None and not source.is_file():
        raise ConfigError(f"{source}: configuration file not found")
    settings_cls = type("_LoadedSettings", (HivegraphSettings,), {"yaml_file": source})
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        raise config_error(exc, f"{source}: " if source is not None else "") from None


def config_error(exc: ValidationError, where: str = "", *, field_prefix: str = "") -> ConfigError:
    """A `ConfigError` naming the first invalid field of `exc` (after `field_prefix`), its value, and how many more."""
    first = exc.errors()[0]
    field = field_prefix + (".".join(str(part) for part in first["loc"]) or "value")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    value = f" (got {first['input']!r:.80})" if first["type"] != "missing" else ""
    return ConfigError(f"{where}{field}: {first['msg']}{value}{more}", field=field)
