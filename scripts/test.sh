#!/usr/bin/env bash
# Install hivegraph with its test needs, prepare the local model server, run every test.
# The test session itself starts (and stops) the model server, a Chroma server and a PostgreSQL server.
source "$(dirname "$0")/_venv.sh" "[test]"

# PostgreSQL server binaries for tests/fixtures/postgres_server.py (Debian's layout; the cluster is the session's own).
ensure_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "PostgreSQL is missing: run \`apt-get install -y postgresql\` as root, then rerun $0" >&2
      exit 1
    }
    sudo=(sudo)
  fi
  echo "installing PostgreSQL for the integration tests (apt-get install postgresql)" >&2
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}
ensure_postgres

hivegraph model prepare
python -m pytest --durations=25 "$@"
