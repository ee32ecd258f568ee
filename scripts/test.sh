#!/usr/bin/env bash
# Install hivegraph with its test needs, prepare the local model server, run every test.
# The test session itself starts (and stops) the model server and a Chroma server.
source "$(dirname "$0")/_venv.sh" "[test]"
hivegraph model prepare
python -m pytest "$@"
