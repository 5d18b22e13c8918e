#!/usr/bin/env bash
# Forward overhead at the edge: CPU seconds per million samples forwarded.
#
# A real release `edge` scrapes the simulated fleet (`fedwatch-sim fleet`, 5 s interval,
# file_sd) twice, each on an empty data directory, for the same window after a warm-up:
#   1. without remote_write;
#   2. with remote_write to a real release `cascade` (1.0, or 2.0 with --protocol v2).
# Edge CPU (utime+stime from /proc/<pid>/stat) per million samples appended is measured in
# each; the overhead is the difference of CPU seconds, divided by the samples the edge
# forwarded in the window (fedwatch_forward_samples_sent_total) in millions. The runs
# alternate --rounds times (default 2) so a change of machine load hits both alike.
#
# Flags: --duration S (120) --warmup S (20) --rounds N (2) --protocol v1|v2 (v1)
# --cells N --tenants N --nodes N --scale N (fleet shape; defaults 2, 12, 3, 4).
# Env: PORT (first of 3 ports, default 19520), CARGO_TARGET_DIR (default <repo>/target),
# NO_BUILD=1 to use the binaries already built, KEEP=1 to keep the scratch directory.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
port=${PORT:-19520}
target=${CARGO_TARGET_DIR:-$repo/target}
duration=120 warmup=20 rounds=2 protocol=v1 cells=2 tenants=12 nodes=3 scale=4
while [ $# -gt 0 ]; do
    case $1 in
        --duration) duration=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --protocol) protocol=$2; shift 2 ;;
        --cells) cells=$2; shift 2 ;;
        --tenants) tenants=$2; shift 2 ;;
        --nodes) nodes=$2; shift 2 ;;
        --scale) scale=$2; shift 2 ;;
        *) echo "unknown argument $1; accepted: --duration --warmup --rounds --protocol --cells --tenants --nodes --scale" >&2; exit 2 ;;
    esac
done
case $protocol in
    v1) message=prometheus.WriteRequest ;;
    v2) message=io.prometheus.write.v2.Request ;;
    *) echo "--protocol is v1 or v2, not $protocol" >&2; exit 2 ;;
esac
fleet_port=$port edge_port=$((port + 1)) cascade_port=$((port + 2))
hz=$(getconf CLK_TCK)
scratch=$(mktemp -d -t forward-overhead.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $scratch" >&2; else rm -rf "$scratch"; fi
}
trap cleanup EXIT INT TERM

if [ "${NO_BUILD:-0}" != 1 ]; then
    echo "building (release) into $target" >&2
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release -q -p edge -p cascade -p fedwatch-sim)
fi
bin=$target/release

"$bin/fedwatch-sim" fleet --listen "127.0.0.1:$fleet_port" --cells "$cells" --tenants-per-cell "$tenants" \
    --nodes "$nodes" --scale "$scale" --sd-dir "$scratch/sd" >"$scratch/fleet.log" 2>&1 &
pids+=($!)
printf 'global:\n  scrape_interval: 15s\n' >"$scratch/cascade.yml"
"$bin/cascade" --config.file="$scratch/cascade.yml" --storage.path="$scratch/cascade-data" \
    --web.listen-address="127.0.0.1:$cascade_port" >"$scratch/cascade.log" 2>&1 &
pids+=($!)

scrape_config() {
    printf 'global:\n  scrape_interval: 5s\n  scrape_timeout: 4s\n  external_labels:\n    region: bench-1\n\nscrape_configs:\n'
    for job in node-exporter kube-state-metrics apiserver etcd scheduler controller-manager; do
        printf '  - job_name: %s\n    file_sd_configs:\n      - files:\n' "$job"
        for c in $(seq "$cells"); do printf '          - %s/sd/cell-%02d/%s.json\n' "$scratch" "$c" "$job"; done
    done
}
scrape_config >"$scratch/alone.yml"
{
    scrape_config
    printf 'remote_write:\n  - url: http://127.0.0.1:%s/api/v1/write\n    protobuf_message: %s\n' "$cascade_port" "$message"
} >"$scratch/forwarding.yml"

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
metric() { # url name
    curl -fsS "$1" | awk -v n="$2" '$0 !~ /^#/ && (index($0, n "{") == 1 || index($0, n " ") == 1) { s += $NF } END { printf "%.0f\n", s }'
}
for _ in $(seq 60); do curl -fsS -o /dev/null "http://127.0.0.1:$cascade_port/-/ready" 2>/dev/null && break; sleep 0.5; done

