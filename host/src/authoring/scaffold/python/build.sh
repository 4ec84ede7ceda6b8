#!/usr/bin/env bash
# Builds {{name}}.wasm beside plugin.toml with componentize-py, after
# writing the bindings and running the tests. Uses componentize-py from
# PATH, else from ./.venv (created from requirements.txt on first use).
set -euo pipefail
cd "$(dirname "$0")"

if command -v componentize-py >/dev/null 2>&1; then
    cpy=$(command -v componentize-py)
else
    if [ ! -x .venv/bin/componentize-py ]; then
        python3 -m venv .venv
        .venv/bin/pip install --quiet -r requirements.txt
    fi
    cpy=.venv/bin/componentize-py
fi
# The Python beside componentize-py (the bindings need 3.11 or later).
python=$(dirname "$cpy")/python3
[ -x "$python" ] || python=python3

# bindings/wit_world: the WIT as Python classes, for your editor
# (pyrightconfig.json points at it) and for the tests; componentize makes
# its own copy when it builds.
rm -rf bindings
"$cpy" -d wit -w {{world}} bindings bindings

# The tests (test_app.py) run before anything is built.
"$python" -m unittest --quiet test_app

"$cpy" -d wit -w {{world}} componentize app -o {{name}}.wasm
