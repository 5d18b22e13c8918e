#!/usr/bin/env bash
# Side-by-side storage benchmark: stock Prometheus, VictoriaMetrics (-promscrape.config) and
# our edge scrape the same simulated fleet (`fedwatch-sim fleet`) with the same Prometheus
# configuration file (5 s scrape interval, file_sd), one after another in one run, each on
# an empty data directory for the same fixed time. For each it prints:
#   * CPU seconds per million samples ingested: utime+stime from /proc/<pid>/stat over the
#     measuring window (after --warmup), divided by the samples its own counter says it
#     appended in that window (Prometheus prometheus_tsdb_head_samples_appended_total, VM
#     vm_rows_inserted_total{type="promscrape"}, ours fedwatch_tsdb_samples_appended_total);
#   * peak RSS per active series: VmHWM from /proc/<pid>/status at the end of the window,
#     divided by its own head-series gauge (VM: series seen in the current hour);
#   * disk bytes per sample once the data is in blocks: Prometheus writes its head as a
#     block through the snapshot API (--web.enable-admin-api), ours is stopped and its head
#     written as one block by the flush_head example, VM is flushed with /internal/force_flush
#     and its whole data directory (index included) divided by the rows it stored; also split
#     into sample data per sample and index per series (VM: data/ and indexdb/);
#   * the ratios to Prometheus.
#
# Flags: --duration SECONDS (measuring window, default 240), --warmup SECONDS (default 30),
# --cells N --tenants N --nodes N --scale N (fleet shape; the defaults give ~70k series),
# --only "prometheus victoria edge" (which to run, in that order).
# Env: PROMETHEUS (default /usr/bin/prometheus), VICTORIA (default /usr/bin/victoria-metrics),
# PORT (first of 4 ports, default 19380), CARGO_TARGET_DIR (default <repo>/target),
# NO_BUILD=1 to use the binaries already built, EDGE=<path> to run another edge binary (for
# before/after comparisons), KEEP=1 to keep the scratch directory.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prometheus=${PROMETHEUS:-/usr/bin/prometheus}
victoria=${VICTORIA:-/usr/bin/victoria-metrics}
port=${PORT:-19380}
target=${CARGO_TARGET_DIR:-$repo/target}
duration=240 warmup=30 cells=4 tenants=20 nodes=4 scale=9
only="prometheus victoria edge"
while [ $# -gt 0 ]; do
    case $1 in
        --duration) duration=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --cells) cells=$2; shift 2 ;;
        --tenants) tenants=$2; shift 2 ;;
        --nodes) nodes=$2; shift 2 ;;
        --scale) scale=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        *) echo "unknown argument $1; accepted: --duration --warmup --cells --tenants --nodes --scale --only" >&2; exit 2 ;;
    esac
done
fleet_port=$port prom_port=$((port + 1)) vm_port=$((port + 2)) edge_port=$((port + 3))
hz=$(getconf CLK_TCK)

scratch=$(mktemp -d -t side-by-side.XXXXXX)
pid="" fleet_pid=""
stop() { # stops the system under test
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    fi
}
cleanup() {
    stop
    if [ -n "$fleet_pid" ]; then kill "$fleet_pid" 2>/dev/null || true; wait "$fleet_pid" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $scratch" >&2; else rm -rf "$scratch"; fi
}
trap cleanup EXIT INT TERM

if [ "${NO_BUILD:-0}" != 1 ]; then
    echo "building (release) into $target" >&2
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release -q -p edge -p fedwatch-sim &&
        CARGO_TARGET_DIR=$target cargo build --release -q -p fedwatch-tsdb --example flush_head)
fi
bin=$target/release

"$bin/fedwatch-sim" fleet --listen "127.0.0.1:$fleet_port" --cells "$cells" --tenants-per-cell "$tenants" \
    --nodes "$nodes" --scale "$scale" --sd-dir "$scratch/sd" >"$scratch/fleet.log" 2>&1 &
fleet_pid=$!

# One configuration file for all three, with absolute file_sd paths (VM resolves relative
# paths differently from Prometheus).
{
    printf 'global:\n  scrape_interval: 5s\n  scrape_timeout: 4s\n  external_labels:\n    region: bench-1\n\nscrape_configs:\n'
    for job in node-exporter kube-state-metrics apiserver etcd scheduler controller-manager; do
        printf '  - job_name: %s\n    file_sd_configs:\n      - files:\n' "$job"
        for c in $(seq "$cells"); do printf '          - %s/sd/cell-%02d/%s.json\n' "$scratch" "$c" "$job"; done
    done
} >"$scratch/prometheus.yml"

