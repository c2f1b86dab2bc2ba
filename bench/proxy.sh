#!/usr/bin/env bash
# Plain reverse proxying: Portcullis against nginx, in one run.
#
# The proxies sit in front of the same upstream (an nginx answering a small
# fixed body), each pinned to one core with one worker; the load generator
# (wrk) and the upstream share the other core. nginx runs twice:
#   nginx          a minimal proxy config (Host and X-Forwarded-For only);
#   nginx-same     configured to do what Portcullis does by default: the
#                  same forwarding headers and request id upstream, the same
#                  security headers and X-Request-Id back, X-Powered-By
#                  hidden.
# Runs rotate between the three; the medians of RUNS runs are reported
# with the ratios, each proxy's CPU time per request (user + system,
# all its threads or workers), and the share of CPU time the hypervisor
# took during the runs (steal); a run during which it took more than
# STEAL_LIMIT% in any round is left out. Then the resident memory of Portcullis and
# nginx holding 1,000 and 10,000 idle keep-alive connections is measured.
#
#   bench/proxy.sh                 # defaults below
#   RUNS=7 DURATION=15s CONNS=128 ACCESS_LOG=off bench/proxy.sh
#   PORTCULLIS=target/pgo/release/portcullis bench/proxy.sh   # the bench/pgo.sh build
set -euo pipefail

# Many short rounds rather than a few long ones: on a shared VM the same
# binary's throughput and p99 swing by 15% and more from one round to the
# next, so what decides a comparison is how many paired rounds it rests on.
RUNS=${RUNS:-15}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
ACCESS_LOG=${ACCESS_LOG:-on}     # on: both proxies write an access log file
GW_CORE=${GW_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
IDLE_COUNTS=${IDLE_COUNTS-"1000 10000"}   # empty: skip
STEAL_LIMIT=${STEAL_LIMIT:-2}    # % of CPU time; runs above it are left out

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"
WORK=$(mktemp -d)
UP_PORT=18181 NGINX_PORT=18182 PC_PORT=18183 PC_ADMIN=18184 SAME_PORT=18185

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need nginx nginx
need wrk wrk
need taskset util-linux
need python3 python3

ulimit -n "$(ulimit -Hn)"

trap cleanup EXIT

portcullis_binary

BODY='{"id":1,"username":"alice","email":"alice@example.com","role":"admin","active":true}'

upstream_conf "$WORK/upstream.conf" "$WORK" "$UP_PORT" "$BODY"

if [ "$ACCESS_LOG" = on ]; then NGINX_LOG="access_log $WORK/nginx-access.log;"; PC_LOG="access_log: { file: $WORK/portcullis-access.log }"; else NGINX_LOG="access_log off;"; PC_LOG="access_log: off"; fi

cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 20000; }
http {
    $NGINX_LOG
    keepalive_requests 1000000;
    upstream api { server 127.0.0.1:$UP_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
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

# nginx doing the same work as Portcullis's defaults.
cat > "$WORK/nginx-same.conf" <<CONF
worker_processes 1;
pid $WORK/nginx-same.pid;
error_log $WORK/nginx-same-error.log;
events { worker_connections 20000; }
http {
    $(echo "$NGINX_LOG" | sed 's/nginx-access/nginx-same-access/')
    keepalive_requests 1000000;
    server_tokens off;
    upstream api { server 127.0.0.1:$UP_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:$SAME_PORT backlog=4096;
        location / {
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header Forwarded "for=\$remote_addr;proto=\$scheme;host=\$host";
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Request-Id \$request_id;
            proxy_hide_header X-Powered-By;
            add_header X-Content-Type-Options nosniff always;
            add_header X-Frame-Options DENY always;
            add_header Referrer-Policy no-referrer always;
            add_header X-Request-Id \$request_id always;
        }
    }
}
CONF

portcullis_conf "$WORK/portcullis.yaml" "$PC_LOG"

taskset -c "$LOAD_CORE" nginx -c "$WORK/upstream.conf"
taskset -c "$GW_CORE" nginx -c "$WORK/nginx.conf"
taskset -c "$GW_CORE" nginx -c "$WORK/nginx-same.conf"
taskset -c "$GW_CORE" "$PORTCULLIS" run --config "$WORK/portcullis.yaml" >/dev/null 2>"$WORK/portcullis.err" &
PC_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PC_PORT/" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$NGINX_PORT/" >/dev/null
curl -sf "http://127.0.0.1:$SAME_PORT/" >/dev/null

# CPU time (user + system, clock ticks) of the given processes, all threads.
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
nginx_workers() { pgrep -P "$(cat "$WORK/$1.pid")" | tr '\n' ' '; }

# measure PORT PID... -> "rps p50_ms p99_ms failed cpu_us_per_request
# steal_pct": the proxy's CPU time per request is the steadier measure of
# its cost on a shared machine, where throughput swings with the
# neighbours; the share of CPU time the hypervisor took says how much.
measure() {
    local port=$1 out t0 t1 c0 c1 reqs
    shift
    t0=$(ticks "$@")
    c0=$(cpu_ticks)
    out=$(taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port/users/1")
    c1=$(cpu_ticks)
    t1=$(ticks "$@")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$(echo "$out" | wrk_summary) $(echo "($t1 - $t0) * 1000000 / $(getconf CLK_TCK) / $reqs" | bc -l) $(steal_pct "$c0" "$c1")"
}


echo "warming up..."
taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d3s "http://127.0.0.1:$PC_PORT/users/1" >/dev/null
taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d3s "http://127.0.0.1:$NGINX_PORT/users/1" >/dev/null
taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d3s "http://127.0.0.1:$SAME_PORT/users/1" >/dev/null

port_of() { case $1 in pc) echo $PC_PORT ;; nx) echo $NGINX_PORT ;; ns) echo $SAME_PORT ;; esac; }
pids_of() { case $1 in pc) echo "$PC_PID" ;; nx) nginx_workers nginx ;; ns) nginx_workers nginx-same ;; esac; }
: > "$WORK/pc.txt"; : > "$WORK/nx.txt"; : > "$WORK/ns.txt"
for i in $(seq "$RUNS"); do
    case $((i % 3)) in 1) order="pc nx ns" ;; 2) order="nx ns pc" ;; *) order="ns pc nx" ;; esac
    for who in $order; do
        port=$(port_of "$who")
        # shellcheck disable=SC2046
        line=$(measure "$port" $(pids_of "$who"))
        echo "$line" >> "$WORK/$who.txt"
        echo "run $i $who: $line"
    done
