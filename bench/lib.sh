# Shared by the bench/ scripts: tools, the upstream, and wrk's figures.
# Source it; it defines functions only.

# cleanup: stops what a script started (the servers whose pid files are in
# $WORK, and $PC_PID) and removes $WORK. Scripts call `trap cleanup EXIT`.
cleanup() {
    for p in "$WORK"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
    [ -n "${PC_PID:-}" ] && kill "$PC_PID" 2>/dev/null || true
    rm -rf "$WORK"
}

# need COMMAND PACKAGE: installs the Debian package when the command is missing.
need() { command -v "$1" >/dev/null 2>&1 || { echo "installing $2"; DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }; }

# portcullis_binary: sets PORTCULLIS to the binary to measure and BUILD to
# its name. A PORTCULLIS given by the caller (e.g. the profile-guided build
# of bench/pgo.sh) is kept; otherwise the release build is made.
portcullis_binary() {
    if [ -z "${PORTCULLIS:-}" ]; then
        echo "building portcullis (release)..."
        (cd "$ROOT" && cargo build --release -q -p portcullis)
        PORTCULLIS="$ROOT/target/release/portcullis"
    fi
    case "$PORTCULLIS" in
        *target/pgo/*) BUILD="profile-guided build" ;;
        *target/release/*) BUILD="release build" ;;
        *) BUILD="$PORTCULLIS" ;;
    esac
}

# upstream_conf FILE DIR PORT BODY: an nginx answering BODY to everything.
upstream_conf() {
    cat > "$1" <<CONF
worker_processes 1;
pid $2/upstream.pid;
error_log $2/upstream-error.log;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$3 reuseport backlog=4096;
        location / { default_type application/json; return 200 '$4'; }
    }
}
CONF
}

# portcullis_conf FILE LOGGING [ROUTE_LINES]: a Portcullis config with one
# worker, one listener on $PC_PORT (admin on $PC_ADMIN) and one anonymous
# route proxying everything to the upstream on $UP_PORT; LOGGING is the
# line under `logging:`, ROUTE_LINES (indented) are added to the route.
portcullis_conf() {
    cat > "$1" <<CONF
version: 1
runtime: { workers: 1 }
admin: { address: "127.0.0.1:$PC_ADMIN" }
logging:
  $2
listeners:
  - name: main
    address: "127.0.0.1:$PC_PORT"
    limits: { max_connections: 20000 }
upstreams:
  - name: api
    targets: ["127.0.0.1:$UP_PORT"]
    max_idle_connections: 256
defaults:
  authenticate:
    anonymous: true
routes:
  - id: all
    match: { path_prefix: / }
    upstream: api
${3:-}
CONF
}

# wrk's --latency output on stdin -> "rps p50_ms p99_ms failed": failed
# counts non-2xx responses and socket errors. Timeouts must be counted:
# wrk keeps timed-out requests out of its latency figures, so a proxy
# that stalls some requests would otherwise show a better p99.
wrk_summary() {
    awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /Requests\/sec/ { rps=$2 }
        /^ +50%/ { p50=ms($2) }
        /^ +99%/ { p99=ms($2) }
        /Non-2xx/ { bad+=$NF }
        /Socket errors:/ { gsub(",", ""); bad+=$4+$6+$8+$10 }
        END { printf "%s %.3f %.3f %d\n", rps, p50, p99, bad }'
}

# cpu_ticks -> "steal total": clock ticks all cores have had taken by the
# hypervisor, and in all (from /proc/stat). On a shared VM a run during
# which the host took much of the cores measures the neighbours, not the
# programs.
cpu_ticks() { awk '/^cpu / {t=0; for (i=2; i<=9; i++) t+=$i; print $9, t}' /proc/stat; }

# steal_pct "BEFORE" "AFTER" (two cpu_ticks) -> the share stolen between them, in %
steal_pct() { echo "$1 $2" | awk '{d=$4-$2; printf "%.1f\n", (d > 0 ? 100*($3-$1)/d : 0)}'; }

# numbers on stdin -> their median
median() { sort -g | awk '{a[NR]=$1} END { print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) }'; }
