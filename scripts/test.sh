#!/usr/bin/env bash
# Set up the project (scripts/setup.sh), then run the test suite with pytest
# from the repository root. Arguments go to pytest, for example:
#
#   scripts/test.sh                    # the whole suite
#   scripts/test.sh tests/test_x.py -k retry -x
#
# Exits with pytest's status, so a failing test fails the script.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# --- Step 1: Python virtualenv and requirements -----------------------------
bash scripts/setup.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh

# --- Step 2: system packages the tests need -------------------------------
# (none yet; e.g. a browser for the dashboard's end-to-end tests goes here)

# --- Step 3: the tests -------------------------------------------------------
exec "$REPO_ROOT/.venv/bin/python" -m pytest "$@"