for _ in $(seq 40); do curl -fsS -o /dev/null "http://127.0.0.1:$fleet_port/cells/cell-01/kube-state-metrics/metrics" && break; sleep 0.25; done
# Series per scrape round, as the fleet serves them (the scrapers add 5 series per target).
fleet_series=0 targets=0
for f in "$scratch"/sd/*/*.json; do
    for path in $(grep -o '"/[^"]*/metrics"' "$f" | tr -d '"'); do
        n=$(curl -fsS "http://127.0.0.1:$fleet_port$path" | grep -vc '^#')
        fleet_series=$((fleet_series + n)) targets=$((targets + 1))
    done
done
echo "fleet: $cells cells x $tenants tenants, $nodes nodes, scale $scale: $targets targets, $fleet_series series (+$((5 * targets)) per-target series the scraper adds)" >&2

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
# Sum of a metric's samples (every label set) from a /metrics page; a name with a brace or
# space right after it, so prefixes of other names do not count.
metric() { # url name [label filter regex]
    curl -fsS "$1" | awk -v n="$2" -v f="${3:-}" '
        $0 !~ /^#/ && (index($0, n "{") == 1 || index($0, n " ") == 1) && (f == "" || $0 ~ f) { s += $NF }
        END { printf "%.0f\n", s }'
}
wait_ready() { # name url log
    for _ in $(seq 240); do
        if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then echo "$1 exited; its log:" >&2; cat "$3" >&2; return 1; fi
        sleep 0.5
    done
    echo "$1 not ready after 120s; its log:" >&2; tail -20 "$3" >&2; return 1
}

declare -A cpu rss disk samples series load chunkb indexb
# Bytes per sample of the sample data alone, and index bytes per series: a short run has
# few samples per series, so the index weighs far more than in a 2 h block.
split() { # name data-bytes index-bytes samples
    chunkb[$1]=$(awk -v b="$2" -v n="$4" 'BEGIN { printf "%.3f", (n > 0 ? b / n : 0) }')
    indexb[$1]=$(awk -v b="$3" -v n="${series[$1]}" 'BEGIN { printf "%.0f", (n > 0 ? b / n : 0) }')
}
measure() { # name metrics-url samples-metric samples-filter series-metric series-filter
    local name=$1 url=$2
    sleep "$warmup"
    local c0 s0 c1 s1
    c0=$(cpu_ticks "$pid") s0=$(metric "$url" "$3" "$4")
    sleep "$duration"
    c1=$(cpu_ticks "$pid") s1=$(metric "$url" "$3" "$4")
    series[$name]=$(metric "$url" "$5" "$6")
    samples[$name]=$((s1 - s0))
    local hwm; hwm=$(hwm_kib "$pid")
    load[$name]=$(cut -d' ' -f1-3 /proc/loadavg)
    cpu[$name]=$(awk -v c=$((c1 - c0)) -v hz="$hz" -v s=$((s1 - s0)) 'BEGIN { printf "%.3f", (s > 0 ? c / hz / (s / 1e6) : 0) }')
    rss[$name]=$(awk -v h="$hwm" -v n="${series[$name]}" 'BEGIN { printf "%.0f", (n > 0 ? h * 1024 / n : 0) }')
    echo "$name: $((s1 - s0)) samples in ${duration}s, $(((c1 - c0) * 100 / hz / 100)) CPU-s, ${series[$name]} series, VmHWM ${hwm} KiB, load ${load[$name]}" >&2
}

