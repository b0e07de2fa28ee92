#!/usr/bin/env bash
# `make services` / `make services-stop`: Beam's Python job service and an EXTERNAL SDK worker pool in
# the background on free loopback ports, with this repo's venv first on their PATH (the pool starts
# each SDK worker with the first `python` there). Their pids and ports go to
# $SERVICES_DIR/beam-services.json (default ./.mlops/services), their logs beside it; the same code
# starts them for the portable runner's e2e test (ops/beam_services.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m ops.beam_services "${1:-start}" "${SERVICES_DIR:-.mlops/services}"
