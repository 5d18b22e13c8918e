#!/usr/bin/env bash
# Side-by-side remote_write receive benchmark: our cascade vs stock Prometheus
# (--web.enable-remote-write-receiver) vs VictoriaMetrics (/api/v1/write), one after another
# on the same pre-recorded request stream (fleet-shaped: many series, one sample each per
# 15 s round). Prints samples/s per core (receiver CPU seconds from /proc/<pid>/stat) and
# peak RSS for each, and the ratios to Prometheus.
#
# Arguments are passed to the recorder, e.g. --targets 500 --series-per-target 200
# --rounds 20 --batch 2000 (the defaults). Each receiver starts on an empty data directory.
#
# Env: PROMETHEUS (default /usr/bin/prometheus), VICTORIA (default
# /usr/bin/victoria-metrics), PORT (default 19290), CONCURRENCY (requests in flight,
# default 4), BENCH_TIMEOUT (default 900), CARGO_TARGET_DIR (default <repo>/target).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prometheus=${PROMETHEUS:-/usr/bin/prometheus}
victoria=${VICTORIA:-/usr/bin/victoria-metrics}
port=${PORT:-19290}
concurrency=${CONCURRENCY:-4}
budget=${BENCH_TIMEOUT:-900}
target=${CARGO_TARGET_DIR:-$repo/target}
deadline=$((SECONDS + budget))
remaining() { echo $((deadline - SECONDS)); }

scratch=$(mktemp -d -t receive-side-by-side.XXXXXX)
pid=""
stop() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    fi
}
cleanup() { stop; rm -rf "$scratch"; }
trap cleanup EXIT INT TERM

echo "building (release) into $target" >&2
(cd "$repo" && CARGO_TARGET_DIR=$target timeout "$(remaining)" cargo build --release -q -p cascade && \
    CARGO_TARGET_DIR=$target timeout "$(remaining)" cargo build --release -q -p fedwatch-wire --example receive_bench)
bench="$target/release/examples/receive_bench"

"$bench" record --out "$scratch/stream.bin" "$@" >&2

wait_ready() { # name url log
    for _ in $(seq 120); do
        if curl -fs -o /dev/null "$2"; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then echo "$1 exited; its log:" >&2; cat "$3" >&2; return 1; fi
        sleep 0.5
    done
    echo "$1 not ready after 60s; its log:" >&2; tail -20 "$3" >&2; return 1
}

declare -A rate rss
run() { # name write-path ready-path command...
    local name=$1 path=$2 ready=$3; shift 3
    "$@" >"$scratch/$name.log" 2>&1 &
    pid=$!
    wait_ready "$name" "http://127.0.0.1:$port$ready" "$scratch/$name.log"
    local line
    line=$(timeout "$(remaining)" "$bench" replay --name "$name" --file "$scratch/stream.bin" \
        --url "http://127.0.0.1:$port$path" --pid "$pid" --concurrency "$concurrency")
    echo "$line"
    rate[$name]=$(sed -E 's/.*=> ([0-9]+) samples\/s per core.*/\1/' <<<"$line")
    rss[$name]=$(sed -E 's/.*peak RSS ([0-9]+) MiB.*/\1/' <<<"$line")
    stop
}

printf 'global:\n  scrape_interval: 15s\n' >"$scratch/prometheus.yml"
printf 'global:\n  scrape_interval: 15s\n' >"$scratch/cascade.yml"

echo "cascade: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown); $("$prometheus" --version 2>&1 | head -1); victoria-metrics $("$victoria" -version 2>&1 | head -1)" >&2
run cascade /api/v1/write /-/ready "$target/release/cascade" --config.file="$scratch/cascade.yml" \
    --storage.path="$scratch/cascade-data" --web.listen-address="127.0.0.1:$port"
run prometheus /api/v1/write /-/ready "$prometheus" --config.file="$scratch/prometheus.yml" \
    --storage.tsdb.path="$scratch/prom-data" --web.enable-remote-write-receiver --web.listen-address="127.0.0.1:$port"
run victoriametrics /api/v1/write /health "$victoria" -storageDataPath="$scratch/vm-data" \
    -httpListenAddr="127.0.0.1:$port" -retentionPeriod=100y

p=${rate[prometheus]}
for name in cascade prometheus victoriametrics; do
    awk -v n="$name" -v r="${rate[$name]}" -v m="${rss[$name]}" -v p="$p" \
        'BEGIN { printf "%-16s %12.0f samples/s/core  %6.2fx Prometheus  peak RSS %5d MiB\n", n, r, r / p, m }'
done