for system in $only; do
    echo "--- $system ($(cut -d' ' -f1-3 /proc/loadavg) load)" >&2
    case $system in
        prometheus)
            "$prometheus" --config.file="$scratch/prometheus.yml" --storage.tsdb.path="$scratch/prom-data" \
                --web.listen-address="127.0.0.1:$prom_port" --web.enable-admin-api >"$scratch/prometheus.log" 2>&1 &
            pid=$!
            wait_ready prometheus "http://127.0.0.1:$prom_port/-/ready" "$scratch/prometheus.log"
            measure prometheus "http://127.0.0.1:$prom_port/metrics" prometheus_tsdb_head_samples_appended_total "" \
                prometheus_tsdb_head_series ""
            snap=$(curl -fsS -XPOST "http://127.0.0.1:$prom_port/api/v1/admin/tsdb/snapshot" | grep -o '"name":"[^"]*"' | cut -d'"' -f4)
            sdir="$scratch/prom-data/snapshots/$snap"
            n=$(cat "$sdir"/*/meta.json | grep -o '"numSamples": *[0-9]*' | cut -d: -f2 | awk '{ s += $1 } END { print s + 0 }')
            bytes=$(du -sb "$sdir" | cut -f1)
            disk[prometheus]=$(awk -v b="$bytes" -v n="$n" 'BEGIN { printf "%.3f", (n > 0 ? b / n : 0) }')
            echo "prometheus: snapshot block $bytes bytes for $n samples" >&2
            split prometheus "$(cat "$sdir"/*/chunks/* | wc -c)" "$(cat "$sdir"/*/index | wc -c)" "$n"
            ;;
        victoria)
            "$victoria" -promscrape.config="$scratch/prometheus.yml" -storageDataPath="$scratch/vm-data" \
                -httpListenAddr="127.0.0.1:$vm_port" -retentionPeriod=1 >"$scratch/victoria.log" 2>&1 &
            pid=$!
            wait_ready victoria "http://127.0.0.1:$vm_port/health" "$scratch/victoria.log"
            measure victoria "http://127.0.0.1:$vm_port/metrics" vm_rows_inserted_total 'type="promscrape"' \
                vm_cache_entries 'type="storage/hour_metric_ids"'
            curl -fsS -o /dev/null "http://127.0.0.1:$vm_port/internal/force_flush" || true
            sleep 5
            n=$(metric "http://127.0.0.1:$vm_port/metrics" vm_rows 'type="storage/(small|big)"')
            bytes=$(du -sb "$scratch/vm-data" | cut -f1)
            disk[victoria]=$(awk -v b="$bytes" -v n="$n" 'BEGIN { printf "%.3f", (n > 0 ? b / n : 0) }')
            echo "victoria: data directory $bytes bytes for $n rows" >&2
            split victoria "$(du -sb "$scratch/vm-data/data" | cut -f1)" "$(du -sb "$scratch/vm-data/indexdb" | cut -f1)" "$n"
            ;;
        edge)
            "${EDGE:-$bin/edge}" --config.file="$scratch/prometheus.yml" --storage.path="$scratch/edge-data" \
                --web.listen-address="127.0.0.1:$edge_port" >"$scratch/edge.log" 2>&1 &
            pid=$!
            wait_ready edge "http://127.0.0.1:$edge_port/-/ready" "$scratch/edge.log"
            measure edge "http://127.0.0.1:$edge_port/metrics" fedwatch_tsdb_samples_appended_total "" \
                fedwatch_tsdb_head_series ""
            stop
            out=$("$bin/examples/flush_head" "$scratch/edge-data")
            bytes=$(echo "$out" | awk -F= '$1 == "bytes" { print $2 }')
            n=$(echo "$out" | awk -F= '$1 == "samples" { print $2 }')
            disk[edge]=$(awk -v b="$bytes" -v n="$n" 'BEGIN { printf "%.3f", (n > 0 ? b / n : 0) }')
            echo "edge: head written as one block of $bytes bytes for $n samples" >&2
            split edge "$(echo "$out" | awk -F= '$1 == "chunks_bytes" { print $2 }')" "$(echo "$out" | awk -F= '$1 == "index_bytes" { print $2 }')" "$n"
            ;;
        *) echo "unknown system $system; accepted: prometheus victoria edge" >&2; exit 2 ;;
    esac
    stop
done

ratio() { # value base
    awk -v v="$1" -v b="$2" 'BEGIN { if (b > 0 && v != "") printf "%.2f", v / b; else printf "-" }'
}
echo
echo "$targets targets, $fleet_series fleet series, 5 s scrape interval, ${duration}s measured after ${warmup}s warm-up"
printf '| %-10s | %-22s | %-26s | %-16s | %-16s | %-14s | %-14s |\n' system "CPU-s / M samples" "peak RSS B / active series" "disk B / sample" "data B / sample" "index B / series" "load"
printf '| %-10s | %-22s | %-26s | %-16s | %-16s | %-14s | %-14s |\n' --- --- --- --- --- --- ---
base_cpu=${cpu[prometheus]:-} base_rss=${rss[prometheus]:-} base_disk=${disk[prometheus]:-}
for system in $only; do
    printf '| %-10s | %-22s | %-26s | %-16s | %-16s | %-14s | %-14s |\n' "$system" \
        "${cpu[$system]:-} ($(ratio "${cpu[$system]:-}" "$base_cpu")x)" \
        "${rss[$system]:-} ($(ratio "${rss[$system]:-}" "$base_rss")x) of ${series[$system]:-}" \
        "${disk[$system]:-} ($(ratio "${disk[$system]:-}" "$base_disk")x)" \
        "${chunkb[$system]:-}" "${indexb[$system]:-}" \
        "${load[$system]:-}"
done
