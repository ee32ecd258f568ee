"""Process and file helpers of the model server: pid checks, process groups, log tails."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hivegraph.errors import ModelServerError


def offline_env(base: Mapping[str, str]) -> dict[str, str]:
    """Return `base` without the caller's Python settings, with the model hubs switched off."""
    env = {k: v for k, v in base.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def file_sha256(path: Path) -> str:
    """The sha256 of a file, in hex."""
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


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def models_answer(url: str, model: str) -> bool:
    """Tell whether `GET {url}/models` answers and lists `model`."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/models", timeout=5.0) as reply:
            data: Any = json.loads(reply.read())
        return any(entry["id"] == model for entry in data["data"])
    except (OSError, ValueError, TypeError, KeyError):
        return False


def process_stat(pid: int | str) -> tuple[str, int] | None:
    """State letter and process group of a process, from /proc (None when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int, *, child: subprocess.Popen[bytes] | None = None) -> bool:
    """Tell whether `pid` runs; a zombie does not."""
    if child is not None:
        return child.poll() is None
    stat = process_stat(pid)
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


def is_vllm_server(pid: int, port: int) -> bool:
    """Whether `pid` is a vLLM API server on `port` (True where /proc cannot tell)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return b"vllm.entrypoints.openai.api_server" in args and str(port).encode() in args


def group_alive(pgid: int, child: subprocess.Popen[bytes] | None) -> bool:
    """Whether any process of the group `pgid` is still running."""
    if process_alive(pgid, child=child):
        return True
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in Path("/proc").iterdir():
        stat = process_stat(entry.name) if entry.name.isdigit() else None
        if stat is not None and stat[1] == pgid and stat[0] not in {"Z", "X"}:
            return True
    return False


def end_group(pgid: int, *, child: subprocess.Popen[bytes] | None, grace_s: float) -> bool:
    """SIGTERM the process group, SIGKILL it after `grace_s`; whether it is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise ModelServerError(f"not allowed to signal the model server (pid {pgid})") from exc
        deadline = time.monotonic() + wait_s
        while group_alive(pgid, child):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        else:
            return True
    return False
