#!/usr/bin/env bash
# The WAF in the gateway: Portcullis with the OWASP Core Rule Set against
# nginx with ModSecurity (libmodsecurity3, Debian's packages) loading the
# same CRS v4.28.0 files, both at paranoia level 1 in blocking mode, in one
# run.
#
# Both engines get the same base configuration (crates/waf/conf/base.conf:
# body processors by Content-Type, body limits, rules 200000-200007), the
# same crs-setup.conf.example and rules; ModSecurity's audit log and
# response body inspection are off, as Portcullis inspects requests and
# reports matches as security events. Each proxy is pinned to one core with
# one worker; wrk and the upstream (an nginx answering a small JSON body)
# share the other core.
#
# Before measuring, the script checks that both pass the legitimate
# requests and block a SQL injection, so neither side runs without its
# rules. Typical API requests, each measured RUNS times, alternating:
#   get    GET with a query string and the usual browser/API headers
#   json   POST of a 1 KB JSON document (an order with one item)
# Medians of requests/s, p50 and p99 are printed with the ratio.
#
#   bench/waf.sh
#   RUNS=5 DURATION=10s CONNS=32 bench/waf.sh
#   PORTCULLIS=target/pgo/release/portcullis bench/waf.sh   # the bench/pgo.sh build
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRS="$ROOT/crates/waf/crs/v4.28.0"
WORK=$(mktemp -d)
UP_PORT=18281 MS_PORT=18282 PC_PORT=18283 PC_ADMIN=18284

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need nginx nginx
need wrk wrk
need taskset util-linux
MODULE=/usr/share/nginx/modules/ngx_http_modsecurity_module.so
[ -f "$MODULE" ] || { echo "installing libnginx-mod-http-modsecurity"; DEBIAN_FRONTEND=noninteractive apt-get install -y -q libnginx-mod-http-modsecurity >/dev/null; }

ulimit -n "$(ulimit -Hn)"

trap cleanup EXIT

portcullis_binary

upstream_conf "$WORK/upstream.conf" "$WORK" "$UP_PORT" '{"ok":true}'

{
    cat "$ROOT/crates/waf/conf/base.conf"
    echo "SecAuditEngine Off"
    echo "SecResponseBodyAccess Off"
    echo "Include $CRS/crs-setup.conf.example"
    echo 'SecAction "id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=1"'
    echo "Include $CRS/rules/*.conf"
} > "$WORK/modsec.conf"

cat > "$WORK/nginx-modsec.conf" <<CONF
load_module $MODULE;
worker_processes 1;
pid $WORK/nginx-modsec.pid;
error_log $WORK/nginx-modsec-error.log;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_buffer_size 128k;
    upstream api { server 127.0.0.1:$UP_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:$MS_PORT backlog=4096;
        modsecurity on;
        modsecurity_rules_file $WORK/modsec.conf;
        location / {
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
CONF

portcullis_conf "$WORK/portcullis.yaml" "access_log: off" "    filters:
      - kind: waf
        mode: block
        paranoia: 1"

# The 1 KB JSON order and the wrk scripts for each request.
python3 - "$WORK/order.json" <<'PY'
import json, sys
desc = ("A sturdy everyday item made from recycled materials, with a two year warranty. "
        "Ships in plain packaging within two working days of the order being placed; "
        "returns are free within thirty days for any reason at all. ")
doc = {"order": "A-1001", "customer": {"email": "ada@example.com"},
       "items": [{"id": 0, "name": "Item number 0", "price": 0.99, "tags": ["red", "large"],
                  "in_stock": True, "description": (desc * 4).strip()}]}
open(sys.argv[1], "w").write(json.dumps(doc, separators=(",", ":")))
PY
HEADERS='wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
wrk.headers["Accept"] = "application/json"
wrk.headers["Accept-Encoding"] = "gzip, deflate, br"
wrk.headers["Authorization"] = "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"'
cat > "$WORK/get.lua" <<LUA
$HEADERS
wrk.path = "/api/v1/orders?status=shipped&page=2&sort=-created_at"
LUA
cat > "$WORK/json.lua" <<LUA
$HEADERS
wrk.method = "POST"
wrk.path = "/api/v1/orders"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/order.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA

taskset -c "$LOAD_CORE" nginx -c "$WORK/upstream.conf"
taskset -c "$GW_CORE" nginx -c "$WORK/nginx-modsec.conf"
taskset -c "$GW_CORE" "$PORTCULLIS" run --config "$WORK/portcullis.yaml" >/dev/null 2>"$WORK/portcullis.err" &
PC_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PC_PORT/" >/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$MS_PORT/" >/dev/null && break; sleep 0.1; done

# Both must pass the legitimate requests and block an attack.
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
for port in $PC_PORT $MS_PORT; do
    ua='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'
    get=$(status -H "User-Agent: $ua" -H 'Accept: application/json' "http://127.0.0.1:$port/api/v1/orders?status=shipped&page=2&sort=-created_at")
    post=$(status -H "User-Agent: $ua" -H 'Accept: application/json' -H 'Content-Type: application/json' --data-binary "@$WORK/order.json" "http://127.0.0.1:$port/api/v1/orders")
    attack=$(status -H "User-Agent: $ua" -H 'Accept: application/json' "http://127.0.0.1:$port/api/v1/orders?id=1%27%20OR%20%271%27%3D%271")
    echo "port $port: GET $get, JSON POST $post, SQL injection $attack"
    if [ "$get" != 200 ] || [ "$post" != 200 ] || [ "$attack" != 403 ]; then
        echo "a proxy does not pass legitimate requests or does not block the attack" >&2
        exit 1
    fi
done

# wrk output -> "rps p50_ms p99_ms failed"
measure() {
    taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/$2.lua" "http://127.0.0.1:$1" | wrk_summary
}

echo "warming up..."
for s in get json; do
    measure $PC_PORT $s >/dev/null
    measure $MS_PORT $s >/dev/null
done

port_of() { case $1 in pc) echo $PC_PORT ;; ms) echo $MS_PORT ;; esac; }
SUMMARY=""
for s in get json; do
    : > "$WORK/pc-$s.txt"; : > "$WORK/ms-$s.txt"
    for i in $(seq "$RUNS"); do
        if [ $((i % 2)) = 1 ]; then order="pc ms"; else order="ms pc"; fi
        for who in $order; do
            line=$(measure "$(port_of $who)" $s)
            echo "$line" >> "$WORK/$who-$s.txt"
            echo "$s run $i $who: $line"
        done
    done
    col() { awk -v c="$2" '{print $c}' "$WORK/$1-$s.txt" | median; }
    bad=$(cat "$WORK/pc-$s.txt" "$WORK/ms-$s.txt" | awk '{b+=$4} END {print b+0}')
    ratio=$(echo "$(col pc 1) / $(col ms 1)" | bc -l)
    SUMMARY+=$(printf "\n  %-5s portcullis %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms | nginx+modsecurity %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms | %5.1fx  (failed: %s)" \
        "$s" "$(col pc 1)" "$(col pc 2)" "$(col pc 3)" "$(col ms 1)" "$(col ms 2)" "$(col ms 3)" "$ratio" "$bad")
done

echo
echo "WAF ($BUILD): OWASP CRS v4.28.0, paranoia 1, blocking; one core each, $CONNS connections, $RUNS x $DURATION, medians"
echo "$SUMMARY"
