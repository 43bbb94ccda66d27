#!/usr/bin/env bash
# Set up the project (scripts/setup.sh), then run the Reflex dashboard from the
# repository root. Extra arguments go to `reflex run`, for example:
#
#   scripts/dashboard.sh                                   # dev mode, ports 3000/8000
#   scripts/dashboard.sh --frontend-port 3300 --backend-port 8300
#   scripts/dashboard.sh --env prod --backend-host 127.0.0.1
#
# The first run installs the frontend's npm packages into .web/ (a few minutes).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

bash scripts/setup.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh

exec reflex run "$@"
