#!/usr/bin/env bash
# The test suite, set-up included: what the README's second command and .ci/run both run.
# First the import contract (lint-imports), then pytest.
# The multi-worker tests need a PostgreSQL server binary (initdb, pg_ctl); they start a private
# cluster on loopback themselves. On Debian/Ubuntu as root (or with sudo) we install it if absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
have_pg() { command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
if ! have_pg && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  echo "installing Debian's postgresql for the multi-worker tests" >&2
  $SUDO apt-get install -y -qq postgresql >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq postgresql >/dev/null; } \
    || echo "could not install postgresql: the PostgreSQL tests will be skipped" >&2
fi
if have_pg; then export DROPOUT_DECAY_REQUIRE_POSTGRES=1; fi  # present: its tests must run, not skip
.venv/bin/lint-imports --no-cache  # the import layers in pyproject.toml
exec .venv/bin/python -m pytest -q "$@"