done

# A run during which the hypervisor took more than STEAL_LIMIT% of the CPU
# time in any of its three rounds measured the neighbours: the whole run
# (all three proxies' rounds, so rounds stay paired) is left out, unless
# fewer than three runs would be left.
STEAL_ALL=$(cat "$WORK"/pc.txt "$WORK"/nx.txt "$WORK"/ns.txt | awk '{print $6}')
STEAL_MED=$(echo "$STEAL_ALL" | median)
STEAL_MAX=$(echo "$STEAL_ALL" | sort -g | tail -1)
KEEP=$(paste "$WORK/pc.txt" "$WORK/nx.txt" "$WORK/ns.txt" | awk -v l="$STEAL_LIMIT" '{m=$6; if ($12>m) m=$12; if ($18>m) m=$18; if (m<=l) print NR}' | tr '\n' ' ')
if [ "$(echo "$KEEP" | wc -w)" -lt 3 ]; then KEEP=$(seq -s ' ' "$RUNS"); fi
KEPT=$(echo "$KEEP" | wc -w)
for who in pc nx ns; do
    awk -v keep=" $KEEP " 'index(keep, " " NR " ")' "$WORK/$who.txt" > "$WORK/$who.kept"
    mv "$WORK/$who.kept" "$WORK/$who.txt"
done

col() { awk -v c="$2" '{print $c}' "$WORK/$1.txt" | median; }
PC_RPS=$(col pc 1); NX_RPS=$(col nx 1); NS_RPS=$(col ns 1)
PC_P50=$(col pc 2); NX_P50=$(col nx 2); NS_P50=$(col ns 2)
PC_P99=$(col pc 3); NX_P99=$(col nx 3); NS_P99=$(col ns 3)
PC_BAD=$(awk '{s+=$4} END {print s+0}' "$WORK/pc.txt")
PC_CPU=$(col pc 5); NX_CPU=$(col nx 5); NS_CPU=$(col ns 5)
# Each round's ratio, then their median: a slow spell of the shared machine
# hits both sides of a round, so paired ratios vary less than medians do.
# paired COLUMN OTHER: the median of the rounds' ratios for that column
# (1: requests/s, 3: p99).
paired() { paste "$WORK/pc.txt" "$WORK/$2.txt" | awk -v c="$1" '{print $c / $(NF / 2 + c)}' | median; }
PAIR_NX=$(paired 1 nx); PAIR_NS=$(paired 1 ns)
# ahead COLUMN OTHER: in how many rounds Portcullis did better on that
# column (1: more requests/s, 3: a lower p99).
ahead() { paste "$WORK/pc.txt" "$WORK/$2.txt" | awk -v c="$1" '{o=$(NF / 2 + c); if (c == 1 ? $c > o : $c < o) n++} END {print n+0}'; }
AHEAD_NX="throughput $(ahead 1 nx) of $KEPT, p99 $(ahead 3 nx) of $KEPT"
AHEAD_NS="throughput $(ahead 1 ns) of $KEPT, p99 $(ahead 3 ns) of $KEPT"
P99_PAIR_NX=$(paired 3 nx); P99_PAIR_NS=$(paired 3 ns)

