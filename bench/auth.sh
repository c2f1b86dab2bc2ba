#!/usr/bin/env bash
# The cost of authentication: one Portcullis, one upstream, four routes
# that differ only in their policy, measured in rotating rounds:
#   plain      anonymous (the gateway's own plain-proxy figure)
#   api_key    X-API-Key, the same key on every request
#   jwt        Authorization: Bearer, EdDSA, the same token on every
#              request (verified once, then from the verified-token cache)
#   jwt_new    a different token on every request (each one verified)
# Prints the medians and each mode's ratio to plain (paired by round).
# Target: api_key and jwt >= 0.9x plain.
#
#   bench/auth.sh
#   RUNS=7 DURATION=10s CONNS=64 bench/auth.sh
set -euo pipefail

RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
NEW_TOKENS=${NEW_TOKENS:-400000}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
UP_PORT=18191 PC_PORT=18193 PC_ADMIN=18194

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need nginx nginx
need wrk wrk
need taskset util-linux
python3 -c 'import cryptography' 2>/dev/null || pip install -q cryptography

ulimit -n "$(ulimit -Hn)"
trap cleanup EXIT

portcullis_binary

echo "making $NEW_TOKENS tokens..."
python3 "$ROOT/bench/tokens.py" "$WORK" "$NEW_TOKENS"
TOKEN=$(head -1 "$WORK/tokens.txt")

upstream_conf "$WORK/upstream.conf" "$WORK" "$UP_PORT" '{"id":1,"username":"alice"}'

cat > "$WORK/portcullis.yaml" <<CONF
version: 1
runtime: { workers: 1 }
admin: { address: "127.0.0.1:$PC_ADMIN" }
logging:
  access_log: { file: $WORK/access.log }
authentication:
  store: { sqlite: $WORK/creds.db }
  jwt:
    - name: bench
      issuer: https://issuer.bench
      audiences: [bench]
      algorithms: [EdDSA]
      keys: { pem_files: [$WORK/issuer.pub.pem] }
listeners:
  - name: main
    address: "127.0.0.1:$PC_PORT"
    limits: { max_connections: 20000 }
upstreams:
  - name: api
    targets: ["127.0.0.1:$UP_PORT"]
    max_idle_connections: 256
routes:
  - id: plain
    match: { path_prefix: /plain }
    upstream: api
    filters: [{ kind: authenticate, anonymous: true }]
  - id: key
    match: { path_prefix: /key }
    upstream: api
    filters: [{ kind: authenticate, methods: [api_key] }]
  - id: jwt
    match: { path_prefix: /jwt }
    upstream: api
    filters: [{ kind: authenticate, methods: ["jwt:bench"], scopes: ["orders:read"] }]
CONF

"$PORTCULLIS" consumers create --config "$WORK/portcullis.yaml" bench >/dev/null
KEY=$("$PORTCULLIS" keys create --config "$WORK/portcullis.yaml" --consumer bench 2>/dev/null)

taskset -c "$LOAD_CORE" nginx -c "$WORK/upstream.conf"
taskset -c "$GW_CORE" "$PORTCULLIS" run --config "$WORK/portcullis.yaml" >/dev/null 2>"$WORK/portcullis.err" &
PC_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PC_PORT/plain" >/dev/null && break; sleep 0.1; done
check() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$@")" = 200 ] || { echo "setup failed: $*" >&2; exit 1; }; }
check -H "X-API-Key: $KEY" "http://127.0.0.1:$PC_PORT/key"
check -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PC_PORT/jwt"

# Each request a new token, read from the file in turn; each run starts
# at its own offset so no token is ever sent twice (and none is cached).
cat > "$WORK/new.lua" <<LUA
local tokens = {}
for line in io.lines("$WORK/tokens.txt") do tokens[#tokens + 1] = line end
local i = 0
init = function(args) i = tonumber(args[1]) or 0 end
request = function()
    i = i + 1
    if i > #tokens then i = 1 end
    return wrk.format("GET", "/jwt", { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA

measure() {
    local mode=$1 out
    case $mode in
        plain) out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$PC_PORT/plain") ;;
        api_key) out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "X-API-Key: $KEY" "http://127.0.0.1:$PC_PORT/key") ;;
        jwt) out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PC_PORT/jwt") ;;
        jwt_new) out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/new.lua" "http://127.0.0.1:$PC_PORT" -- "$OFFSET") ;;
    esac
    echo "$out" | wrk_summary
}

echo "warming up..."
for m in plain api_key jwt; do measure $m >/dev/null; done

MODES="plain api_key jwt jwt_new"
for m in $MODES; do : > "$WORK/$m.txt"; done
for i in $(seq "$RUNS"); do
    # Rotate the order so no mode always runs first.
    set -- $MODES
    for _ in $(seq $(( (i - 1) % 4 ))); do first=$1; shift; set -- "$@" "$first"; done
    OFFSET=$(( (i - 1) * NEW_TOKENS / RUNS ))
    for m in "$@"; do
        line=$(measure "$m")
        echo "$line" >> "$WORK/$m.txt"
        echo "run $i $m: $line"
    done
done

col() { awk -v c="$2" '{print $c}' "$WORK/$1.txt" | median; }
paired() { paste "$WORK/$1.txt" "$WORK/plain.txt" | awk '{print $1 / $5}' | median; }
echo
echo "Authentication ($BUILD), $(date -u +%Y-%m-%dT%H:%MZ), $RUNS runs of $DURATION, $CONNS connections, access log on; medians"
printf "%-9s %10s %9s %9s %8s %18s\n" mode "req/s" "p50 ms" "p99 ms" "failed" "vs plain (paired)"
for m in $MODES; do
    bad=$(awk '{s+=$4} END {print s+0}' "$WORK/$m.txt")
    printf "%-9s %10.0f %9.3f %9.3f %8s %17.2fx\n" "$m" "$(col "$m" 1)" "$(col "$m" 2)" "$(col "$m" 3)" "$bad" "$(paired "$m")"
done
