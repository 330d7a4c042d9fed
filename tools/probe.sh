#!/usr/bin/env bash
# tools/probe.sh — single-server measurements behind docs/BENCHMARKS.md (no Redis): each run
# starts a fresh Headcount (release build, --fsync on, loopback, temporary data directory),
# plays one scenario with headcount-loadgen and prints what it measured.
#
#   tools/probe.sh [--bin PATH] [--rounds N] SCENARIO [-- server args...]
#
# Scenarios:
#   saturated   the race's setup, then 10 s of batched feed (1,000 events/request, 2
#               connections × pipeline 2) with 200 statistics queries/s beside it (--past-days
#               D: at dateTime D days ago; --feed-first S: S seconds of batched feed before,
#               to query a larger state, as the race's later rounds do): query p99
#               from the schedule and from the actual send, the generator's send lag, and the
#               loop's turns by length (headcount_loop_busy_seconds, over the phase);
#   after-feed  the race's setup, 12 s (+ --feed-first S) of batched feed, then ten 1 s windows of idle queries
#               (p99 per window; --past-days D: at dateTime D days ago) and the server's
#               snapshot log lines (taken / written), to see what a snapshot being written does
#               to queries;
#   one-after-feed  20 s of batched feed, then 8 s of one event per request (8 connections,
#               one thread) at once: requests/s and acknowledgement p99, with the snapshot
#               log lines (was a snapshot being written meanwhile?);
#   snapshot    25 s of batched feed into a server that takes no snapshot, SIGKILL, a restart
#               (the probe's server args apply here): its first tick snapshots the whole state
#               while 12 s of one event per request run; prints the snapshot's duration, its
#               thread's CPU, the file's size, peak memory against memory after recovery, and
#               the requests' rate and acknowledgement latency meanwhile, and the rate and
#               the WAL's mean durable write while the snapshot was written and after it;
#   growing     the race's setup, then N rounds (--rounds, default 3) of 10 s batched feed
#               each followed by 5 s of idle year-back queries: feed rate, year-back p99 and
#               the loop's turns by length so far (pass --snapshot-memory-bytes to make
#               spilling start early).
#
# PROBE_KEEP=1 keeps the temporary directory (data and the server's log, server.err).
# --bin runs another build of the server (A/B: alternate two binaries, one run each, a few
# times; the machine is shared and noisy). Needs jq and curl; the loadgen is the release
# build next to the default server binary.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.build/release/headcount
LG=.build/release/headcount-loadgen
ROUNDS=3
PAST_DAYS=""
FEED_FIRST=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bin) BIN="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --past-days) PAST_DAYS="$2"; shift 2 ;;
        --feed-first) FEED_FIRST="$2"; shift 2 ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
SCENARIO="${1:?scenario: saturated | after-feed | one-after-feed | snapshot | growing}"; shift
[[ "${1:-}" == "--" ]] && shift
SERVER_ARGS=("$@")
[[ -x "$BIN" && -x "$LG" ]] || { echo "probe: build first: swift build -c release" >&2; exit 1; }

