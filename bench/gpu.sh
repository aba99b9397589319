#!/usr/bin/env bash
# One command for the GPU checks (about 8.5 minutes on one H100/H200):
#   1. bench/gpu_bench.py: full, LoRA and QLoRA steps of a Llama-3.2-1B-shaped model (random weights, packed
#      rows, SDPA), ftlang's training path vs plain transformers + PEFT: tokens/s, ratio, MFU, peak vs estimate;
#   2. bench/gpu_serve.py: `ftlang run` QLoRA (NF4 on CUDA, bf16 compute) with export { merge = true }, then
#      `ftlang serve --device cuda` answering 8 concurrent requests.
#   bash bench/gpu.sh                 # on a CUDA host; results in bench/gpu_results.json, bench/gpu_serve.json
#   bash bench/gpu.sh --cpu-smoke     # the same code on a tiny model on the CPU
# On the lent device machine (bare image, no network): prepare the missing wheels here with
# bench/gpu_wheels.sh and carry `.whl`; they are installed to /tmp/site below.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
if [ -d .whl ] && ! python3 -c "import lark, pydantic, bitsandbytes" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" || true
date -u +"%Y-%m-%dT%H:%M:%SZ"
rc=0
timeout 380 python3 bench/gpu_bench.py --json bench/gpu_results.json "$@" || rc=$?
serve_args=()
for a in "$@"; do [ "$a" = "--cpu-smoke" ] && serve_args+=(--cpu-smoke); done
timeout 130 python3 bench/gpu_serve.py --json bench/gpu_serve.json "${serve_args[@]}" || rc=$?
exit "$rc"
