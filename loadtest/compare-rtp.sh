#!/usr/bin/env bash
# RTP relay CPU per packet, mgw against rtpengine (userspace, --table=-1), side by side in one
# run, both on one worker thread and driven by the same mgw-loadtest rtp streams (ng offer/answer,
# 50 pps G.711 each way). Prints one line per relay and stream count:
#   relay streams sent received loss_pct lat_p50_us lat_p99_us cpu_s us_per_packet
# usage: loadtest/compare-rtp.sh [STREAMS...]    env: SECS (5)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
counts=("$@"); ((${#counts[@]})) || counts=(200 600)
secs=${SECS:-5}
(cd "$root" && cargo build --release -q -p mgw -p mgw-loadtest)
work=$(mktemp -d)
cat >"$work/mgw.toml" <<TOML
[engine]
workers = 1
[sip]
listen = ["udp:127.0.0.1:25360"]
[admin]
listen = "127.0.0.1:28380"
token = "t"
[store]
dir = "$work/store"
[media]
ng_listen = "127.0.0.1:22241"
bind = "127.0.0.1"
rtp_ports = "30000-39999"
TOML
"$root/target/release/mgw" serve --config "$work/mgw.toml" >"$work/mgw.log" 2>&1 &
mgw=$!
RP=$(RTPENGINE_PORT_MIN=40000 RTPENGINE_PORT_MAX=49999 "$here/rtpengine/start.sh" 22242 1)
trap 'kill $mgw $RP 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:28380/health >/dev/null && break; sleep 0.1; done
ticks() { awk '{print $14+$15}' /proc/"$1"/stat; }
hz=$(getconf CLK_TCK)
run() { # name pid ng streams
  local t0 t1 out
  t0=$(ticks "$2")
  out=$("$root/target/release/mgw-loadtest" rtp --ng "$3" --streams "$4" --duration "$secs")
  t1=$(ticks "$2")
  python3 - "$1" "$4" "$out" $((t1 - t0)) "$hz" <<'PY'
import json, sys
name, streams, out, dt, hz = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cpu = dt / hz
# Every packet received by the relay is also sent: count each forwarded packet once.
us = cpu * 1e6 / max(out["received"], 1)
print(f'{name} {streams} {out["sent"]} {out["received"]} {out["loss_pct"]} {out["latency_us_p50"]} {out["latency_us_p99"]} {cpu:.2f} {us:.2f}')
PY
}
echo "relay streams sent received loss_pct lat_p50_us lat_p99_us cpu_s us_per_packet"
for n in "${counts[@]}"; do
  run mgw "$mgw" 127.0.0.1:22241 "$n"
  sleep 1
  run rtpengine "$RP" 127.0.0.1:22242 "$n"
  sleep 1
done
