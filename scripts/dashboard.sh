#!/usr/bin/env bash
# Set up the project (scripts/setup.sh), then serve the dashboard with the
# example jobs of app/jobs.py: `durably-reflex dashboard app.jobs:durably`.
# Extra arguments go to that command, for example:
#
#   scripts/dashboard.sh                          # production build on http://127.0.0.1:3000
#   scripts/dashboard.sh --port 3300
#   scripts/dashboard.sh --dev                    # hot reload (pages on 3000, backend on 3001)
#   scripts/dashboard.sh --host 0.0.0.0 --auth mymodule:auth
#
# The first run installs the frontend's npm packages into .durably/dashboard/.web
# (about a minute); later starts take seconds. Ctrl-C stops all of it.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

bash scripts/setup.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh

exec durably-reflex dashboard app.jobs:durably "$@"
