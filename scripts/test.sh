#!/usr/bin/env bash
# Install hivegraph with its test needs, prepare the local model server, run every test.
# The test session itself starts (and stops) the model server, a Chroma server and a PostgreSQL server.
source "$(dirname "$0")/_venv.sh" "[test]"

# Install Debian packages the tests need where they are missing (as root, or through sudo).
apt_install() {
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "missing: run \`apt-get install -y $*\` as root, then rerun $0" >&2
      exit 1
    }
    sudo=(sudo)
  fi
  echo "installing $* for the tests (apt-get install)" >&2
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PostgreSQL server binaries for tests/fixtures/postgres_server.py (Debian's layout; the cluster is the session's own).
ensure_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || apt_install postgresql
}
# Headless Chromium for tests/integration/test_memory_graph_page.py (opens the `memory graph` page offline).
ensure_chromium() {
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || apt_install chromium
}
ensure_postgres
ensure_chromium

hivegraph model prepare
python -m pytest --durations=25 "$@"
