#!/usr/bin/env bash
# `make services` / `make services-stop`: in the background on free loopback ports,
# - Beam's Python job service and an EXTERNAL SDK worker pool, with this repo's venv first on their
#   PATH (the pool starts each SDK worker with the first `python` there): ops/beam_services.py;
# - a team's MLflow: PostgreSQL (the OS's server programs) behind `mlflow server --app-name
#   basic-auth` with proxied artifacts: ops/team_stores.py (the database and its passwords stay
#   between a stop and the next start).
# Pids, ports and credentials go to $SERVICES_DIR (default ./.mlops/services), their logs beside them;
# the same code starts them for the portable runner's and the team stores' e2e tests.
set -euo pipefail
cd "$(dirname "$0")/.."
action="${1:-start}"
folder="${SERVICES_DIR:-.mlops/services}"
.venv/bin/python -m ops.beam_services "$action" "$folder"
.venv/bin/python -m ops.team_stores "$action" "$folder"
