#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target of fuzz/ once and runs each for a short time
# from its seed corpus (fuzz/corpus/<target>), failing on the first crash, leak or timeout.
# Only where cargo-fuzz is already installed: elsewhere it says so and passes, since the seed
# corpora run as ordinary tests in `cargo test` (tests/e2e/fuzz_seeds.rs), and installing
# cargo-fuzz and building the fuzz targets would add their own builds to a cold CI run.
#
# Environment (all optional):
#   FUZZ_SECONDS      seconds per target (default 20)
#   FUZZ_TARGETS      space-separated targets (default: every target of `cargo fuzz list`)
#   FUZZ_BUILD_FLAGS  cargo-fuzz build flags (default "--dev --sanitizer none", see below)
#   FUZZ_TARGET_DIR   cargo target dir of the fuzz build (default /var/tmp/trawl-fuzz-target
#                     when /var/tmp is writable, else fuzz/target), reused between runs
#   CARGO_INSTALL_ROOT where else to look for cargo-fuzz (default /var/tmp/trawl-cargo-tools
#                     when /var/tmp is writable); install it with `cargo install cargo-fuzz --locked`
#
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags
# (-Zsanitizer, -Cpasses=sancov-module). Crashes are written to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-20}"
if [ -w /var/tmp ]; then
  default_target_dir=/var/tmp/trawl-fuzz-target
  export CARGO_INSTALL_ROOT="${CARGO_INSTALL_ROOT:-/var/tmp/trawl-cargo-tools}"
else
  default_target_dir="$PWD/target"
fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$default_target_dir}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if [ -n "${CARGO_INSTALL_ROOT:-}" ]; then
  export PATH="$CARGO_INSTALL_ROOT/bin:$PATH"
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "cargo-fuzz is not installed: timed fuzzing skipped (the seed corpora ran in cargo test)"
  exit 0
fi

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
# The smoke run builds unoptimised (`--dev`: debug assertions and overflow checks on) and without
# AddressSanitizer: 10 CPU-minutes here, against 57 for cargo-fuzz's default
# (`-O --debug-assertions`, ASan) over this dependency tree; a short run looks for panics, which
# both catch. FUZZ_BUILD_FLAGS="-O --debug-assertions" is for a longer, sanitised campaign.
read -r -a build_flags <<< "${FUZZ_BUILD_FLAGS:---dev --sanitizer none}"
echo "building fuzz targets: $targets"
cargo fuzz build "${build_flags[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $targets; do
  echo
  echo "=== fuzz $target for ${seconds}s"
  mkdir -p "$work/$target" "corpus/$target"
  # New inputs go to the scratch corpus (the first directory); the seeds are only read.
  status=0
  cargo fuzz run "${build_flags[@]}" "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    > "$work/$target.log" 2>&1 || status=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)' \
    "$work/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 80 "$work/$target.log"
    echo "fuzz target $target failed (status $status); the input is in fuzz/artifacts/$target/"
    exit "$status"
  fi
done
echo
echo "fuzz smoke run passed: $targets"
