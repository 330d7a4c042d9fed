#!/usr/bin/env bash
# tools/race.sh — Headcount vs Redis, on this machine, in one run (issue 4).
#
# Starts redis-server (appendonly, appendfsync always: durable like Headcount) and Headcount
# (--fsync on, release build), each on a free loopback port in a temporary directory, then runs
# interleaved rounds of:
#   (a) one event per request, no pipelining: headcount-loadgen --batch 1 flat out over C
#       connections driven from one thread (as redis-benchmark drives its clients)  vs  redis-benchmark -P 1 -c C  HINCRBY counters:E1 validTickets 1
#   (b) batched: headcount-loadgen NDJSON batches (B events per request) flat out
#       vs  redis-benchmark -P 64 -c C  HINCRBY ...
#   (a) and (b) again with Redis at W clients (redis-benchmark's default, 50): Redis's
#       group commit carries more commands per fsync the more clients it has, so C alone
#       would flatter Headcount; (a) runs Headcount at W connections too, (b) compares the
#       same Headcount batched figure with Redis at -c W.
#   (c) statistics-query latency for 8 events (GET /v1/event-statistics), at dateTime = now
#       and a year back (a backfill dated 360.5 days ago is sent first), while a batched feed
#       saturates the server and with the server idle; plus feed-to-query freshness.
# Prints every figure, the ratios Headcount/Redis per round and the median over rounds, and
# the machine. Everything listens on and talks to 127.0.0.1 only; both servers and the temp
# directory are removed on exit.
set -euo pipefail

ROUNDS=3
PHASE=10            # seconds per throughput phase and per saturated-query phase
IDLE=5              # seconds per idle-query phase
CONNS=8             # connections for (a) and for redis-benchmark in (a) and (b)
WIDE_CONNS=50       # the same at redis-benchmark's default client count (0: not run)
BATCH=1000          # events per request in (b) and (c)
BATCH_CONNS=2       # headcount-loadgen connections in (b) and (c)
BATCH_PIPELINE=2    # requests in flight per connection in (b) and (c)
QUERY_RATE=200      # statistics queries per second in (c)
JSON=0
FRESH=0
BUILD=1
KEEP=0
SERVER_ARGS=()
SERVER_ENV=()

