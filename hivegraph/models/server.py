"""The local vLLM model server: build its environment, start it, stop it.

vLLM pins its own torch, transformers and pydantic, so the server lives in a
virtual environment of its own under `ModelServerSettings.home`::

    <home>/venv/                    the server's interpreter and packages
    <home>/models/smollm2/          the bundled model, converted from its GGUF
    <home>/prepared.json            what `prepare` did; a second call returns at once
    <home>/logs/                    pip, conversion and server logs
    <home>/run/server-<port>.json   one pid file per running server

The hivegraph package never imports vLLM, torch or transformers: it only runs
the server's interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hivegraph.config import ModelServerSettings
from hivegraph.errors import ModelServerError
from hivegraph.models.processes import (
    end_group,
    is_vllm_server,
    log_tail,
    models_answer,
    offline_env,
    port_in_use,
    process_alive,
)
from hivegraph.models.server_builds import (
    BUILDS,
    BUNDLED_MODEL_DIR,
    PREPARED_FORMAT,
    STOP_GRACE_S,
    STRUCTURED_OUTPUTS,
    Device,
    Log,
    venv_python,
)
from hivegraph.models.server_prepare import Preparation


@dataclass(frozen=True)
class ServerHandle:
    """A running model server."""

    url: str
    """Base URL of the OpenAI-compatible API, ending in `/v1`."""
    port: int
    pid: int
    log_path: Path
    model: str
    """The name the server answers to (`served_model_name`)."""


def detect_gpu() -> bool:
    """Whether `nvidia-smi -L` lists at least one GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        done = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and any(line.startswith("GPU ") for line in done.stdout.splitlines())


def resolve_device(setting: str, *, probe: Callable[[], bool] = detect_gpu) -> Device:
    """Return the device `setting` means here; `auto` asks `probe` whether a GPU is present."""
    if setting == "auto":
        return "gpu" if probe() else "cpu"
    if setting not in BUILDS:
        raise ModelServerError(f"unknown model server device {setting!r}; choose auto, cpu or gpu")
    return setting  # pyright: ignore[reportReturnType]


def find_python(configured: str) -> str:
    """Return the interpreter that builds the server's environment.

    Raises:
        ModelServerError: `configured` is not on PATH and this interpreter is not Python 3.11.

    """
    found = shutil.which(configured)
    if found is not None:
        return found
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    here = ".".join(map(str, sys.version_info[:2]))
    raise ModelServerError(
        f"{configured!r} is not on PATH and this interpreter is Python {here}; vLLM's CPU build "
        "needs Python 3.11: install it or point model.server.python at one"
    )


def server_command(settings: ModelServerSettings, model_dir: Path, port: int, *, device: Device = "cpu") -> list[str]:
    """Build the command line that serves `model_dir` on `port`."""
    return [
        str(venv_python(settings.home)),
        "-m",
        "vllm.entrypoints.openai.api_server",
        *("--model", str(model_dir), "--served-model-name", settings.served_model_name),
        *("--host", settings.host, "--port", str(port)),
        *BUILDS[device].serve_args,
        *("--max-model-len", str(settings.max_model_len), "--max-num-seqs", str(settings.max_num_seqs)),
        *("--structured-outputs-config", STRUCTURED_OUTPUTS),
        *settings.extra_args,
    ]


