#!/usr/bin/env bash
# Set up the project (scripts/setup.sh), then run the test suite with pytest
# from the repository root. Arguments go to pytest, for example:
#
#   scripts/test.sh                    # the whole suite
#   scripts/test.sh tests/test_x.py -k retry -x
#   SKIP_CHECKS=1 scripts/test.sh tests/test_x.py   # without ruff and mypy first
#
# The checks (ruff on all the Python code, mypy on the library) run first; a finding fails the script. Then it exits with
# pytest's status, so a failing test fails the script.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# --- Step 1: Python virtualenv and requirements -----------------------------
bash scripts/setup.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh

# --- Step 2: system packages the tests need -------------------------------
# Chromium for the browser tests (tests/browser): Playwright drives Debian's
# chromium package, never a browser downloaded by `playwright install`. Not
# fatal here: without it the browser tests are skipped locally, and fail under
# CI=true, saying why.
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "[test] no $CHROMIUM and no apt-get to install it: the browser tests will say so" >&2
    else
        if [ "$(id -u)" = 0 ]; then
            AS_ROOT=()
        elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            AS_ROOT=(sudo -n)
        else
            AS_ROOT=(none)
        fi
        if [ "${AS_ROOT[0]:-}" = none ]; then
            echo "[test] no $CHROMIUM, and installing it needs root (or sudo without a password): the browser tests will say so" >&2
        else
            echo "[test] installing Debian's chromium with apt-get (for the browser tests)"
            if "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
                && "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium </dev/null; then
                echo "[test] installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
            else
                echo "[test] apt-get could not install chromium (status $?): the browser tests will say so" >&2
            fi
        fi
    fi
fi

# PostgreSQL: the engine suite also runs on a throwaway PostgreSQL server that
# the tests start themselves (tests/pg_cluster.py, 127.0.0.1, a free port).
# Under CI it is installed if missing; elsewhere its tests skip without it.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq postgresql >/dev/null
    else
        echo "note: PostgreSQL is not installed; its half of the suite will be skipped (apt-get install postgresql)" >&2
    fi
fi

# --- Step 3: formatter, linter and type checker -----------------------------
# Settings in pyproject.toml. SKIP_CHECKS=1 skips them (say, to rerun one test quickly). ruff reads
# every Python file of the project; mypy the library.
if [ "${SKIP_CHECKS:-0}" = "0" ]; then
    PYTHON_CODE=(durably_reflex app tests bench scripts rxconfig.py)
    echo "[test] ruff check and ruff format --check on ${PYTHON_CODE[*]}; mypy on durably_reflex/"
    "$REPO_ROOT/.venv/bin/ruff" check "${PYTHON_CODE[@]}"
    "$REPO_ROOT/.venv/bin/ruff" format --check "${PYTHON_CODE[@]}"
    "$REPO_ROOT/.venv/bin/mypy"
fi

# --- Step 4: the tests -------------------------------------------------------
exec "$REPO_ROOT/.venv/bin/python" -m pytest "$@"
