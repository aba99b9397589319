#!/usr/bin/env bash
# One command for the GPU benchmark (<= 8 minutes on one H100/H200): LoRA, QLoRA and full fine-tune
# steps of a Llama-3.2-1B-shaped model (random weights), ftlang vs plain transformers + PEFT.
#   bash bench/gpu.sh                 # on a CUDA host; results also land in bench/gpu_results.json
#   bash bench/gpu.sh --cpu-smoke     # the same code on a tiny model on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
date -u +"%Y-%m-%dT%H:%M:%SZ"
exec timeout 480 python bench/gpu_bench.py --json bench/gpu_results.json "$@"
