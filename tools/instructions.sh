#!/usr/bin/env bash
# tools/instructions.sh — instructions per feed event of the real server, counted by callgrind.
#
# Wall-clock rates on a shared 2-core VM move by ±10% between identical runs; instruction
# counts do not (two runs of one binary agree within ~0.5%), so a change to a hot path is
# measured here first and in the race after. This VM exposes no hardware counters (`perf stat
# -e instructions` is "not supported"), hence valgrind.
#
# Runs `headcount serve --fsync on` under `valgrind --tool=callgrind` twice on an empty data
# directory: once idle (start, stop) and once while headcount-loadgen plays one fixed event day
# (8 events × T tickets, flat out, not looped), then prints
#     (instructions of the fed run − instructions of the idle run) / events accepted.
# Both runs end with SIGINT (the server's final snapshot is part of both). All threads count.
#
#   tools/instructions.sh                          # batched: 1,000 events/request, 2 conn × 2
#   tools/instructions.sh --batch 1 --connections 8 --pipeline 1 --tickets 500   # one event/request
#   tools/instructions.sh --bin OTHER/headcount    # another build, side by side
#   tools/instructions.sh --keep DIR               # keep the callgrind profile (callgrind_annotate DIR/fed.out)
#
# Needs valgrind (apt-get install -y valgrind) and a release build (swift build -c release).
# Takes ~30 s batched, ~20 s one event per request. The binary is copied with its DWARF
# stripped (`strip --strip-debug`): valgrind 3.19 cannot read Swift 6's debug info, and the
# symbol table it keeps is enough for function names.
set -euo pipefail

BIN=""
BATCH=1000
CONNS=2
PIPELINE=2
TICKETS=2000
KEEP=""
while (( $# > 0 )); do
    case "$1" in
        --bin) BIN="$2"; shift 2 ;;
        --batch) BATCH="$2"; shift 2 ;;
        --connections) CONNS="$2"; shift 2 ;;
        --pipeline) PIPELINE="$2"; shift 2 ;;
        --tickets) TICKETS="$2"; shift 2 ;;
        --keep) KEEP="$2"; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "instructions: unknown option $1" >&2; exit 64 ;;
    esac
done

cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="${BIN:-$ROOT/.build/release/headcount}"
LG="$ROOT/.build/release/headcount-loadgen"
for tool in valgrind jq strip; do
    command -v "$tool" >/dev/null || { echo "instructions: $tool is missing (apt-get install -y valgrind jq binutils)" >&2; exit 69; }
done
[[ -x "$BIN" && -x "$LG" ]] || { echo "instructions: build first: swift build -c release" >&2; exit 69; }

TMP=$(mktemp -d /tmp/headcount-instructions-XXXXXX)
SERVER_PID=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill -INT "$SERVER_PID" 2>/dev/null || true
    if [[ -n "$KEEP" ]]; then mkdir -p "$KEEP"; cp "$TMP"/*.out "$KEEP"/ 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

strip --strip-debug -o "$TMP/headcount" "$BIN"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
FEED_KEY="feed_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
READ_KEY="admin_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '[{"key": "%s", "role": "feed"}, {"key": "%s", "role": "admin"}]\n' "$FEED_KEY" "$READ_KEY" > "$TMP/keys.json"

# run NAME [loadgen args...]: one server under callgrind; prints its instruction total.
run() {
    local name="$1"; shift
    rm -rf "$TMP/data"; mkdir -p "$TMP/data"
    valgrind --tool=callgrind --callgrind-out-file="$TMP/$name.out" "$TMP/headcount" serve --port "$PORT" \
        --data-dir "$TMP/data" --keys "$TMP/keys.json" --fsync on >"$TMP/$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 240); do grep -q "listening" "$TMP/$name.log" && break; sleep 0.5; done
    grep -q "listening" "$TMP/$name.log" || { echo "instructions: server did not start:" >&2; tail -5 "$TMP/$name.log" >&2; exit 1; }
    if (( $# > 0 )); then
        "$LG" --url "http://127.0.0.1:$PORT" --feed-key "$FEED_KEY" --read-key "$READ_KEY" --quiet --json --flat-out \
            --probe-rate 0 --duration 600 "$@" >"$TMP/loadgen.json" 2>"$TMP/loadgen.err" || true
    fi
    kill -INT "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    awk '/^totals:/ { print $2 }' "$TMP/$name.out"
}

idle=$(run idle)
fed=$(run fed --events 8 --tickets "$TICKETS" --batch "$BATCH" --connections "$CONNS" --pipeline "$PIPELINE" --threads 1)
events=$(jq '.feed.accepted' "$TMP/loadgen.json")
(( events > 0 )) || { echo "instructions: no event accepted:" >&2; tail -5 "$TMP/loadgen.err" >&2; exit 1; }
echo "instructions: ${BIN#$ROOT/}: $events events (batch $BATCH, $CONNS conn × $PIPELINE):" \
     "$(( (fed - idle) / events )) instructions/event (fed $fed, idle $idle)"
