#!/usr/bin/env bash
# Builds failure-alert.wasm beside plugin.toml with componentize-py. Uses
# componentize-py from PATH, else from the shared venv at ../.venv (created
# and filled from requirements.txt on first use).
set -euo pipefail
cd "$(dirname "$0")"

if command -v componentize-py >/dev/null 2>&1; then
    cpy=componentize-py
else
    venv=../.venv
    if [ ! -x "$venv/bin/componentize-py" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet -r requirements.txt
    fi
    cpy="$venv/bin/componentize-py"
fi

"$cpy" -d ../../../wit -w event-handler-plugin componentize app -o failure-alert.wasm