rss_kb() { local total=0; for p in "$@"; do total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $total; }
nginx_pids() { echo "$(cat "$WORK/nginx.pid") $(pgrep -P "$(cat "$WORK/nginx.pid")" | tr '\n' ' ')"; }

RSS_LINES=""
for n in $IDLE_COUNTS; do
    for who in pc nx; do
        port=$([ "$who" = pc ] && echo $PC_PORT || echo $NGINX_PORT)
        python3 "$ROOT/bench/idle_conns.py" 127.0.0.1 "$port" "$n" /users/1 > "$WORK/idle.out" &
        idle=$!
        for _ in $(seq 600); do grep -q ready "$WORK/idle.out" 2>/dev/null && break; sleep 0.1; done
        sleep 1
        if [ "$who" = pc ]; then kb=$(rss_kb "$PC_PID"); else kb=$(rss_kb $(nginx_pids)); fi
        kill $idle 2>/dev/null; wait $idle 2>/dev/null || true
        eval "RSS_${who}_$n=$kb"
        sleep 2
    done
    RSS_LINES+=$(printf "\n  %6d idle connections: portcullis %7.1f MiB   nginx %7.1f MiB" "$n" \
        "$(echo "$(eval echo \$RSS_pc_$n) / 1024" | bc -l)" "$(echo "$(eval echo \$RSS_nx_$n) / 1024" | bc -l)")
done

REPORT=$(cat <<TXT
Plain proxying ($BUILD), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $RUNS runs of $DURATION, $CONNS connections, access log $ACCESS_LOG
proxy on core $GW_CORE (1 worker each), wrk and upstream on core $LOAD_CORE; medians of $KEPT runs:

  portcullis  $(printf "%9.0f req/s   p50 %6.3f ms   p99 %6.3f ms   CPU %5.1f us/request" "$PC_RPS" "$PC_P50" "$PC_P99" "$PC_CPU")
  nginx       $(printf "%9.0f req/s   p50 %6.3f ms   p99 %6.3f ms   CPU %5.1f us/request" "$NX_RPS" "$NX_P50" "$NX_P99" "$NX_CPU")
  nginx-same  $(printf "%9.0f req/s   p50 %6.3f ms   p99 %6.3f ms   CPU %5.1f us/request" "$NS_RPS" "$NS_P50" "$NS_P99" "$NS_CPU")
  vs nginx       $(printf "%6.2fx throughput (paired rounds %.2fx)   p99 %.2fx of nginx's (paired %.2fx)" "$(echo "$PC_RPS / $NX_RPS" | bc -l)" "$PAIR_NX" "$(echo "$PC_P99 / $NX_P99" | bc -l)" "$P99_PAIR_NX")
  vs nginx-same  $(printf "%6.2fx throughput (paired rounds %.2fx)   p99 %.2fx of nginx's (paired %.2fx)" "$(echo "$PC_RPS / $NS_RPS" | bc -l)" "$PAIR_NS" "$(echo "$PC_P99 / $NS_P99" | bc -l)" "$P99_PAIR_NS")
  rounds portcullis won against nginx:       $AHEAD_NX
  rounds portcullis won against nginx-same:  $AHEAD_NS
  portcullis failed requests (non-2xx, socket errors, timeouts): $PC_BAD
  taken by the hypervisor (steal): median $STEAL_MED% of CPU time per round, at most $STEAL_MAX%;
  runs with a round above $STEAL_LIMIT% left out: $((RUNS - KEPT)) of $RUNS

Resident memory with idle keep-alive connections:$RSS_LINES
TXT
)
echo
echo "$REPORT"
echo "$REPORT" > "$RESULTS/proxy-$(date -u +%Y%m%dT%H%M%S).txt"
