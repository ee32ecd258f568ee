"""The model server's command line, environment, device choice and pid files, without vLLM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hivegraph.config import ModelServerSettings
from hivegraph.errors import ModelServerError
from hivegraph.models import server as server_module
from hivegraph.models.server import (
    ModelServer,
    ServerHandle,
    detect_gpu,
    find_python,
    resolve_device,
    server_command,
    server_env,
)
from tests.fixtures.processes import process_gone

# A stand-in for a vLLM server: same module name and port on its command line, a child in its
# process group, and (with --serve) an HTTP server that answers /v1/models.
FAKE_SERVER = """
import http.server, json, subprocess, sys, time
port = int(sys.argv[sys.argv.index("--port") + 1])
subprocess.Popen(["sleep", "600"])
if "--serve" in sys.argv:
    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"data": [{"id": "smollm2"}]}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Models).serve_forever()
time.sleep(600)
"""


def _settings(home: Path, **changes: object) -> ModelServerSettings:
    return ModelServerSettings(home=home, **changes)  # pyright: ignore[reportArgumentType]


def _fake_prepared(home: Path, *, python_script: str | None = None) -> None:
    """Make `home` look prepared; the venv's python is `python_script` (a shell script) if given."""
    python = home / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(python_script or "#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    model = home / "models" / "smollm2"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    record = {"format": 1, "device": "cpu", "python": sys.executable}
    (home / "prepared.json").write_text(json.dumps(record))


def _write_pid_file(home: Path, port: int, pid: int) -> Path:
    path = home / "run" / f"server-{port}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = {"url": f"http://127.0.0.1:{port}/v1", "port": port, "pid": pid, "model": "smollm2"}
    path.write_text(json.dumps({**handle, "log_path": str(home / "x.log")}))
    return path


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _live_processes_mentioning(text: str) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if not process_gone(pid)]


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = 18195
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_SERVER, "-m", "vllm.entrypoints.openai.api_server", "--port", str(port)],
        start_new_session=True,
    )
    yield proc, port
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_cpu_command_serves_the_model_with_the_recipe_flags(tmp_path: Path) -> None:
    settings = _settings(tmp_path, served_model_name="tiny", max_model_len=2048, extra_args=["--seed", "7"])
    command = server_command(settings, tmp_path / "m", 18123)

    assert command[:3] == [str(tmp_path / "venv/bin/python"), "-m", "vllm.entrypoints.openai.api_server"]
    assert _option(command, "--model") == str(tmp_path / "m")
    assert _option(command, "--served-model-name") == "tiny"
    assert (_option(command, "--host"), _option(command, "--port")) == ("127.0.0.1", "18123")
    assert _option(command, "--dtype") == "bfloat16"
    assert (_option(command, "--max-model-len"), _option(command, "--max-num-seqs")) == ("2048", "4")
    assert json.loads(_option(command, "--structured-outputs-config")) == {
        "backend": "xgrammar",
        "disable_any_whitespace": True,
    }
    assert "--enforce-eager" in command
    assert command[-2:] == ["--seed", "7"]


def test_gpu_command_does_not_force_eager_mode(tmp_path: Path) -> None:
    command = server_command(_settings(tmp_path), tmp_path / "m", 18123, device="gpu")
    assert "--enforce-eager" not in command
    assert "bfloat16" not in command


def test_env_is_offline_and_sizes_the_cpu_kv_cache(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "PYTHONPATH": "/somewhere", "HF_HUB_OFFLINE": "0"}
    env = server_env(_settings(tmp_path, kv_cache_gib=3), base=base)
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert env["PATH"] == "/bin"
    assert "PYTHONPATH" not in env


def test_gpu_env_leaves_the_kv_cache_to_vllm(tmp_path: Path) -> None:
    env = server_env(_settings(tmp_path), device="gpu", base={})
    assert "VLLM_CPU_KVCACHE_SPACE" not in env
    assert env["HF_HUB_OFFLINE"] == "1"


