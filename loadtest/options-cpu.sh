#!/usr/bin/env bash
# OPTIONS -> 200 load with SIPp; reports the server's CPU per answered request.
# usage: options-cpu.sh TARGET_HOST:PORT RATE COUNT PID [PID...]
# prints: target rate offered ok failed retrans elapsed_s server_cpu_s us_per_request
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=$1 rate=$2 count=$3; shift 3
pids=("$@")
ticks() { local t=0 p; for p in "${pids[@]}"; do t=$((t + $(awk '{print $14+$15}' /proc/"$p"/stat))); done; echo $t; }
hz=$(getconf CLK_TCK)
stat=$(mktemp -d)
before=$(ticks); start=$(date +%s.%N)
timeout 300 sipp "$target" -sf "$here/sipp/options.xml" -r "$rate" -m "$count" -l 20000 \
  -trace_stat -stf "$stat/s.csv" -fd 1 -nostdin >/dev/null 2>&1 || true
end=$(date +%s.%N); after=$(ticks)
python3 - "$stat/s.csv" "$target" "$rate" "$count" "$((after - before))" "$hz" "$start" "$end" <<'PY'
import csv, sys
path, target, rate, count, ticks, hz, start, end = sys.argv[1:]
rows = list(csv.reader(open(path), delimiter=';'))
d = dict(zip(rows[0], rows[-1]))
ok = int(d.get('SuccessfulCall(C)', 0)); failed = int(d.get('FailedCall(C)', 0))
retrans = int(d.get('Retransmissions(C)', 0)); cpu = int(ticks) / int(hz)
print(f"target={target} rate={rate} offered={count} ok={ok} failed={failed} retrans={retrans} "
      f"elapsed_s={float(end)-float(start):.2f} server_cpu_s={cpu:.2f} "
      f"us_per_request={(cpu*1e6/ok if ok else float('nan')):.1f}")
PY
rm -rf "$stat"
