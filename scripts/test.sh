#!/usr/bin/env bash
# Installs whatever is missing (scripts/setup.sh, plus numpy for the parity scripts and
# Fashion-MNIST for the data tests where apt-get can install it), then runs every test of every
# crate. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
cargo test --workspace --locked
