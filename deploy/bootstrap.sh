#!/usr/bin/env bash
# Installs the Python toolchain (uv) when missing and syncs the workspace from the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --locked --all-packages --quiet
