import subprocess
import sys
from pathlib import Path

import pytest

from hivegraph.cli import main
from hivegraph.config import load_settings
from hivegraph.errors import ConfigError
from hivegraph.registry import EMBEDDERS, VECTOR_STORES, check_backends


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in [v for v in __import__("os").environ if v.startswith("HIVEGRAPH_")]:
        monkeypatch.delenv(var)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_embedded_profile() -> None:
    settings = load_settings()
    assert settings.profile == "embedded"
    assert settings.vector_store.backend == "chroma"
    assert settings.vector_store.chroma.mode == "persistent"
    assert settings.graph_store.backend == "sqlite"
    check_backends(settings)


def test_yaml_then_env_then_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path / "h.yaml", "model:\n  max_tokens: 100\n  timeout_s: 5\nmemory:\n  recall_k: 3\n")
    monkeypatch.setenv("HIVEGRAPH_MODEL__MAX_TOKENS", "200")
    settings = load_settings(cfg, data_dir=tmp_path / "d")
    assert settings.model.max_tokens == 200  # env beats the file
    assert settings.model.timeout_s == 5  # the file beats defaults
    assert settings.memory.recall_k == 3
    assert settings.data_dir == tmp_path / "d"


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVEGRAPH_CONFIG", str(write(tmp_path / "x.yaml", "profile: server\n")))
    settings = load_settings()
    assert settings.profile == "server"
    assert settings.vector_store.chroma.mode == "http"  # the profile's default
    assert settings.graph_store.backend == "neo4j"


def test_profile_defaults_yield_to_explicit_values(tmp_path: Path) -> None:
    cfg = write(tmp_path / "h.yaml", "profile: server\nvector_store:\n  chroma:\n    mode: persistent\n")
    assert load_settings(cfg).vector_store.chroma.mode == "persistent"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: [unclosed\n", "invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("model:\n  max_tokens: lots\n", "model.max_tokens"),
        ("vector_store:\n  chroma:\n    mode: cloud\n", "'persistent' or 'http'"),
        ("modle:\n  provider: x\n", "modle"),
    ],
)
def test_broken_file_is_one_line_config_error(tmp_path: Path, text: str, expected: str) -> None:
    cfg = write(tmp_path / "h.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert str(cfg) in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_unknown_backend_lists_the_choices() -> None:
    settings = load_settings(vector_store={"backend": "pinecone"})
    with pytest.raises(ConfigError) as info:
        check_backends(settings)
    assert info.value.field == "vector_store.backend"
    assert "'pinecone'" in str(info.value)
    assert "chroma" in str(info.value) and "inmemory" in str(info.value)


def test_registered_backend_becomes_valid_and_is_removed_after() -> None:
    class Custom:
        pass

    settings = load_settings(embedder={"backend": "custom"})
    with EMBEDDERS.registered("custom", Custom):
        check_backends(settings)
        assert EMBEDDERS.load("custom") is Custom
    with pytest.raises(ConfigError):
        EMBEDDERS.check("custom")
    assert "custom" not in VECTOR_STORES.names()


def test_config_show_masks_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(tmp_path / "h.yaml", "model:\n  api_key: sk-very-secret\n")
    assert main(["--config", str(cfg), "config", "show"]) == 0
    out = capsys.readouterr().out
    assert "sk-very-secret" not in out
    assert "api_key: '**********'" in out
    assert "backend: chroma" in out


def test_cli_broken_config_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    cfg = write(tmp_path / "h.yaml", "model:\n  max_concurrency: 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hivegraph.cli", "--config", str(cfg), "config", "show"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: ") and "model.max_concurrency" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_postgres_checkpointer_loads_and_masks_the_dsn(tmp_path: Path) -> None:
    dsn = "postgresql://hive:s3cret-pw@db.internal:6543/hivegraph"
    yaml_text = f"checkpointer:\n  backend: postgres\n  postgres:\n    dsn: {dsn}\n    pool_max: 4\n"
    cfg = write(tmp_path / "h.yaml", yaml_text)
    settings = load_settings(cfg)
    check_backends(settings)
    postgres = settings.checkpointer.postgres
    assert (settings.checkpointer.backend, postgres.pool_min, postgres.pool_max) == ("postgres", 1, 4)
    assert postgres.dsn.get_secret_value() == dsn
    masked = settings.masked()
    assert masked["checkpointer"]["postgres"]["dsn"] == "**********"
    assert "s3cret-pw" not in repr(masked) and "s3cret-pw" not in repr(settings)


def test_postgres_dsn_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVEGRAPH_CHECKPOINTER__BACKEND", "postgres")
    monkeypatch.setenv("HIVEGRAPH_CHECKPOINTER__POSTGRES__DSN", "host=db user=hive password=env-secret")
    settings = load_settings()
    assert settings.checkpointer.postgres.dsn.get_secret_value() == "host=db user=hive password=env-secret"
    assert "env-secret" not in repr(settings.masked())


def test_postgres_pool_bounds_are_checked(tmp_path: Path) -> None:
    cfg = write(tmp_path / "h.yaml", "checkpointer:\n  postgres:\n    pool_min: 5\n    pool_max: 2\n")
    with pytest.raises(ConfigError, match=r"checkpointer\.postgres.*pool_max \(2\) is smaller than pool_min \(5\)"):
        load_settings(cfg)


def test_retrieval_heuristics_reach_the_memory_options(tmp_path: Path) -> None:
    from hivegraph.memory.facade import MemoryOptions

    path = write(tmp_path / "tuned.yaml", "retrieval:\n  after_share: 0.5\n  session_lift: 0.5\n"
                 "  when_boost: 1.6\n  question_factor: 0.8\n  speaker_boost: 2\n")  # fmt: skip
    options = MemoryOptions.from_settings(load_settings(path))
    assert (options.retrieval.after_share, options.retrieval.session_lift) == (0.5, 0.5)
    episodic = options.episodic
    assert (episodic.when_boost, episodic.question_factor, episodic.speaker_boost) == (1.6, 0.8, 2.0)
    neutral = MemoryOptions.from_settings(load_settings())
    assert (neutral.retrieval.session_lift, neutral.episodic.when_boost, neutral.episodic.question_factor) == (0, 1, 1)
    with pytest.raises(ConfigError, match="question_factor"):
        load_settings(write(tmp_path / "bad.yaml", "retrieval:\n  question_factor: 0\n"))