def test_auto_device_follows_the_gpu_probe() -> None:
    assert resolve_device("auto", probe=lambda: True) == "gpu"
    assert resolve_device("auto", probe=lambda: False) == "cpu"


def test_explicit_device_does_not_probe() -> None:
    def probe() -> bool:
        raise AssertionError("probed")

    assert resolve_device("cpu", probe=probe) == "cpu"
    assert resolve_device("gpu", probe=probe) == "gpu"


def _fake_nvidia_smi(bin_dir: Path, output: str, code: int) -> None:
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    exe.chmod(0o755)


@pytest.mark.parametrize(
    ("output", "code", "expected"),
    [
        ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)", 0, True),
        ("No devices were found", 6, False),
    ],
)
def test_detect_gpu_reads_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, code: int, expected: bool
) -> None:
    _fake_nvidia_smi(tmp_path / "bin", output, code)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert detect_gpu() is expected


def test_no_nvidia_smi_means_no_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpu() is False


def test_find_python_prefers_the_configured_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = tmp_path / "python3.11"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_python("python3.11") == str(exe)


def test_find_python_falls_back_to_this_311_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "version_info", (3, 11, 9, "final", 0))
    assert find_python("python3.11") == sys.executable


def test_find_python_names_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "version_info", (3, 12, 1, "final", 0))
    with pytest.raises(ModelServerError, match=r"'python3\.11' is not on PATH.*Python 3\.12"):
        find_python("python3.11")


def test_start_before_prepare_says_how_to_prepare(tmp_path: Path) -> None:
    with pytest.raises(ModelServerError, match="run `hivegraph model prepare`"):
        ModelServer(_settings(tmp_path / "home")).start(port=18190)
    assert not (tmp_path / "home" / "run").exists()


def test_prepare_returns_at_once_when_prepared(tmp_path: Path) -> None:
    _fake_prepared(tmp_path)
    lines: list[str] = []
    model_dir = ModelServer(_settings(tmp_path, device="cpu")).prepare(log=lines.append)
    assert model_dir == tmp_path / "models" / "smollm2"
    assert lines == [f"model server already prepared in {tmp_path}"]


def test_a_record_for_another_device_is_not_prepared(tmp_path: Path) -> None:
    _fake_prepared(tmp_path)
    assert ModelServer(_settings(tmp_path, device="cpu")).prepared() is not None
    assert ModelServer(_settings(tmp_path, device="gpu")).prepared() is None


def test_a_missing_model_folder_is_not_prepared(tmp_path: Path) -> None:
    _fake_prepared(tmp_path)
    (tmp_path / "models" / "smollm2" / "config.json").unlink()
    assert ModelServer(_settings(tmp_path)).prepared() is None


def _fake_python(tmp_path: Path, body: str) -> str:
    exe = tmp_path / "fakepython"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return str(exe)


def test_prepare_refuses_a_python_the_cpu_build_cannot_use(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, 'echo "3.12.4"')
    server = ModelServer(_settings(tmp_path / "home", device="cpu", python=python))
    with pytest.raises(ModelServerError, match=r"Python 3\.12\.4.*needs Python 3\.11"):
        server.prepare(log=lambda _: None)
    assert server.prepared() is None


def test_a_failed_step_reports_its_log_tail(tmp_path: Path) -> None:
    python = _fake_python(
        tmp_path, 'if [ "$1" = "-c" ]; then echo 3.11.7; exit 0; fi\necho "venv exploded" >&2\nexit 3'
    )
    server = ModelServer(_settings(tmp_path / "home", device="cpu", python=python))
    lines: list[str] = []
    with pytest.raises(ModelServerError, match=r"(?s)creating the virtual environment.*code 3.*venv exploded"):
        server.prepare(log=lines.append)
    assert lines == ["creating the virtual environment (Python 3.11.7) ..."]
    assert not server.prepared_path.exists()
    assert "venv exploded" in (tmp_path / "home" / "logs" / "prepare.log").read_text()


