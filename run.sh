#!/usr/bin/env bash
# Set up and run: ./run.sh demo | test | matrix | install | clean
# Each command installs what it needs by itself into .venv: with uv when uv is on PATH,
# with python3 -m venv + pip otherwise. Only bash and Python 3.11 are assumed.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv
# The default development environment: the newest TensorFlow with the newest Keras 3.
DEV_PACKAGES=(tensorflow-cpu==2.21.0 keras==3.15.1)
# `./run.sh test` spreads the suite over up to 4 processes (pytest-xdist; one per core)
TEST_TOOLS=(pytest-xdist==3.8.0)
WORKERS=${CKPTCOMPAT_TEST_WORKERS:-$(nproc 2>/dev/null || echo 1)}
if [[ $WORKERS =~ ^[0-9]+$ ]] && (( WORKERS > 4 )); then WORKERS=4; fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

install() {
    local stamp="$VENV/.installed"
    if [[ -f $stamp && $stamp -nt setup.cfg && $stamp -nt pyproject.toml && $stamp -nt run.sh ]]; then
        return 0
    fi
    if command -v uv >/dev/null 2>&1; then
        uv venv -q --allow-existing -p 3.11 "$VENV"
        uv pip install -q --python "$VENV/bin/python" -e '.[test]' "${DEV_PACKAGES[@]}" "${TEST_TOOLS[@]}"
    else
        if ! "$PYTHON" -m venv "$VENV"; then
            echo "run.sh: '$PYTHON -m venv' failed; on Debian install python3-venv (apt-get install python3-venv) or uv (pip install uv)" >&2
            exit 2
        fi
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e '.[test]' "${DEV_PACKAGES[@]}" "${TEST_TOOLS[@]}"
    fi
    touch "$stamp"
}

case "${1:-}" in
    install) install ;;
    # the end-to-end tests marked slow (SIGKILL + resume, examples, demo) and the tables that read
    # every environment's generated corpora (fresh_fixtures) run in the version matrix (README: which
    # environment runs what); `./run.sh test -m "slow or fresh_fixtures"` runs them here
    test)    install; shift; [[ $# -gt 0 ]] || set -- -m "not slow and not fresh_fixtures" -n "$WORKERS"; exec "$VENV/bin/python" -m pytest -q "$@" ;;
    demo)    install; shift; exec "$VENV/bin/ckptcompat" demo "$@" ;;
    matrix)  install; shift; exec "$VENV/bin/python" tools/matrix.py "$@" ;;
    clean)   rm -rf "$VENV" .matrix build ./*.egg-info ;;
    *) echo "usage: ./run.sh demo|test|matrix|install|clean" >&2; exit 2 ;;
esac
