#!/usr/bin/env bash
# Run the demo end to end on the local Cloud Datastore emulator:
#   ./run_demo.sh                          # count keys per namespace
#   ./run_demo.sh --job count_by_category  # extra args go to `python -m pipeline`
# Output: $DEMO_OUTPUT, or a temporary directory printed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -x .venv/bin/python ]]; then
  echo "creating .venv ..."
  "${PYTHON:-python3}" -m venv .venv
fi
echo "installing the project into .venv ..."
.venv/bin/python -m pip install --quiet -e '.[test]'

# Fail early, with the installation hint, if the SDK emulator or Java is missing.
if ! .venv/bin/python -m devtools.emulator check >/dev/null; then
  exit 1
fi

exec .venv/bin/python -m devtools.demo "$@"
