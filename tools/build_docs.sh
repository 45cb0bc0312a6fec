#!/usr/bin/env bash
# Build the documentation site into site/ with warnings as errors (mkdocs build --strict).
# Creates its own virtual environment .venv-docs (mkdocs + mkdocstrings[python] + ckptcompat)
# on first use; works from a clean clone. Needs python3 >= 3.11; uses uv when available.
# Usage: tools/build_docs.sh [extra mkdocs build args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-docs
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    if command -v uv >/dev/null 2>&1; then
        uv venv -q -p "$PY" "$VENV"
    else
        "$PY" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
fi
install() {
    if command -v uv >/dev/null 2>&1; then
        VIRTUAL_ENV="$PWD/$VENV" uv pip install -q "$@"
    else
        "$VENV/bin/python" -m pip install -q "$@"
    fi
}
if ! "$VENV/bin/python" -c "import mkdocs, mkdocstrings_handlers.python" 2>/dev/null; then
    install "mkdocs>=1.6,<2" "mkdocstrings[python]>=0.25"   # API pages are read from source (no import)
fi
exec "$VENV/bin/python" -m mkdocs build --strict "$@"
