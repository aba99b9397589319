# Sourced by scripts/setup.sh (and tests/test_setup_script.py):
#   step "what" COMMAND...   prints "  what ... ok"; COMMAND's output is appended to $STEP_LOG and
#                            printed only when COMMAND fails (then the script exits with its status;
#                            with STEP_OPTIONAL=1 the step returns the status instead, log unprinted).
STEP_LOG=${STEP_LOG:-/dev/null}

step() {
  local what=$1 out rc
  shift
  printf '  %s ... ' "$what"
  out=$(mktemp)
  if "$@" >"$out" 2>&1; then
    cat "$out" >>"$STEP_LOG"
    rm -f "$out"
    echo ok
    return 0
  else
    rc=$?
  fi
  cat "$out" >>"$STEP_LOG"
  echo failed
  if [ "${STEP_OPTIONAL:-0}" = 1 ]; then
    rm -f "$out"
    return "$rc"
  fi
  echo "--- output of: $* ---" >&2
  cat "$out" >&2
  rm -f "$out"
  exit "$rc"
}