usage() {
    cat <<EOF
usage: tools/race.sh [options]
  --rounds N           interleaved rounds (default $ROUNDS)
  --phase-seconds S    length of each throughput / saturated-query phase (default $PHASE)
  --idle-seconds S     length of each idle-query phase (default $IDLE)
  --connections C      connections for one-event-per-request and for redis-benchmark (default $CONNS)
  --wide-connections W (a) and Redis's (b) again at W clients (default $WIDE_CONNS, redis-benchmark's
                       default; 0 skips them)
  --batch B            events per NDJSON request in the batched phases (default $BATCH)
  --query-rate Q       statistics queries per second in (c) (default $QUERY_RATE)
  --quick              1 round, 5 s phases, 3 s idle phases (about a minute)
  --fresh-each-round   restart both servers with empty data before each round (default: one
                       pair of servers for the whole run, so Headcount's state grows round by round)
  --no-build           use the existing .build/release binaries
  --json               also print the whole result as JSON on stdout (tables go to stderr)
  --keep               keep the temporary directory (logs, server data)
  --server-arg ARG     pass ARG to \`headcount serve\` (repeat for each word), to race a setting:
                       e.g. --server-arg --intake-thread-body-bytes --server-arg 0
  --server-env VAR=VALUE  set VAR in \`headcount serve\`'s environment only (repeat), e.g.
                       --server-env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
EOF
}

while (( $# > 0 )); do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --phase-seconds) PHASE="$2"; shift 2 ;;
        --idle-seconds) IDLE="$2"; shift 2 ;;
        --connections) CONNS="$2"; shift 2 ;;
        --wide-connections) WIDE_CONNS="$2"; shift 2 ;;
        --batch) BATCH="$2"; shift 2 ;;
        --query-rate) QUERY_RATE="$2"; shift 2 ;;
        --quick) ROUNDS=1; PHASE=5; IDLE=3; shift ;;
        --fresh-each-round) FRESH=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --json) JSON=1; shift ;;
        --keep) KEEP=1; shift ;;
        --server-arg) SERVER_ARGS+=("$2"); shift 2 ;;
        --server-env) SERVER_ENV+=("$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "race: unknown option $1" >&2; usage >&2; exit 64 ;;
    esac
done

cd "$(dirname "$0")/.."
ROOT="$PWD"

# With --json the human-readable report goes to stderr.
if (( JSON )); then exec 3>&1 1>&2; else exec 3>&1; fi
say() { printf '%s\n' "$*"; }

# ---- dependencies ----------------------------------------------------------------------
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v jq >/dev/null 2>&1 || need+=(jq)
if (( ${#need[@]} > 0 )); then
    say "race: installing ${need[*]}"
    sudo=""; [[ "$(id -u)" != 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if (( BUILD )); then
    tools/install-deps.sh
    say "race: building release binaries"
    swift build -c release --product headcount >&2
    swift build -c release --product headcount-loadgen >&2
fi
HC="$ROOT/.build/release/headcount"
LG="$ROOT/.build/release/headcount-loadgen"
[[ -x "$HC" && -x "$LG" ]] || { echo "race: missing $HC or $LG (build them, or drop --no-build)" >&2; exit 1; }

# ---- servers ---------------------------------------------------------------------------
TMP="$(mktemp -d /tmp/headcount-race-XXXXXX)"
REDIS_PID=""
HC_PID=""
cleanup() {
    local rc=$?
    stop_servers
    if (( KEEP )); then echo "race: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

FEED_KEY="race-feed-$RANDOM$RANDOM"
READ_KEY="race-admin-$RANDOM$RANDOM"
printf '[{"key":"%s","role":"feed"},{"key":"%s","role":"admin"}]\n' "$FEED_KEY" "$READ_KEY" > "$TMP/keys.json"

# start_servers N: redis and headcount with empty data in $TMP/*-N; sets RP, URL, the PIDs.
start_servers() {
    local gen="$1"
    mkdir -p "$TMP/redis-$gen"
    REDIS_PID=""
    for _ in $(seq 1 20); do
        RP=$(( 20000 + RANDOM % 40000 ))
        port_free "$RP" || continue
        redis-server --port "$RP" --bind 127.0.0.1 --protected-mode yes --dir "$TMP/redis-$gen" \
            --appendonly yes --appendfsync always --save "" --daemonize no \
            --logfile "$TMP/redis-$gen.log" &
        REDIS_PID=$!
        for _ in $(seq 1 50); do
            redis-cli -h 127.0.0.1 -p "$RP" ping >/dev/null 2>&1 && break
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.1
        done
        if redis-cli -h 127.0.0.1 -p "$RP" ping >/dev/null 2>&1; then break; fi
        kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=""
    done
    [[ -n "$REDIS_PID" ]] || { echo "race: redis-server did not start (see $TMP/redis-$gen.log)" >&2; exit 1; }

    env ${SERVER_ENV[@]+"${SERVER_ENV[@]}"} "$HC" serve --host 127.0.0.1 --port 0 --data-dir "$TMP/headcount-$gen" --keys "$TMP/keys.json" --fsync on ${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"} \
        >"$TMP/headcount-$gen.out" 2>"$TMP/headcount-$gen.err" </dev/null &
    HC_PID=$!
    URL=""
    for _ in $(seq 1 300); do
        URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$TMP/headcount-$gen.out" | head -1)
        [[ -n "$URL" ]] && break
        kill -0 "$HC_PID" 2>/dev/null || { cat "$TMP/headcount-$gen.err" >&2; echo "race: headcount exited" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$URL" ]] || { echo "race: headcount did not start" >&2; exit 1; }
    LGBASE=("$LG" --url "$URL" --feed-key "$FEED_KEY" --read-key "$READ_KEY" --quiet --json)
    say "race: headcount $URL (--fsync on${SERVER_ARGS[@]+ ${SERVER_ARGS[*]}}${SERVER_ENV[@]+, environment ${SERVER_ENV[*]}}, data $TMP/headcount-$gen); redis $REDIS_VERSION 127.0.0.1:$RP (appendonly yes, appendfsync always, dir $TMP/redis-$gen)"
}

stop_servers() {
    [[ -n "$HC_PID" ]] && { kill -TERM "$HC_PID" 2>/dev/null; wait "$HC_PID" 2>/dev/null || true; }
    [[ -n "$REDIS_PID" ]] && { kill -TERM "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null || true; }
    HC_PID=""; REDIS_PID=""
}

REDIS_VERSION=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
NPROC=$(nproc)
say "race: machine: $NPROC cores, $CPU, $(uname -sr)"
say "race: $ROUNDS round(s); phases ${PHASE}s, idle ${IDLE}s; C=$CONNS, W=$WIDE_CONNS; batch $BATCH over $BATCH_CONNS conn × pipeline $BATCH_PIPELINE; $QUERY_RATE queries/s"

# ---- helpers ---------------------------------------------------------------------------
# loadgen NAME ARGS...: runs the loadgen, keeps its JSON in $TMP/NAME.json (errors are counted
# in the JSON, so a non-zero exit because of counted problems is not fatal).
loadgen() {
    local name="$1"; shift
    local rc=0
    "${LGBASE[@]}" "$@" >"$TMP/$name.json" 2>"$TMP/$name.err" || rc=$?
    if (( rc != 0 && rc != 2 )) || ! jq -e . "$TMP/$name.json" >/dev/null 2>&1; then
        echo "race: loadgen $name failed (exit $rc):" >&2; tail -20 "$TMP/$name.err" >&2; exit 1
    fi
    local problems; problems=$(jq '.problems' "$TMP/$name.json")
    if (( problems > 0 )); then
        say "    ! loadgen $name reported $problems problem(s):"
        jq -r '[.feed.samples, .queries.samples, .freshness.samples, .backfill.samples] | map(select(. != null)) | add | .[:5][] | "      " + .' "$TMP/$name.json"
    fi
}
j() { jq -r "$1" "$TMP/$2.json"; }
# wal_syncs: "sum count" of the server's headcount_wal_sync_seconds; steal: the machine's steal
# time so far, in jiffies (1/100 s) — how much CPU the host took from this VM.
wal_syncs() {
    curl -s -H "Authorization: Bearer $READ_KEY" "$URL/metrics" \
        | awk '/^headcount_wal_sync_seconds_sum / { s = $2 } /^headcount_wal_sync_seconds_count / { c = $2 } END { print s + 0, c + 0 }'
}
steal() { awk '/^cpu / { print $9 }' /proc/stat; }
# CPU accounting for (a): what each side spends per request, split into user and kernel time.
# proc_cpu PID: "user sys" seconds so far of a running process (its threads included);
# children_cpu: sets CHILDREN_CPU to "user sys" seconds of this shell's finished children (a
# client just run).
CLK_TCK=$(getconf CLK_TCK)
# Headcount's snapshot thread (hc-snapshot) is left out of proc_cpu and read by snapshot_cpu: it
# works when a snapshot is due, whatever the phase, and only on CPU nothing else wants.
proc_cpu() {
    local task u=0 s=0 line
    for task in /proc/"$1"/task/*; do
        [[ "$(cat "$task/comm" 2>/dev/null)" == hc-snapshot ]] && continue
        line=$(awk '{ print $14, $15 }' "$task/stat" 2>/dev/null) || continue
        [[ -n "$line" ]] || continue
        u=$(( u + ${line% *} )); s=$(( s + ${line#* } ))
    done
    awk -v t="$CLK_TCK" -v u="$u" -v s="$s" 'BEGIN { printf "%.3f %.3f\n", u / t, s / t }'
}
snapshot_cpu() {
    local task
    for task in /proc/"$1"/task/*; do
        [[ "$(cat "$task/comm" 2>/dev/null)" == hc-snapshot ]] && { awk -v t="$CLK_TCK" '{ printf "%.2f\n", ($14 + $15) / t }' "$task/stat"; return; }
    done
    echo 0
}
# (`times` runs in this shell, not in a command substitution: a subshell has no finished children.)
CHILDREN_CPU=""
children_cpu() { times >"$TMP/times"; CHILDREN_CPU=$(tail -1 "$TMP/times" | awk '{ split($1, u, "m"); split($2, s, "m"); printf "%.3f %.3f\n", u[1] * 60 + u[2], s[1] * 60 + s[2] }'); }
# per_request BEFORE AFTER REQUESTS: "user sys" µs per request between two "user sys" readings.
per_request() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { split(a, x, " "); split(b, y, " "); if (n > 0) printf "%.1f %.1f", (y[1] - x[1]) / n * 1e6, (y[2] - x[2]) / n * 1e6; else print "0 0" }'; }
# us_pair / us_json "U S": the figures for a line / as JSON.
us_pair() { awk -v p="$1" 'BEGIN { split(p, x, " "); printf "%s user + %s kernel", x[1], x[2] }'; }
us_json() { awk -v p="$1" 'BEGIN { split(p, x, " "); printf "{\"userMicroseconds\": %s, \"kernelMicroseconds\": %s}", x[1], x[2] }'; }

# redis_bench NAME PIPELINE N [CLIENTS]: redis-benchmark HINCRBY (CLIENTS: default C), CSV kept
# in $TMP/NAME.csv; prints ops/s.
redis_bench() {
    local name="$1" pipeline="$2" n="$3" clients="${4:-$CONNS}"
    redis-benchmark -h 127.0.0.1 -p "$RP" -c "$clients" -n "$n" -P "$pipeline" --csv \
        HINCRBY counters:E1 validTickets 1 >"$TMP/$name.csv" 2>"$TMP/$name.err"
    tail -1 "$TMP/$name.csv" | awk -F'","' '{ gsub(/"/, "", $2); print $2 }'
}
redis_p99() { tail -1 "$TMP/$1.csv" | awk -F'","' '{ gsub(/"/, "", $7); print $7 }'; }

fmt() { awk -v x="$1" 'BEGIN { s = sprintf("%.0f", x); o = ""; n = length(s); for (i = 1; i <= n; i++) { o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n && substr(s, i, 1) != "-") o = o "," } print o }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---- setup: the 8 queried events, with history now and a year back --------------------
setup() {
    say "race: setup: 8 events × 2,000 tickets now, 8 × 500 tickets dated 360.5 days ago"
    loadgen "setup-$1" --flat-out --events 8 --tickets 2000 --batch 1000 --connections 1 --pipeline 2 \
        --backfill-tickets 500 --backfill-days 360.5 --probe-rate 0 --duration 60
    say "    setup: $(j '.feed.accepted' "setup-$1") events now, backfill $(j '.backfill.accepted' "setup-$1") events a year back"
    # Redis calibration, to size redis-benchmark -n for about PHASE seconds.
    redis_p1=$(redis_bench "cal1-$1" 1 5000)
    redis_p64=$(redis_bench "cal64-$1" 64 200000)
    if (( WIDE_CONNS > 0 )); then
        redis_w1=$(redis_bench "calw1-$1" 1 20000 "$WIDE_CONNS")
        redis_w64=$(redis_bench "calw64-$1" 64 400000 "$WIDE_CONNS")
    fi
}

start_servers 1
setup 1

declare -a R_FLOOR A_HC A_R A_RATIO B_HC B_R B_RATIO AW_HC AW_R AW_RATIO BW_R BW_RATIO Q_IDLE Q_SAT Q_IDLE_PAST Q_SAT_PAST FRESH Q_SAT_FEED ROUND_JSON
for round in $(seq 1 "$ROUNDS"); do
    say ""
    if (( FRESH && round > 1 )); then
        stop_servers
        (( KEEP )) || rm -rf "$TMP/headcount-$((round - 1))" "$TMP/redis-$((round - 1))"
        start_servers "$round"
        setup "$round"
    fi
    say "round $round/$ROUNDS"
    # Alternate who goes first, so a drift of the machine does not always favour one side.
    first_hc=$(( round % 2 ))

    # (a) one event per request
    n1=$(awk -v r="$redis_p1" -v s="$PHASE" 'BEGIN { n = int(r * s); if (n < 5000) n = 5000; print n }')
    run_a_hc() {
        local syncs0 steal0 syncs1 s0 c0
        syncs0=$(wal_syncs); steal0=$(steal); s0=$(proc_cpu "$HC_PID"); children_cpu; c0=$CHILDREN_CPU; snap0=$(snapshot_cpu "$HC_PID")
        loadgen "a-hc-$round" --flat-out --loop --batch 1 --connections "$CONNS" --threads 1 --events 8 --tickets 5000 --duration "$PHASE" --probe-rate 0
        children_cpu
        a_cpu_hc=$(per_request "$s0" "$(proc_cpu "$HC_PID")" "$(j '.feed.requests' "a-hc-$round")")
        a_snap=$(awk -v a="$snap0" -v b="$(snapshot_cpu "$HC_PID")" 'BEGIN { printf "%.2f", b - a }')
        a_cpu_lg=$(per_request "$c0" "$CHILDREN_CPU" "$(j '.feed.requests' "a-hc-$round")")
        syncs1=$(wal_syncs); a_steal_hc=$(( $(steal) - steal0 ))
        a_fsync_ms=$(awk -v a="$syncs0" -v b="$syncs1" 'BEGIN { split(a, x, " "); split(b, y, " "); n = y[2] - x[2]; if (n > 0) printf "%.3f", (y[1] - x[1]) / n * 1000; else print "null" }')
    }
    run_a_r() {
        local steal0 s0 c0
        steal0=$(steal); s0=$(proc_cpu "$REDIS_PID"); children_cpu; c0=$CHILDREN_CPU
        redis_p1=$(redis_bench "a-redis-$round" 1 "$n1")
        children_cpu
        a_cpu_r=$(per_request "$s0" "$(proc_cpu "$REDIS_PID")" "$n1"); a_cpu_rb=$(per_request "$c0" "$CHILDREN_CPU" "$n1")
        a_steal_r=$(( $(steal) - steal0 ))
    }
    if (( first_hc )); then run_a_hc; run_a_r; else run_a_r; run_a_hc; fi
    a_hc=$(j '.feed.eventsPerSecondAccepted' "a-hc-$round")
    A_HC+=("$a_hc"); A_R+=("$redis_p1"); A_RATIO+=("$(ratio "$a_hc" "$redis_p1")")
    say "  (a) 1 event/request, C=$CONNS: headcount $(fmt "$a_hc") req/s (ack p99 $(j '.feed.ackLatencyMs.p99' "a-hc-$round"), max $(j '.feed.ackLatencyMs.max' "a-hc-$round") ms) | redis HINCRBY -P 1 $(fmt "$redis_p1") req/s (p99 $(redis_p99 "a-redis-$round") ms) | ratio $(ratio "$a_hc" "$redis_p1") (target ≥ 1.5)"
    say "      headcount's durable WAL writes (headcount_wal_sync_seconds: write + fsync, or one write-through write) took $a_fsync_ms ms on average in its phase; the host took $(awk -v j="$a_steal_hc" 'BEGIN { printf "%.2f", j / 100 }') / $(awk -v j="$a_steal_r" 'BEGIN { printf "%.2f", j / 100 }') s of CPU (steal) during Headcount's / Redis's phase"
    say "      CPU per request, µs: headcount $(us_pair "$a_cpu_hc") (and its snapshot thread $a_snap s in the phase), headcount-loadgen $(us_pair "$a_cpu_lg") | redis-server $(us_pair "$a_cpu_r"), redis-benchmark $(us_pair "$a_cpu_rb")"

    # (b) batched
    n64=$(awk -v r="$redis_p64" -v s="$PHASE" 'BEGIN { n = int(r * s); if (n < 100000) n = 100000; print n }')
    run_b_hc() { loadgen "b-hc-$round" --flat-out --loop --batch "$BATCH" --connections "$BATCH_CONNS" --pipeline "$BATCH_PIPELINE" --events 8 --tickets 20000 --duration "$PHASE" --probe-rate 0; }
    run_b_r() { redis_p64=$(redis_bench "b-redis-$round" 64 "$n64"); }
    if (( first_hc )); then run_b_hc; run_b_r; else run_b_r; run_b_hc; fi
    b_hc=$(j '.feed.eventsPerSecondAccepted' "b-hc-$round")
    B_HC+=("$b_hc"); B_R+=("$redis_p64"); B_RATIO+=("$(ratio "$b_hc" "$redis_p64")")
    say "  (b) batched: headcount $(fmt "$b_hc") events/s ($BATCH/request, ack p99 $(j '.feed.ackLatencyMs.p99' "b-hc-$round"), max $(j '.feed.ackLatencyMs.max' "b-hc-$round") ms) | redis HINCRBY -P 64 $(fmt "$redis_p64") ops/s (p99 $(redis_p99 "b-redis-$round") ms) | ratio $(ratio "$b_hc" "$redis_p64") (target ≥ 1.0)"

    # (a) and (b) at W clients: Redis's group commit grows with its clients.
    wide_json=null
    if (( WIDE_CONNS > 0 )); then
        nw1=$(awk -v r="$redis_w1" -v s="$PHASE" 'BEGIN { n = int(r * s); if (n < 20000) n = 20000; print n }')
        nw64=$(awk -v r="$redis_w64" -v s="$PHASE" 'BEGIN { n = int(r * s); if (n < 100000) n = 100000; print n }')
        run_aw_hc() {
            local s0 c0 snap0; s0=$(proc_cpu "$HC_PID"); children_cpu; c0=$CHILDREN_CPU; snap0=$(snapshot_cpu "$HC_PID")
            loadgen "aw-hc-$round" --flat-out --loop --batch 1 --connections "$WIDE_CONNS" --threads 1 --events 8 --tickets 5000 --duration "$PHASE" --probe-rate 0
            children_cpu
            aw_cpu_hc=$(per_request "$s0" "$(proc_cpu "$HC_PID")" "$(j '.feed.requests' "aw-hc-$round")")
            aw_snap=$(awk -v a="$snap0" -v b="$(snapshot_cpu "$HC_PID")" 'BEGIN { printf "%.2f", b - a }')
            aw_cpu_lg=$(per_request "$c0" "$CHILDREN_CPU" "$(j '.feed.requests' "aw-hc-$round")")
        }
        run_aw_r() {
            local s0 c0; s0=$(proc_cpu "$REDIS_PID"); children_cpu; c0=$CHILDREN_CPU
            redis_w1=$(redis_bench "aw-redis-$round" 1 "$nw1" "$WIDE_CONNS")
            children_cpu
            aw_cpu_r=$(per_request "$s0" "$(proc_cpu "$REDIS_PID")" "$nw1"); aw_cpu_rb=$(per_request "$c0" "$CHILDREN_CPU" "$nw1")
        }
        if (( first_hc )); then run_aw_hc; run_aw_r; else run_aw_r; run_aw_hc; fi
        redis_w64=$(redis_bench "bw-redis-$round" 64 "$nw64" "$WIDE_CONNS")
        aw_hc=$(j '.feed.eventsPerSecondAccepted' "aw-hc-$round")
        AW_HC+=("$aw_hc"); AW_R+=("$redis_w1"); AW_RATIO+=("$(ratio "$aw_hc" "$redis_w1")")
        BW_R+=("$redis_w64"); BW_RATIO+=("$(ratio "$b_hc" "$redis_w64")")
        say "  (a) at W=$WIDE_CONNS: headcount $(fmt "$aw_hc") req/s (ack p99 $(j '.feed.ackLatencyMs.p99' "aw-hc-$round") ms) | redis -P 1 -c $WIDE_CONNS $(fmt "$redis_w1") req/s (p99 $(redis_p99 "aw-redis-$round") ms) | ratio $(ratio "$aw_hc" "$redis_w1")"
        say "      CPU per request, µs: headcount $(us_pair "$aw_cpu_hc") (and its snapshot thread $aw_snap s in the phase), headcount-loadgen $(us_pair "$aw_cpu_lg") | redis-server $(us_pair "$aw_cpu_r"), redis-benchmark $(us_pair "$aw_cpu_rb")"
        say "  (b) at W=$WIDE_CONNS: headcount's batched $(fmt "$b_hc") events/s | redis -P 64 -c $WIDE_CONNS $(fmt "$redis_w64") ops/s (p99 $(redis_p99 "bw-redis-$round") ms) | ratio $(ratio "$b_hc" "$redis_w64")"
        wide_json=$(jq -n --argjson c "$WIDE_CONNS" --argjson ahc "$aw_hc" --argjson ar "$redis_w1" --argjson bhc "$b_hc" --argjson br "$redis_w64" \
            --argjson chc "$(us_json "$aw_cpu_hc")" --argjson clg "$(us_json "$aw_cpu_lg")" --argjson cr "$(us_json "$aw_cpu_r")" --argjson crb "$(us_json "$aw_cpu_rb")" --argjson snap "$aw_snap" \
            '{connections: $c, oneEventPerRequest: {headcountRequestsPerSecond: $ahc, redisRequestsPerSecond: $ar, ratio: (if $ar > 0 then $ahc / $ar else null end),
                                                    cpuPerRequest: {headcount: $chc, loadgen: $clg, redisServer: $cr, redisBenchmark: $crb},
                                                    headcountSnapshotThreadSeconds: $snap},
              batched: {headcountEventsPerSecond: $bhc, redisOpsPerSecond: $br, ratio: (if $br > 0 then $bhc / $br else null end)}}')
    fi

    # (c) statistics queries for 8 events; the host's steal (CPU time it took from this VM) in
    # each phase, in ms: a query tail in a phase with steal is the host's as much as ours
    steal_mark=$(steal)
    loadgen "c-idle-$round" --no-feed --query-rate "$QUERY_RATE" --duration "$IDLE" --probe-rate 0
    c_steal=("$(( ($(steal) - steal_mark) * 10 ))"); steal_mark=$(steal)
    loadgen "c-sat-$round" --flat-out --loop --batch "$BATCH" --connections "$BATCH_CONNS" --pipeline "$BATCH_PIPELINE" --events 8 --tickets 20000 \
        --duration "$PHASE" --query-rate "$QUERY_RATE" --probe-rate 10
    c_steal+=("$(( ($(steal) - steal_mark) * 10 ))"); steal_mark=$(steal)
    loadgen "c-idle-past-$round" --no-feed --query-rate "$QUERY_RATE" --query-past-days 360 --duration "$IDLE" --probe-rate 0
    c_steal+=("$(( ($(steal) - steal_mark) * 10 ))"); steal_mark=$(steal)
    loadgen "c-sat-past-$round" --flat-out --loop --batch "$BATCH" --connections "$BATCH_CONNS" --pipeline "$BATCH_PIPELINE" --events 8 --tickets 20000 \
        --duration "$PHASE" --query-rate "$QUERY_RATE" --query-past-days 360 --probe-rate 0
    c_steal+=("$(( ($(steal) - steal_mark) * 10 ))")
    qi=$(j '.queries.latencyMs.p99' "c-idle-$round"); qs=$(j '.queries.latencyMs.p99' "c-sat-$round")
    qip=$(j '.queries.latencyMs.p99' "c-idle-past-$round"); qsp=$(j '.queries.latencyMs.p99' "c-sat-past-$round")
    fr=$(j '.freshness.freshnessMs.p99' "c-sat-$round"); feedc=$(j '.feed.eventsPerSecondAccepted' "c-sat-$round")
    # The machine's own floor for a loopback round trip, for context: Redis answering HGET on
    # one hash to one client, closed loop (redis-benchmark's p99, ms).
    redis-benchmark -h 127.0.0.1 -p "$RP" -c 1 -n 5000 -P 1 --csv HGET counters:E1 validTickets >"$TMP/c-redis-$round.csv" 2>/dev/null || true
    rfloor=$(redis_p99 "c-redis-$round"); [[ -n "$rfloor" ]] || rfloor=0
    R_FLOOR+=("$rfloor")
    Q_IDLE+=("$qi"); Q_SAT+=("$qs"); Q_IDLE_PAST+=("$qip"); Q_SAT_PAST+=("$qsp"); FRESH+=("$fr"); Q_SAT_FEED+=("$feedc")
    say "  (c) query p99, 8 events, dateTime now:      idle $qi ms (p50 $(j '.queries.latencyMs.p50' "c-idle-$round"), max $(j '.queries.latencyMs.max' "c-idle-$round")) | saturated $qs ms (p50 $(j '.queries.latencyMs.p50' "c-sat-$round"), max $(j '.queries.latencyMs.max' "c-sat-$round"); feed $(fmt "$feedc") ev/s) (targets ≤ 1 / ≤ 2 ms)"
    say "      query p99, 8 events, dateTime 360 d ago: idle $qip ms (p50 $(j '.queries.latencyMs.p50' "c-idle-past-$round"), max $(j '.queries.latencyMs.max' "c-idle-past-$round")) | saturated $qsp ms (p50 $(j '.queries.latencyMs.p50' "c-sat-past-$round"), max $(j '.queries.latencyMs.max' "c-sat-past-$round"); E1… totalTickets then: $(j '.queries.lastTotalTickets | map(tostring) | join(",")' "c-idle-past-$round"))"
    say "      the same four from the actual send (without the query thread's own late wake-ups): p99 $(j '.queries.serviceMs.p99' "c-idle-$round") / $(j '.queries.serviceMs.p99' "c-sat-$round") / $(j '.queries.serviceMs.p99' "c-idle-past-$round") / $(j '.queries.serviceMs.p99' "c-sat-past-$round") ms; send lag p99 $(j '.queries.sendLagMs.p99' "c-idle-$round") / $(j '.queries.sendLagMs.p99' "c-sat-$round") ms; query threads scheduled $(j '.queries.scheduling' "c-sat-$round")"
    say "      the host took ${c_steal[0]} / ${c_steal[1]} / ${c_steal[2]} / ${c_steal[3]} ms of CPU (steal) during the four phases"
    say "      for context, a loopback round trip back to back: redis HGET, one client, p99 $rfloor ms"
    say "      freshness (ack → first query reflecting it) p99 $fr ms, $(j '.freshness.reflectedByFirstQuery' "c-sat-$round")/$(j '.freshness.acknowledged' "c-sat-$round") probes seen by the first query after their ack"

    ROUND_JSON+=("$(jq -n --argjson round "$round" \
        --argjson a_hc "$a_hc" --argjson a_r "$redis_p1" --argjson b_hc "$b_hc" --argjson b_r "$redis_p64" \
        --argjson a_fsync "$a_fsync_ms" --argjson wide "$wide_json" --argjson a_steal_hc "$a_steal_hc" --argjson a_steal_r "$a_steal_r" \
        --argjson chc "$(us_json "$a_cpu_hc")" --argjson clg "$(us_json "$a_cpu_lg")" --argjson cr "$(us_json "$a_cpu_r")" --argjson crb "$(us_json "$a_cpu_rb")" --argjson snap "$a_snap" \
        --slurpfile ahc "$TMP/a-hc-$round.json" --slurpfile bhc "$TMP/b-hc-$round.json" \
        --slurpfile ci "$TMP/c-idle-$round.json" --slurpfile cs "$TMP/c-sat-$round.json" \
        --slurpfile cip "$TMP/c-idle-past-$round.json" --slurpfile csp "$TMP/c-sat-past-$round.json" \
        --argjson cst "[${c_steal[0]}, ${c_steal[1]}, ${c_steal[2]}, ${c_steal[3]}]" \
        '{round: $round,
          oneEventPerRequest: {headcountRequestsPerSecond: $a_hc, redisRequestsPerSecond: $a_r, ratio: (if $a_r > 0 then $a_hc / $a_r else null end), headcount: $ahc[0].feed,
                               headcountWalSyncMeanMs: $a_fsync, stealSeconds: {headcountPhase: ($a_steal_hc / 100), redisPhase: ($a_steal_r / 100)},
                               cpuPerRequest: {headcount: $chc, loadgen: $clg, redisServer: $cr, redisBenchmark: $crb},
                               headcountSnapshotThreadSeconds: $snap},
          batched: {headcountEventsPerSecond: $b_hc, redisOpsPerSecond: $b_r, ratio: (if $b_r > 0 then $b_hc / $b_r else null end), headcount: $bhc[0].feed},
          wide: $wide,
          queries: {idleNow: $ci[0].queries, saturatedNow: $cs[0].queries, idleYearBack: $cip[0].queries, saturatedYearBack: $csp[0].queries,
                    saturatingFeed: $cs[0].feed, freshness: $cs[0].freshness,
                    stealMilliseconds: {idleNow: $cst[0], saturatedNow: $cst[1], idleYearBack: $cst[2], saturatedYearBack: $cst[3]}}}')")
done

say ""
say "median over $ROUNDS round(s) — $NPROC cores, $CPU"
two() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
m_a_hc=$(median "${A_HC[@]}"); m_a_r=$(median "${A_R[@]}"); m_a=$(two "$(median "${A_RATIO[@]}")")
m_b_hc=$(median "${B_HC[@]}"); m_b_r=$(median "${B_R[@]}"); m_b=$(two "$(median "${B_RATIO[@]}")")
m_qi=$(median "${Q_IDLE[@]}"); m_qs=$(median "${Q_SAT[@]}"); m_qip=$(median "${Q_IDLE_PAST[@]}"); m_qsp=$(median "${Q_SAT_PAST[@]}"); m_fr=$(median "${FRESH[@]}"); m_rf=$(median "${R_FLOOR[@]}")
verdict() { awk -v x="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = (dir == "ge") ? (x >= t) : (x <= t); print ok ? "met" : "NOT met" }'; }
say "  (a) one event/request (C=$CONNS):  headcount $(fmt "$m_a_hc") req/s   redis $(fmt "$m_a_r") req/s   ratio $m_a   target ≥ 1.5: $(verdict "$m_a" 1.5 ge)"
say "  (b) batched ($BATCH/request):   headcount $(fmt "$m_b_hc") ev/s    redis -P 64 $(fmt "$m_b_r") ops/s   ratio $m_b   target ≥ 1.0: $(verdict "$m_b" 1.0 ge)"
if (( WIDE_CONNS > 0 )); then
    m_aw=$(two "$(median "${AW_RATIO[@]}")"); m_bw=$(two "$(median "${BW_RATIO[@]}")")
    say "  (a) at W=$WIDE_CONNS:              headcount $(fmt "$(median "${AW_HC[@]}")") req/s   redis $(fmt "$(median "${AW_R[@]}")") req/s   ratio $m_aw   target ≥ 1.5: $(verdict "$m_aw" 1.5 ge)"
    say "  (b) at W=$WIDE_CONNS:              headcount $(fmt "$m_b_hc") ev/s    redis -P 64 $(fmt "$(median "${BW_R[@]}")") ops/s   ratio $m_bw   target ≥ 1.0: $(verdict "$m_bw" 1.0 ge)"
else
    m_aw=null; m_bw=null
fi
say "  (c) query p99 now:       idle $m_qi ms ($(verdict "$m_qi" 1 le) ≤ 1)   saturated $m_qs ms ($(verdict "$m_qs" 2 le) ≤ 2)"
say "      query p99 year back: idle $m_qip ms ($(verdict "$m_qip" 1 le) ≤ 1)   saturated $m_qsp ms ($(verdict "$m_qsp" 2 le) ≤ 2)"
say "      freshness p99 $m_fr ms; redis HGET back to back, one client, p99 $m_rf ms"

if (( JSON )); then
    printf '%s\n' "${ROUND_JSON[@]}" | jq -s --arg cpu "$CPU" --argjson nproc "$NPROC" --arg redis "$REDIS_VERSION" \
        --argjson conns "$CONNS" --argjson batch "$BATCH" --argjson phase "$PHASE" \
        --argjson ma "$m_a" --argjson mb "$m_b" --argjson maw "$m_aw" --argjson mbw "$m_bw" --argjson wc "$WIDE_CONNS" --argjson mahc "$m_a_hc" --argjson mar "$m_a_r" --argjson mbhc "$m_b_hc" --argjson mbr "$m_b_r" \
        --argjson qi "$m_qi" --argjson qs "$m_qs" --argjson qip "$m_qip" --argjson qsp "$m_qsp" --argjson fr "$m_fr" --argjson rf "$m_rf" \
        '{machine: {nproc: $nproc, cpu: $cpu}, redis: $redis, connections: $conns, batch: $batch, phaseSeconds: $phase,
          rounds: .,
          median: {oneEventPerRequest: {headcount: $mahc, redis: $mar, ratio: $ma},
                   batched: {headcount: $mbhc, redis: $mbr, ratio: $mb},
                   wide: {connections: $wc, oneEventPerRequestRatio: $maw, batchedRatio: $mbw},
                   queryP99Ms: {idleNow: $qi, saturatedNow: $qs, idleYearBack: $qip, saturatedYearBack: $qsp},
                   freshnessP99Ms: $fr, loopbackFloorRedisHGetP99Ms: $rf}}' >&3
fi