def server_env(
    settings: ModelServerSettings, *, device: Device = "cpu", base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Build the server's environment: offline, no usage reports, a sized KV cache."""
    env = offline_env(os.environ if base is None else base)
    env.update(VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    if BUILDS[device].cpu_kv_cache:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(settings.kv_cache_gib)
    return env


class ModelServer:
    """Prepares, starts, stops and lists the local vLLM servers of one `home`."""

    def __init__(self, settings: ModelServerSettings) -> None:
        self.settings = settings
        self.home = settings.home.expanduser()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def prepared_path(self) -> Path:
        """The record `prepare` writes when it has finished."""
        return self.home / "prepared.json"

    def prepared(self) -> dict[str, Any] | None:
        """Return what `prepare` recorded, or None when the environment is missing or incomplete."""
        try:
            record = json.loads(self.prepared_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != PREPARED_FORMAT:  # pyright: ignore[reportUnknownMemberType]
            return None
        device = self.settings.device
        if device != "auto" and record.get("device") != device:  # pyright: ignore[reportUnknownMemberType]
            return None
        complete = venv_python(self.home).exists() and (self.home / BUNDLED_MODEL_DIR / "config.json").is_file()
        return record if complete else None  # pyright: ignore[reportUnknownVariableType]

    def prepare(self, *, force: bool = False, log: Log = print) -> Path:
        """Build the server's environment and the bundled model, once.

        Returns the model folder the server will serve.

        Raises:
            ModelServerError: no suitable Python, a server of this home still runs, or a step
                failed (with the tail of its log).

        """
        record = None if force else self.prepared()
        if record is not None:
            log(f"model server already prepared in {self.home}")
            return self.model_dir(record["device"])
        if running := self.status():
            ports = ", ".join(str(handle.port) for handle in running)
            raise ModelServerError(f"stop the model servers of {self.home} first (ports {ports})")
        started = time.monotonic()
        device = resolve_device(self.settings.device)
        python = find_python(self.settings.python)
        self.home.mkdir(parents=True, exist_ok=True)
        self.prepared_path.unlink(missing_ok=True)
        record = Preparation(self.home, log=log).run(device=device, python=python)
        record.update(format=PREPARED_FORMAT, prepared_at=datetime.now(UTC).isoformat())
        self.prepared_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        log(f"model server prepared in {self.home} ({time.monotonic() - started:.0f} s)")
        return self.model_dir(device)

    def model_dir(self, device: Device) -> Path:
        """Return the folder served on `device`: `gpu_model` on a GPU when set, else the bundled model."""
        if device == "gpu" and self.settings.gpu_model:
            return Path(self.settings.gpu_model).expanduser()
        return self.home / BUNDLED_MODEL_DIR

    def start(self, *, port: int | None = None) -> ServerHandle:
        """Start a server on `port` (the configured one by default) and wait until it answers.

        A server of ours already running on that port is reused.

        Raises:
            ModelServerError: not prepared, the port is taken, or the server died or did not
                answer in time (with the tail of its log).

        """
        port = port or self.settings.port
        record = self.prepared()
        if record is None:
            raise ModelServerError(f"the model server is not prepared in {self.home}: run `hivegraph model prepare`")
        running = self._running(port)
        if running is not None:
            self._wait_ready(running)
            return running
        if port_in_use(self.settings.host, port):
            raise ModelServerError(f"port {port} on {self.settings.host} is already in use by another program")
        handle = self._launch(port, record["device"])
        self._wait_ready(handle)
        return handle

    def stop(self, *, port: int | None = None) -> bool:
        """Stop the server on `port` (the configured one by default); False if none was running.

        Raises:
            ModelServerError: the server's processes survived SIGKILL.

        """
        port = port or self.settings.port
        handle = self._running(port)
        if handle is None:
            return False
        self._terminate(handle)
        return True

    def status(self) -> list[ServerHandle]:
        """List the servers of this home that are running, by port; remove stale pid files."""
        handles: list[ServerHandle] = []
        for path in sorted(self._run_dir.glob("server-*.json")):
            port = path.stem.removeprefix("server-")
            handle = self._running(int(port)) if port.isdigit() else None
            if handle is not None:
                handles.append(handle)
        return sorted(handles, key=lambda handle: handle.port)

    @property
    def _run_dir(self) -> Path:
        return self.home / "run"

    def _pid_path(self, port: int) -> Path:
        return self._run_dir / f"server-{port}.json"

    def _launch(self, port: int, device: Device) -> ServerHandle:
        model_dir = self.model_dir(device)
        log_path = self.home / "logs" / f"server-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._run_dir.mkdir(parents=True, exist_ok=True)
        command = server_command(self.settings, model_dir, port, device=device)
        with log_path.open("wb") as out:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=server_env(self.settings, device=device),
                cwd=self.home,
                start_new_session=True,
            )
        self._children[port] = child
        host = self.settings.host
        handle = ServerHandle(f"http://{host}:{port}/v1", port, child.pid, log_path, self.settings.served_model_name)
        record = {**asdict(handle), "log_path": str(log_path), "command": command}
        self._pid_path(port).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return handle

    def _terminate(self, handle: ServerHandle) -> None:
        child = self._children.pop(handle.port, None)
        if not end_group(handle.pid, child=child, grace_s=STOP_GRACE_S):
            raise ModelServerError(f"the model server on port {handle.port} (pid {handle.pid}) did not stop")
        self._pid_path(handle.port).unlink(missing_ok=True)

    def _running(self, port: int) -> ServerHandle | None:
        """Return the handle in the pid file for `port` if its process lives; remove a stale file."""
        path = self._pid_path(port)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            handle = ServerHandle(
                str(data["url"]),
                int(data["port"]),
                int(data["pid"]),
                Path(data["log_path"]),
                str(data["model"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            return None
        if process_alive(handle.pid, child=self._children.get(port)) and is_vllm_server(handle.pid, port):
            return handle
        path.unlink(missing_ok=True)
        self._children.pop(port, None)
        return None

    def _wait_ready(self, handle: ServerHandle) -> None:
        timeout = self.settings.start_timeout_s
        deadline = time.monotonic() + timeout
        while not models_answer(handle.url, handle.model):
            child = self._children.get(handle.port)
            if not process_alive(handle.pid, child=child):
                self._pid_path(handle.port).unlink(missing_ok=True)
                self._children.pop(handle.port, None)
                code = f" with code {child.returncode}" if child is not None else ""
                raise ModelServerError(
                    f"the model server on port {handle.port} exited{code} while starting; "
                    f"last lines of {handle.log_path}:\n{log_tail(handle.log_path)}"
                )
            if time.monotonic() > deadline:
                self._terminate(handle)
                raise ModelServerError(
                    f"the model server on port {handle.port} did not answer within {timeout:.0f} s "
                    f"and was stopped; last lines of {handle.log_path}:\n{log_tail(handle.log_path)}"
                )
            time.sleep(1.0)
