#!/usr/bin/env bash
# Installs what kd needs and is missing, and nothing else: safe to run again and again.
#
#   * a project-local Python virtual environment in .venv/ holding torch==2.11.0, the exact
#     PyTorch release tch 0.24.0 is built against (about 530 MB plus ~4 GB of NVIDIA wheels on
#     first run; it works on machines without a GPU);
#   * with --test: what the test suite needs beyond that: numpy in .venv (the tests' PyTorch
#     parity scripts use it) and Debian's Fashion-MNIST package (its tests skip without it).
#
# The build finds libtorch through .cargo/config.toml, which points at .venv/; nothing has to
# be exported by hand.
set -euo pipefail

cd "$(dirname "$0")/.."
TORCH_VERSION=2.11.0
VENV=.venv
PY="$VENV/bin/python"

want_test=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        *) echo "setup.sh: unknown option '$arg' (known: --test)" >&2; exit 2 ;;
    esac
done

say() { printf '[setup] %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: cargo not found; install a Rust toolchain first (https://rustup.rs)" >&2
    exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "setup.sh: python3 not found; install Python 3.10 or newer" >&2
    exit 1
fi

if [ ! -x "$PY" ]; then
    say "creating the virtual environment $VENV"
    python3 -m venv "$VENV"
fi

have=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have" != "$TORCH_VERSION" ]; then
    say "installing torch==$TORCH_VERSION into $VENV (first time only: ~4.5 GB download)"
    "$PY" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
else
    say "torch $have already in $VENV"
fi

if [ "$want_test" = 1 ] && ! "$PY" -c 'import numpy' 2>/dev/null; then
    say "installing numpy into $VENV for the tests' PyTorch parity scripts"
    "$PY" -m pip install --quiet --disable-pip-version-check numpy
fi

if [ "$want_test" = 1 ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        say "installing Fashion-MNIST (Debian package dataset-fashion-mnist) for the tests"
        if ! { apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; }; then
            say "could not install dataset-fashion-mnist; the tests that need it will skip"
        fi
    else
        say "not root or no apt-get: Fashion-MNIST tests will skip"
    fi
fi

# A stable path for the build (.cargo/config.toml) whatever the Python minor version.
site=$("$PY" -W ignore -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)
if [ "$(readlink "$VENV/libtorch" 2>/dev/null)" != "$site" ]; then
    ln -sfn "$site" "$VENV/libtorch"
    say "linked $VENV/libtorch -> $site"
fi
