#!/usr/bin/env bash
# The WAF engine's criterion benchmark on a profile-guided build.
#
# 1. builds the training program (crates/waf/examples/pgo_train.rs)
#    instrumented, the way the benchmark is built (profile `bench`, with the
#    dev-dependencies), so that its profile applies to the benchmark;
# 2. runs it: the Core Rule Set's own regression corpus (some 5,000
#    requests, nearly all attacks, at every paranoia level) through the
#    engine. None of the benchmark's requests is in it: the profile is
#    learnt from other traffic, as a shipped build's would be;
# 3. merges the profile and runs the benchmark built with it
#    (target/pgo-bench), criterion's arguments passed on.
#
#   bench/crs-pgo.sh                                  # the whole benchmark
#   bench/crs-pgo.sh "crs_pl1/(json_post_1k|get_with_query|form_post)"
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

PROFDATA="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | awk '/^host:/ {print $2}')/bin/llvm-profdata"
if [ ! -x "$PROFDATA" ]; then
    echo "installing rustup's llvm-tools (for llvm-profdata)"
    rustup component add llvm-tools >/dev/null
fi

cd "$ROOT"
echo "building the instrumented training program..."
RUSTFLAGS="-Cprofile-generate=$WORK/profiles" CARGO_TARGET_DIR="$ROOT/target/pgo-gen-waf" \
    cargo build --profile bench -q -p portcullis-waf --example pgo_train
echo "training on the rule set's regression corpus..."
"$ROOT/target/pgo-gen-waf/release/examples/pgo_train" | tail -1
"$PROFDATA" merge -o "$WORK/waf.profdata" "$WORK"/profiles/*.profraw
# Named by its content: the same profile reuses the last build, another
# one (the flags differ) rebuilds.
PROFILE="$ROOT/target/pgo-gen-waf/waf-$(sha256sum "$WORK/waf.profdata" | cut -c1-16).profdata"
cp "$WORK/waf.profdata" "$PROFILE"
echo "building and running the benchmark with $PROFILE..."
RUSTFLAGS="-Cprofile-use=$PROFILE" CARGO_TARGET_DIR="$ROOT/target/pgo-bench" \
    cargo bench -p portcullis-waf --bench crs -- "$@"
