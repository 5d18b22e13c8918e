#!/usr/bin/env bash
# Fan-in benchmark: one cascade fed by many edges' forwarders; prints the forward lag over
# time (fedwatch_forward_lag_seconds, and the measured delay of the oldest unacknowledged
# sample) and whether it stayed under two forwarding intervals.
#
# The cascade is the real release binary. The edges are simulated by one process,
# lib/wire/examples/fanin_bench.rs: 100 real WalForwarders, each over its own store and WAL,
# each with its own HTTP client, shards and position file; only the scrapes are simulated
# (appends of --series samples every --interval). 100 edge processes with 100 runtimes and
# HTTP servers would measure the machine's scheduler more than the forwarders on 2 cores.
#
# Flags are passed to fanin_bench: --edges N (100) --series N (500) --interval S (5)
# --deadline S (5, batch_send_deadline: the forwarding interval) --duration S (120)
# --report-every S (5).
# Env: PORT (default 19491), CARGO_TARGET_DIR (default <repo>/target), NO_BUILD=1 to use the
# binaries already built, KEEP=1 to keep the scratch directory.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
port=${PORT:-19491}
target=${CARGO_TARGET_DIR:-$repo/target}
scratch=$(mktemp -d -t fanin.XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [ -z "${KEEP:-}" ]; then rm -rf "$scratch"; else echo "kept $scratch" >&2; fi
}
trap cleanup EXIT INT TERM

if [ -z "${NO_BUILD:-}" ]; then
    echo "building (release) into $target" >&2
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release -q -p cascade &&
        CARGO_TARGET_DIR=$target cargo build --release -q -p fedwatch-wire --example fanin_bench)
fi

printf 'global:\n  scrape_interval: 15s\n' >"$scratch/cascade.yml"
"$target/release/cascade" --config.file="$scratch/cascade.yml" --storage.path="$scratch/cascade-data" \
    --web.listen-address="127.0.0.1:$port" >"$scratch/cascade.log" 2>&1 &
pid=$!
for _ in $(seq 120); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/-/ready" && break
    kill -0 "$pid" 2>/dev/null || { echo "cascade exited:" >&2; cat "$scratch/cascade.log" >&2; exit 1; }
    sleep 0.5
done

echo "date $(date -u +%FT%TZ), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg)"
"$target/release/examples/fanin_bench" --url "http://127.0.0.1:$port/api/v1/write" --dir "$scratch/edges" \
    --upstream-pid "$pid" "$@"
echo "load after $(cut -d' ' -f1-3 /proc/loadavg)"
ingested=$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^fedwatch_tsdb_samples_appended_total/ { s += $NF } END { printf "%.0f", s }')
echo "cascade stored $ingested samples"
