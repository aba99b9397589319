#!/usr/bin/env bash
# Run HERE (a machine that reaches PyPI) before a GPU session: downloads, into .whl/, the wheels that the
# device machine's image lacks (it has torch, transformers, peft, accelerate, pyarrow, safetensors, jinja2,
# tokenizers but not lark, pydantic, bitsandbytes, gguf, datasets, starlette, uvicorn). The device runs
# Python 3.12 on x86-64 and reaches nothing, so the wheels travel with the tree (`carry: [".whl"]`).
#   bash bench/gpu_wheels.sh && echo /.whl/ >> .git/info/exclude
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64
      --platform any)
pkgs=(lark "pydantic>=2.6,<3" pydantic-core annotated-types typing-inspection "bitsandbytes>=0.50" gguf
      "datasets>=5" dill multiprocess "starlette>=1.0,<2" "uvicorn>=0.30" "peft>=0.21" rouge-score sacrebleu)
for p in "${pkgs[@]}"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d .whl "$p" || echo "warning: no wheel for $p" >&2
done
du -sh .whl