TMP="$(mktemp -d /tmp/headcount-probe-XXXXXX)"
FEED_KEY="probe-feed-$RANDOM$RANDOM"
READ_KEY="probe-admin-$RANDOM$RANDOM"
printf '[{"key":"%s","role":"feed"},{"key":"%s","role":"admin"}]\n' "$FEED_KEY" "$READ_KEY" > "$TMP/keys.json"
HC_PID=""
cleanup() {
    [[ -n "$HC_PID" ]] && { kill -TERM "$HC_PID" 2>/dev/null; wait "$HC_PID" 2>/dev/null || true; }
    if [[ -n "${PROBE_KEEP:-}" ]]; then echo "probe: kept $TMP (server.err: its log)" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# start_server [ARGS...]: the server on $TMP/data with ARGS, then the probe's server args; waits
# until it listens (recovery included); sets HC_PID and URL.
start_server() {
    "$BIN" serve --host 127.0.0.1 --port 0 --data-dir "$TMP/data" --keys "$TMP/keys.json" --fsync on \
        "$@" ${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"} >"$TMP/server.out" 2>"$TMP/server.err" </dev/null &
    HC_PID=$!
    URL=""
    for _ in $(seq 1 1200); do
        URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$TMP/server.out" | head -1)
        [[ -n "$URL" ]] && break
        kill -0 "$HC_PID" 2>/dev/null || { cat "$TMP/server.err" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$URL" ]] || { echo "probe: the server did not start" >&2; exit 1; }
}
if [[ "$SCENARIO" == snapshot ]]; then start_server --snapshot-every-events 1000000000; else start_server; fi

lg() { "$LG" --url "$URL" --feed-key "$FEED_KEY" --read-key "$READ_KEY" --quiet --json "$@" 2>/dev/null || [[ $? == 2 ]]; }
j() { jq -r "$1" "$2"; }
turns() {  # the loop-turn histogram's buckets, as "le:count" (cumulative)
    curl -s -H "Authorization: Bearer $READ_KEY" "$URL/metrics" | grep '^headcount_loop_busy_seconds_bucket' \
        | sed 's/.*le="\([^"]*\)"} \([0-9.]*\)/\1 \2/'
}
turns_between() {  # per-bucket turn counts between two `turns` outputs
    paste "$1" "$2" | awk '{ d = $4 - $2; printf "%s:%d ", $1, d - p; p = d } END { print "" }'
}
counters() {  # feed requests, WAL syncs and their seconds so far: "requests syncs seconds"
    curl -s -H "Authorization: Bearer $READ_KEY" "$URL/metrics" | awk '
        /^headcount_feed_requests_total/ { r += $NF } /^headcount_wal_sync_seconds_count/ { n = $NF }
        /^headcount_wal_sync_seconds_sum/ { s = $NF } END { printf "%d %d %.6f\n", r, n, s }'
}
rate_between() {  # rate_between COUNTERS0 COUNTERS1 T0 T1: feed requests/s and the WAL syncs' mean between
    awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" 'BEGIN {
        split(a, x, " "); split(b, y, " "); n = y[2] - x[2]
        if (t1 <= t0 || y[1] - x[1] <= 0) { printf "no requests"; exit }
        printf "%d requests/s, WAL sync mean %.3f ms", (y[1] - x[1]) / (t1 - t0), (n > 0 ? (y[3] - x[3]) / n * 1000 : 0) }'
}
snapshots() { grep -E 'snapshot (taken|written)' "$TMP/server.err" | sed 's/^\([^ ]*\).*sequence=\([0-9]*\).*snapshot \([a-z]*\).*/  \1 snapshot at sequence \2 \3/' || true; }
setup() {
    lg --flat-out --events 8 --tickets 2000 --batch 1000 --connections 1 --pipeline 2 \
        --backfill-tickets 500 --backfill-days 360.5 --probe-rate 0 --duration 60 >"$TMP/setup.json"
}
batched() { lg --flat-out --loop --batch 1000 --connections 2 --pipeline 2 --events 8 --tickets 20000 --probe-rate 0 "$@"; }

echo "probe $SCENARIO: $BIN ${SERVER_ARGS[*]:-} at $URL; $(nproc) cores, $(date -u +%FT%TZ)"
case "$SCENARIO" in
saturated)
    setup
    if (( FEED_FIRST > 0 )); then
        batched --duration "$FEED_FIRST" >"$TMP/f.json"
        echo "fed $(j '.feed.accepted' "$TMP/f.json") events first ($(date -u +%T))"
    fi
    turns >"$TMP/t0"
    steal0=$(awk '/^cpu /{print $9}' /proc/stat)
    batched --duration 10 --query-rate 200 --probe-rate 10 ${PAST_DAYS:+--query-past-days "$PAST_DAYS"} >"$TMP/c.json"
    steal1=$(awk '/^cpu /{print $9}' /proc/stat)
    turns >"$TMP/t1"
    q=$TMP/c.json
    echo "feed $(j '.feed.eventsPerSecondAccepted | floor' "$q") events/s; query p50 $(j '.queries.latencyMs.p50' "$q") p99 $(j '.queries.latencyMs.p99' "$q") max $(j '.queries.latencyMs.max' "$q") ms (from the schedule)"
    echo "  from the actual send p99 $(j '.queries.serviceMs.p99' "$q") ms; the generator's send lag p99 $(j '.queries.sendLagMs.p99' "$q") ms; steal $((steal1 - steal0)) jiffies"
    echo "  loop turns by length (s): $(turns_between "$TMP/t0" "$TMP/t1")"
    snapshots
    ;;
after-feed)
    setup
    batched --duration $((12 + FEED_FIRST)) >"$TMP/f.json"
    echo "feed done at $(date -u +%T): $(j '.feed.accepted' "$TMP/f.json") events"
    for _ in $(seq 1 10); do
        lg --no-feed --query-rate 200 --duration 1 --probe-rate 0 ${PAST_DAYS:+--query-past-days "$PAST_DAYS"} >"$TMP/w.json"
        echo "  $(date -u +%T) query p50 $(j '.queries.latencyMs.p50' "$TMP/w.json") p99 $(j '.queries.latencyMs.p99' "$TMP/w.json") max $(j '.queries.latencyMs.max' "$TMP/w.json") ms; from the send p99 $(j '.queries.serviceMs.p99' "$TMP/w.json")"
    done
    snapshots
    ;;
