#!/usr/bin/env bash
# Run the demo end to end on the local Cloud Datastore emulator:
#   ./run_demo.sh                          # count keys per namespace
#   ./run_demo.sh --job count_by_property  # extra args go to the mapper (datastore-mapper ...)
# Output: $DEMO_OUTPUT, or a temporary directory printed at the end.
# The project is (re)installed into .venv only when setup.py or requirements.txt changed since
# the last install (their hash is kept in .venv/.datastore-mapper-installed), or when .venv has
# no datastore-mapper command yet.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -x .venv/bin/python ]]; then
  echo "creating .venv ..."
  "${PYTHON:-python3}" -m venv .venv
fi
stamp=.venv/.datastore-mapper-installed
want="$(cat setup.py requirements.txt 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [[ ! -x .venv/bin/datastore-mapper || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "installing the project into .venv (first run, or setup.py/requirements.txt changed) ..."
  .venv/bin/python -m pip install --quiet -e '.[test]'
  echo "$want" > "$stamp"
fi

# Fail early, with the installation hint, if the SDK emulator or Java is missing.
if ! .venv/bin/python -m devtools.emulator check >/dev/null; then
  exit 1
fi

exec .venv/bin/python -m devtools.demo "$@"
