#!/usr/bin/env bash
# A profile-guided release build of Portcullis.
#
# 1. builds an instrumented binary (target/pgo-gen);
# 2. runs it in front of a local upstream with a plain route and a WAF route
#    (OWASP CRS, paranoia 1), and sends it varied traffic: wrk on plain
#    proxying with changing paths, then bench/pgo_train.py (plain and WAF
#    requests of every method and body kind, attacks, refusals); then runs
#    the rule set's own regression corpus through its WAF engine
#    (`portcullis waf conformance`: some 5,000 requests at every paranoia
#    level);
# 3. merges the profile and builds the optimised binary with it:
#    target/pgo/release/portcullis.
#
# The benches take it with PORTCULLIS=target/pgo/release/portcullis.
#
#   bench/pgo.sh
#   TRAIN_SECONDS=30 bench/pgo.sh
set -euo pipefail

TRAIN_SECONDS=${TRAIN_SECONDS:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
UP_PORT=18381 PC_PORT=18383 PC_ADMIN=18384

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need nginx nginx
need wrk wrk
need python3 python3
trap cleanup EXIT

PROFDATA="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | awk '/^host:/ {print $2}')/bin/llvm-profdata"
if [ ! -x "$PROFDATA" ]; then
    echo "installing rustup's llvm-tools (for llvm-profdata)"
    rustup component add llvm-tools >/dev/null
fi

echo "building the instrumented binary..."
(cd "$ROOT" && RUSTFLAGS="-Cprofile-generate=$WORK/profiles" CARGO_TARGET_DIR="$ROOT/target/pgo-gen" \
    cargo build --release -q -p portcullis)

upstream_conf "$WORK/upstream.conf" "$WORK" "$UP_PORT" '{"id":1,"username":"alice","role":"admin","active":true}'
portcullis_conf "$WORK/portcullis.yaml" "access_log: { file: $WORK/access.log }" "  - id: waf
    match: { path_prefix: /waf/ }
    upstream: api
    filters:
      - kind: waf
        mode: block
        paranoia: 1"
cat > "$WORK/paths.lua" <<'LUA'
request = function()
    return wrk.format(nil, "/users/" .. math.random(1, 100000) .. "?page=" .. math.random(1, 20))
end
LUA

nginx -c "$WORK/upstream.conf"
"$ROOT/target/pgo-gen/release/portcullis" run --config "$WORK/portcullis.yaml" >/dev/null 2>"$WORK/portcullis.err" &
PC_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PC_PORT/users/1" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PC_PORT/users/1" >/dev/null || { cat "$WORK/portcullis.err" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PC_PORT/waf/x?q=1%27%20OR%20%271%27%3D%271")" = 403 ] \
    || { echo "the WAF route does not block" >&2; exit 1; }

echo "training ($TRAIN_SECONDS s of wrk, then $TRAIN_SECONDS s of varied requests)..."
wrk -t1 -c32 -d"${TRAIN_SECONDS}s" -s "$WORK/paths.lua" "http://127.0.0.1:$PC_PORT" | awk '/Requests\/sec/'
python3 "$ROOT/bench/pgo_train.py" "$PC_PORT" "$TRAIN_SECONDS"
kill -TERM "$PC_PID"
wait "$PC_PID" 2>/dev/null || true
PC_PID=
"$ROOT/target/pgo-gen/release/portcullis" waf conformance 2>/dev/null | awk '/^total/' || true

"$PROFDATA" merge -o "$WORK/merged.profdata" "$WORK"/profiles/*.profraw
echo "building the optimised binary..."
(cd "$ROOT" && RUSTFLAGS="-Cprofile-use=$WORK/merged.profdata" CARGO_TARGET_DIR="$ROOT/target/pgo" \
    cargo build --release -q -p portcullis)
echo "built $ROOT/target/pgo/release/portcullis"