def test_a_stale_pid_file_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file = _write_pid_file(tmp_path, 18191, dead.pid)
    server = ModelServer(_settings(tmp_path))
    assert server.status() == []
    assert not pid_file.exists()
    _write_pid_file(tmp_path, 18191, dead.pid)
    assert server.stop(port=18191) is False
    assert not pid_file.exists()


def test_a_pid_reused_by_another_program_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        pid_file = _write_pid_file(tmp_path, 18192, other.pid)
        assert ModelServer(_settings(tmp_path)).stop(port=18192) is False
        assert not pid_file.exists()
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_corrupt_pid_file_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "run" / "server-18193.json"
    path.parent.mkdir()
    path.write_text("{not json")
    assert ModelServer(_settings(tmp_path)).status() == []
    assert not path.exists()


def test_stop_ends_the_whole_process_group(tmp_path: Path, fake_server: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = fake_server
    time.sleep(0.5)
    children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert children
    pid_file = _write_pid_file(tmp_path, port, proc.pid)
    server = ModelServer(_settings(tmp_path))
    assert [h.pid for h in server.status()] == [proc.pid]

    assert server.stop(port=port) is True
    proc.wait(timeout=5)
    assert all(process_gone(child) for child in children)
    assert not pid_file.exists()
    assert server.stop(port=port) is False


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "STOP_GRACE_S", 0.5)
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"  # noqa: E501
    with subprocess.Popen(
        [sys.executable, "-c", script, "vllm.entrypoints.openai.api_server", "--port", "18196"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        _write_pid_file(tmp_path, 18196, proc.pid)
        try:
            assert ModelServer(_settings(tmp_path)).stop(port=18196) is True
            assert proc.wait(timeout=5) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()


def test_start_returns_the_handle_of_a_server_already_answering(tmp_path: Path) -> None:
    _fake_prepared(tmp_path)
    port = 18197
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            FAKE_SERVER,
            "vllm.entrypoints.openai.api_server",
            "--port",
            str(port),
            "--serve",
        ],
        start_new_session=True,
    )
    try:
        _write_pid_file(tmp_path, port, proc.pid)
        handle = ModelServer(_settings(tmp_path, start_timeout_s=20)).start(port=port)
        assert handle == ServerHandle(f"http://127.0.0.1:{port}/v1", port, proc.pid, tmp_path / "x.log", "smollm2")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_start_refuses_a_port_taken_by_another_program(tmp_path: Path) -> None:
    import socket

    _fake_prepared(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 18198))
        sock.listen()
        with pytest.raises(ModelServerError, match=r"port 18198 .* already in use"):
            ModelServer(_settings(tmp_path)).start(port=18198)


def test_a_server_that_dies_while_starting_reports_its_log(tmp_path: Path) -> None:
    _fake_prepared(tmp_path, python_script='#!/bin/sh\necho "ValueError: no such model type"\nexit 1\n')
    server = ModelServer(_settings(tmp_path, start_timeout_s=30))
    with pytest.raises(ModelServerError, match=r"(?s)exited with code 1 while starting.*no such model type"):
        server.start(port=18199)
    assert server.status() == []
    assert not (tmp_path / "run" / "server-18199.json").exists()


def test_a_server_that_never_answers_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    _fake_prepared(tmp_path, python_script='#!/bin/sh\necho "loading weights"\nsleep 600\n')
    server = ModelServer(_settings(tmp_path, start_timeout_s=2))
    started = time.monotonic()
    with pytest.raises(ModelServerError, match=r"(?s)did not answer within 2 s and was stopped.*loading weights"):
        server.start(port=18194)
    assert time.monotonic() - started < 20
    assert server.status() == []
    assert _live_processes_mentioning(str(tmp_path)) == []


def test_prepare_again_refuses_while_a_server_runs(
    tmp_path: Path, fake_server: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = fake_server
    _fake_prepared(tmp_path)
    _write_pid_file(tmp_path, port, proc.pid)
    server = ModelServer(_settings(tmp_path))
    with pytest.raises(ModelServerError, match=rf"stop the model servers of .* first \(ports {port}\)"):
        server.prepare(force=True, log=lambda _: None)
    assert server.prepared() is not None
