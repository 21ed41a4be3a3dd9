#!/usr/bin/env bash
# Create .venv and install the pinned stack; a no-op when the pins have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
VENV=.venv
STAMP=$VENV/.installed
want=$(cat requirements/*.txt scripts/install.sh pyproject.toml | sha256sum | cut -d' ' -f1)

# System packages the tests and demo use: a real browser, and the Redis, PostgreSQL and nginx servers
# the multi-replica tests run (tests/handoff/services.py starts its own on free ports).
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need_apt+=(postgresql)
{ command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null 2>&1 || need_apt+=(nginx)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing system packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    # The packages start system services (Redis, PostgreSQL, nginx on port 80); tests start their own on free ports.
    for service in redis-server postgresql nginx; do
      (command -v systemctl >/dev/null 2>&1 && systemctl disable --now "$service" >/dev/null 2>&1) || true
    done
  else
    echo "!! missing system packages: ${need_apt[*]} (install them with your package manager)" >&2
  fi
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

echo "==> installing into $VENV (Python: $($PY --version))"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip="$VENV/bin/python -m pip"
# This machine's pip config may list local mirrors that do not exist; keep the log readable.
quiet() {
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  grep -v "^WARNING: Location .* is ignored" "$log" || true
  rm -f "$log"
  return "$rc"
}
quiet $pip install --quiet --disable-pip-version-check --upgrade "pip==24.3.1"
# Rasa's own dependencies first, fully pinned, then Rasa without its (Python <3.11) metadata checks.
quiet $pip install --quiet --disable-pip-version-check -r requirements/base.txt
quiet $pip install --quiet --disable-pip-version-check -r requirements/dev.txt -c requirements/base.txt
quiet $pip install --quiet --disable-pip-version-check --no-deps --ignore-requires-python \
  rasa==3.6.21 rasa-sdk==3.6.2
# This repository's own distribution (rasa-flex-handoff), editable: the demo and tests use it as installed.
quiet $pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .

# Drift check: the only accepted complaint is Rasa's matplotlib<3.6 (no 3.11 wheel exists).
if ! out=$($pip check 2>&1); then
  unexpected=$(echo "$out" | grep -v -E '^rasa 3\.6\.21 has requirement matplotlib' || true)
  if [ -n "$unexpected" ]; then
    echo "pip check found dependency drift:" >&2
    echo "$unexpected" >&2
    exit 1
  fi
fi
echo "$want" > "$STAMP"
echo "==> install complete"
