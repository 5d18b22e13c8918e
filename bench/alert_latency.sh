#!/usr/bin/env bash
# Alert latency end to end: the time from a value crossing a threshold at an edge's target to
# the webhook request at the receiver, through edge → cascade → central, with 1 s scrape,
# forward (batch_send_deadline) and evaluation intervals and group_wait: 0s.
#
# The simulated fleet's fault endpoint turns one tenant's etcd leader off at a known instant;
# a rule `etcd_server_has_leader == 0` (no `for`) fires; a Python receiver stamps each
# webhook request on arrival. Each run uses another tenant, so each is its own alert group.
#
#   RUNS=10 bench/alert_latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-8}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q --bins
bin=$target/release

work=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fleet=$(port); edge=$(port); cascade=$(port); central=$(port); hook=$(port)

cat >"$work/receiver.py" <<'PY'
import http.server, json, sys, time
log = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        t = time.time()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        for a in body["alerts"]:
            log.write(f'{t:.6f} {a["status"]} {a["labels"].get("cluster", "")}\n')
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
/usr/bin/python3 "$work/receiver.py" "$hook" "$work/received.log" & pids+=($!)

"$bin/fedwatch-sim" fleet --listen "127.0.0.1:$fleet" --cells 1 --tenants-per-cell $((RUNS + 1)) \
  --sd-dir "$work/sd" >"$work/fleet.log" 2>&1 & pids+=($!)
sleep 1

cat >"$work/rules.yml" <<'YML'
groups:
  - name: latency
    interval: 1s
    rules:
      - alert: LeaderLost
        expr: etcd_server_has_leader == 0
YML
cat >"$work/alertmanager.yml" <<YML
route:
  receiver: hook
  group_by: [alertname, cluster]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:$hook/
        send_resolved: false
YML
cat >"$work/central.yml" <<YML
global:
  evaluation_interval: 1s
rule_files: [$work/rules.yml]
YML
queue="    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}"
cat >"$work/cascade.yml" <<YML
remote_write:
  - url: http://127.0.0.1:$central/api/v1/write
$queue
YML
cat >"$work/edge.yml" <<YML
global: {scrape_interval: 1s, scrape_timeout: 1s, external_labels: {cell: cell-01}}
scrape_configs:
  - job_name: etcd
    file_sd_configs: [{files: ['$work/sd/cell-01/etcd.json']}]
remote_write:
  - url: http://127.0.0.1:$cascade/api/v1/write
$queue
YML

"$bin/central" --config.file="$work/central.yml" --storage.path="$work/central" \
  --web.listen-address="127.0.0.1:$central" --notify.config.file="$work/alertmanager.yml" >"$work/central.log" 2>&1 & pids+=($!)
"$bin/cascade" --config.file="$work/cascade.yml" --storage.path="$work/cascade" \
  --web.listen-address="127.0.0.1:$cascade" >"$work/cascade.log" 2>&1 & pids+=($!)
"$bin/edge" --config.file="$work/edge.yml" --storage.path="$work/edge" \
  --web.listen-address="127.0.0.1:$edge" >"$work/edge.log" 2>&1 & pids+=($!)

# Data must be flowing to the central before the first run.
for _ in $(seq 1 100); do
  n=$(curl -fs "http://127.0.0.1:$central/api/v1/query?query=count(etcd_server_has_leader)" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null || echo 0)
  [ "$n" -ge "$RUNS" ] 2>/dev/null && break
  sleep 0.3
done
sleep 3

latencies=()
for run in $(seq 1 "$RUNS"); do
  tenant=$(printf 'tenant-%03d' "$run")
  t0=$(/usr/bin/python3 -c 'import time; print(f"{time.time():.6f}")')
  curl -fs -XPOST "http://127.0.0.1:$fleet/faults/etcd-leader/$tenant?has_leader=0" >/dev/null
  got=""
  for _ in $(seq 1 300); do
    got=$(awk -v c="$tenant" '$2 == "firing" && $3 == c {print $1; exit}' "$work/received.log" 2>/dev/null || true)
    [ -n "$got" ] && break
    sleep 0.05
  done
  if [ -z "$got" ]; then echo "run $run ($tenant): no notification within 15 s" >&2; exit 1; fi
  lat=$(/usr/bin/python3 -c "print(f'{$got - $t0:.3f}')")
  latencies+=("$lat")
  echo "run $run ($tenant): ${lat} s"
  curl -fs -XPOST "http://127.0.0.1:$fleet/faults/etcd-leader/$tenant?has_leader=1" >/dev/null
  sleep 1
done
/usr/bin/python3 - "${latencies[@]}" <<'PY'
import statistics, sys
v = sorted(float(x) for x in sys.argv[1:])
print(f"alert latency over {len(v)} runs: median {statistics.median(v):.2f} s, min {v[0]:.2f} s, max {v[-1]:.2f} s (target <= 5 s)")
PY