run_edge() { # name config -> "cpu_s appended sent"
    local name=$1 config=$2 url="http://127.0.0.1:$edge_port/metrics"
    rm -rf "$scratch/edge-data"
    "$bin/edge" --config.file="$config" --storage.path="$scratch/edge-data" \
        --web.listen-address="127.0.0.1:$edge_port" >"$scratch/edge-$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 120); do curl -fsS -o /dev/null "http://127.0.0.1:$edge_port/-/ready" 2>/dev/null && break; sleep 0.5; done
    sleep "$warmup"
    local c0 a0 s0 c1 a1 s1
    c0=$(cpu_ticks "$pid") a0=$(metric "$url" fedwatch_tsdb_samples_appended_total) s0=$(metric "$url" fedwatch_forward_samples_sent_total)
    sleep "$duration"
    c1=$(cpu_ticks "$pid") a1=$(metric "$url" fedwatch_tsdb_samples_appended_total) s1=$(metric "$url" fedwatch_forward_samples_sent_total)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk -v c=$((c1 - c0)) -v hz="$hz" -v a=$((a1 - a0)) -v s=$((s1 - s0)) 'BEGIN { printf "%.2f %d %d\n", c / hz, a, s }'
}

echo "date $(date -u +%FT%TZ), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, protocol $protocol, ${duration}s windows after ${warmup}s warm-up"
total_alone=0 total_fwd=0 total_sent=0 total_app_alone=0 total_app_fwd=0
for r in $(seq "$rounds"); do
    read -r c_alone a_alone _ < <(run_edge alone "$scratch/alone.yml")
    echo "round $r alone:      $c_alone CPU-s, $a_alone samples appended, load $(cut -d' ' -f1-3 /proc/loadavg)"
    read -r c_fwd a_fwd s_fwd < <(run_edge forwarding "$scratch/forwarding.yml")
    echo "round $r forwarding: $c_fwd CPU-s, $a_fwd samples appended, $s_fwd forwarded, load $(cut -d' ' -f1-3 /proc/loadavg)"
    awk -v ca="$c_alone" -v aa="$a_alone" -v cf="$c_fwd" -v af="$a_fwd" -v s="$s_fwd" 'BEGIN {
        pa = ca / (aa / 1e6); pf = cf / (af / 1e6)
        printf "round: alone %.3f CPU-s/M appended, forwarding %.3f CPU-s/M appended; overhead %.3f CPU-s per M forwarded (scaled to equal appends)\n", pa, pf, (pf - pa) * af / 1e6 / (s / 1e6) }'
    total_alone=$(awk -v a="$total_alone" -v b="$c_alone" 'BEGIN { print a + b }')
    total_fwd=$(awk -v a="$total_fwd" -v b="$c_fwd" 'BEGIN { print a + b }')
    total_app_alone=$((total_app_alone + a_alone)) total_app_fwd=$((total_app_fwd + a_fwd)) total_sent=$((total_sent + s_fwd))
done
awk -v ca="$total_alone" -v aa="$total_app_alone" -v cf="$total_fwd" -v af="$total_app_fwd" -v s="$total_sent" 'BEGIN {
    pa = ca / (aa / 1e6); pf = cf / (af / 1e6)
    printf "all rounds: edge alone %.3f CPU-s per M samples appended, with forwarding %.3f; forward overhead %.3f CPU-s per M samples forwarded (%.0f%% of the edge'"'"'s CPU)\n", pa, pf, (pf - pa) * af / s, 100 * (pf - pa) / pa }'
