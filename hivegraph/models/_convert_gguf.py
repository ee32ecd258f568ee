"""Convert a GGUF checkpoint into a Hugging Face model folder that vLLM can load.

A standalone script, run with the model server's own interpreter: it imports
`transformers` and `torch`, which the hivegraph package itself never imports::

    <home>/venv/bin/python _convert_gguf.py --gguf MODEL.gguf --out DIR

The weights are dequantized to bfloat16; the tokenizer, with its chat
template, is written beside them. Nothing is fetched from a model hub.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Convert a GGUF checkpoint to a Hugging Face folder.")
    parser.add_argument("--gguf", type=Path, required=True, help="the GGUF file to convert")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    return parser.parse_args(argv)


def convert(gguf: Path, out: Path) -> None:
    """Write the model and tokenizer held in `gguf` as a Hugging Face folder `out`.

    Raises:
        SystemExit: the written tokenizer lost its chat template.

    """
    torch: Any = importlib.import_module("torch")
    transformers: Any = importlib.import_module("transformers")
    auto_tokenizer, auto_model = transformers.AutoTokenizer, transformers.AutoModelForCausalLM

    folder, name = str(gguf.parent), gguf.name
    tokenizer = auto_tokenizer.from_pretrained(folder, gguf_file=name)
    model = auto_model.from_pretrained(
        folder,
        gguf_file=name,
        quantization_config=transformers.GgufConfig(gguf_file=name, dequantize=True),
        dtype=torch.bfloat16,
    )
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if not auto_tokenizer.from_pretrained(str(out)).chat_template:
        raise SystemExit(f"{out}: the tokenizer was written without its chat template")


def main(argv: list[str] | None = None) -> int:
    """Run the conversion from the command line."""
    args = _parse_args(argv)
    if not args.gguf.is_file():
        print(f"{args.gguf}: no such file", file=sys.stderr)
        return 2
    convert(args.gguf.resolve(), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
