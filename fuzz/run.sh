#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 300) each, seeded from the test corpus.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
# usage: fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}; shift || true
targets=("$@"); ((${#targets[@]})) || targets=(sip_message sip_uri stream_framing endpoint provisioning_input media_input q931_message client_input)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seed() {
  mkdir -p "corpus/$1"
  cp ../core/tests/torture/rfc4475/* ../core/tests/torture/rfc5118/* ../core/tests/messages/* "corpus/$1/"
}
for t in "${targets[@]}"; do
  seed "$t"
  echo "== $t for ${secs}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" -- -max_total_time="$secs" -max_len=70000 2>&1 | tail -n 4
done