one-after-feed)
    batched --duration 20 >"$TMP/f.json"
    start=$(date -u +%T)
    lg --flat-out --loop --batch 1 --connections 8 --threads 1 --events 8 --tickets 5000 --duration 8 --probe-rate 0 >"$TMP/a.json"
    echo "after $(j '.feed.accepted' "$TMP/f.json") events, from $start: $(j '.feed.requestsPerSecond | floor' "$TMP/a.json") one-event requests/s, ack p99 $(j '.feed.ackLatencyMs.p99' "$TMP/a.json") max $(j '.feed.ackLatencyMs.max' "$TMP/a.json") ms"
    snapshots
    ;;
growing)
    setup
    for round in $(seq 1 "$ROUNDS"); do
        batched --duration 10 >"$TMP/f.json"
        sleep 1
        lg --no-feed --query-rate 200 --query-past-days 360 --duration 5 --probe-rate 0 >"$TMP/q.json"
        echo "round $round: feed $(j '.feed.eventsPerSecondAccepted | floor' "$TMP/f.json") events/s; idle year-back query p50 $(j '.queries.latencyMs.p50' "$TMP/q.json") p99 $(j '.queries.latencyMs.p99' "$TMP/q.json") max $(j '.queries.latencyMs.max' "$TMP/q.json") ms"
        echo "  loop turns so far (cumulative, s): $(turns | awk '{ printf "%s:%s ", $1, $2 }')"
    done
    ;;
snapshot)
    batched --duration 25 >"$TMP/f.json"
    kill -KILL "$HC_PID"; wait "$HC_PID" 2>/dev/null || true
    start_server
    pid=$HC_PID
    rss0=$(awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$pid/status")
    turns >"$TMP/t0"
    lg --flat-out --loop --batch 1 --connections 8 --threads 1 --events 8 --tickets 5000 --duration 12 --probe-rate 0 >"$TMP/a.json" &
    lgpid=$!
    taken="" written="" cpu="n/a" c0="0 0 0" c1="0 0 0"
    while kill -0 "$lgpid" 2>/dev/null || [[ -z "$written" ]]; do
        now=$(date +%s.%N)
        [[ -z "$taken" ]] && grep -aq 'snapshot taken' "$TMP/server.err" && { taken=$now; c0=$(counters); }
        [[ -z "$written" ]] && grep -aq 'snapshot written' "$TMP/server.err" && { written=$now; c1=$(counters); }
        for task in /proc/"$pid"/task/*; do
            [[ "$(cat "$task/comm" 2>/dev/null)" == hc-snapshot ]] \
                && cpu=$(awk -v t="$(getconf CLK_TCK)" '{ printf "user %.2f s, kernel %.2f s", $14 / t, $15 / t }' "$task/stat" 2>/dev/null)
        done
        kill -0 "$pid" 2>/dev/null || { echo "probe: the server exited" >&2; exit 1; }
        sleep 0.2
    done
    wait "$lgpid" || true
    ended=$(date +%s.%N); c2=$(counters)
    turns >"$TMP/t1"
    hwm=$(awk '/^VmHWM/ { print int($2 / 1024) }' "/proc/$pid/status")
    echo "state $(j '.feed.accepted' "$TMP/f.json") events in the WAL alone, recovered: $(grep -ao 'seconds=[0-9.]*' "$TMP/server.err" | head -1)"
    echo "  the first snapshot of it all: $(awk -v a="${taken:-0}" -v b="${written:-0}" 'BEGIN { printf "%.1f", b - a }') s from taken to written (±0.2 s), snapshot thread $cpu; file $(du -m "$TMP/data/snapshots" | cut -f1) MiB"
    echo "  memory: RSS $rss0 MiB after recovery, peak $hwm MiB"
    echo "  meanwhile one event per request (8 connections): $(j '.feed.requestsPerSecond | floor' "$TMP/a.json") requests/s, ack p99 $(j '.feed.ackLatencyMs.p99' "$TMP/a.json") max $(j '.feed.ackLatencyMs.max' "$TMP/a.json") ms"
    echo "  while the snapshot was written: $(rate_between "$c0" "$c1" "${taken:-0}" "${written:-0}"); after it: $(rate_between "$c1" "$c2" "${written:-0}" "$ended")"
    echo "  loop turns by length (s), from the restart to the snapshot's end: $(turns_between "$TMP/t0" "$TMP/t1")"
    ;;
*) echo "probe: unknown scenario $SCENARIO" >&2; exit 2 ;;
esac
