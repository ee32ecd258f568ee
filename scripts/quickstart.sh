#!/usr/bin/env bash
# Install hivegraph, prepare and start the local model server, run examples/quickstart.py, stop the server.
source "$(dirname "$0")/_venv.sh" ""
hivegraph model prepare
hivegraph model serve
trap 'hivegraph model stop' EXIT
python examples/quickstart.py "$@"
