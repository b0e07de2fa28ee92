#!/usr/bin/env bash
# Creates .venv with Python 3.10 (TFX 1.16 needs Python < 3.11), syncs it to requirements.lock
# with uv and installs the project in editable mode. `make setup` runs it when the lock changes.
# Usage: setup-venv.sh [VENV LOCK]  (`make airflow-setup`: .venv-airflow infra/airflow/requirements.lock)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
lock=${2:-requirements.lock}

find_python310() {
  if command -v pyenv >/dev/null 2>&1; then
    local version
    version=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.[0-9]+)?$' | sort -V | tail -n 1 || true)
    if [ -n "$version" ]; then echo "$(pyenv prefix "$version")/bin/python"; return 0; fi
  fi
  if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import venv' >/dev/null 2>&1; then
    command -v python3.10; return 0
  fi
  return 1
}

if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then
  python310=$(find_python310) || {
    echo "make setup: Python 3.10 not found. TFX 1.16 needs Python 3.10 (< 3.11): install it with" >&2
    echo "  'pyenv install 3.10' or your OS package (python3.10 and python3.10-venv), then rerun." >&2
    exit 1
  }
  echo "make setup: creating $venv with $python310"
  rm -rf "$venv"
  "$python310" -m venv "$venv"
fi

if command -v uv >/dev/null 2>&1; then
  uv=uv
else
  if ! [ -x "$venv/bin/uv" ]; then
    uv_pin=$(grep -E '^uv==' infra/requirements.in)
    echo "make setup: installing $uv_pin into $venv"
    "$venv/bin/python" -m pip install --quiet "$uv_pin"
  fi
  uv=$venv/bin/uv
fi

# Bytecode at install time: uv writes none by default, and with PYTHONDONTWRITEBYTECODE (set on
# these machines) Python never caches it either, so every process compiled TF/TFX/TFMA/MLflow from
# source: 20 s -> 9 s to import them, in every `mlops` command, test process and Beam worker.
"$uv" pip sync --quiet --compile-bytecode --python "$venv/bin/python" "$lock"
"$uv" pip install --quiet --python "$venv/bin/python" --no-deps --no-build-isolation -e .
echo "make setup: $venv is in sync with $lock"
