#!/usr/bin/env bash
# The test command (README): sets up .venv with everything the suite needs, then runs it.
#   bash scripts/test.sh            default suite (excludes slow tests)
#   bash scripts/test.sh --all      everything, slow tests included
#   bash scripts/test.sh -- ARGS    extra pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
marker=(-m "not slow")
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --all) marker=() ;;
    --) shift; extra=("$@"); break ;;
    *) extra+=("$1") ;;
  esac
  shift
done
set +e
python -m pytest -q -p no:cacheprovider "${marker[@]}" "${extra[@]}"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected: failing on purpose" >&2
  exit 1
fi
exit "$rc"
