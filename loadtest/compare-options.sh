#!/usr/bin/env bash
# Side by side in one run: server CPU per OPTIONS->200 for mgw and for the Kamailio anchor
# (same SIPp load, runs interleaved so machine noise hits both alike). Medians of RUNS runs.
# usage: loadtest/compare-options.sh [RATES...]   env: RUNS (3), COUNT_S (seconds per run, 10)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rates=("$@"); ((${#rates[@]})) || rates=(1000 3000 6000)
runs=${RUNS:-3} secs=${COUNT_S:-10}
mgw="$root/target/release/mgw"
[[ -x $mgw ]] || (cd "$root" && cargo build --release -p mgw)
work=$(mktemp -d)
cat >"$work/mgw.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:5072"]
domain = "mgw.test"
[admin]
listen = "127.0.0.1:18090"
token = "bench"
[store]
dir = "$work/store"
TOML
"$mgw" serve --config "$work/mgw.toml" >"$work/mgw.log" 2>&1 &
mgw_pid=$!
KP=$("$here/kamailio/start.sh" 5070)
trap 'kill $mgw_pid $KP 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:18090/health >/dev/null && break; sleep 0.1; done
echo "mgw: $(grep -o 'worker(s), [a-z_]* backend' "$work/mgw.log" || echo '?'); kamailio pids: $KP" >&2
# Warm-up, discarded.
"$here/options-cpu.sh" 127.0.0.1:5072 1000 2000 $mgw_pid >/dev/null
"$here/options-cpu.sh" 127.0.0.1:5070 1000 2000 $KP >/dev/null
for r in "${rates[@]}"; do
  n=$((r * secs))
  for i in $(seq "$runs"); do
    "$here/options-cpu.sh" 127.0.0.1:5072 "$r" "$n" $mgw_pid | sed 's/^/mgw /'
    "$here/options-cpu.sh" 127.0.0.1:5070 "$r" "$n" $KP | sed 's/^/kamailio /'
  done
done | tee "$work/raw.txt"
python3 - "$work/raw.txt" <<'PY'
import sys, statistics, re, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    who = line.split()[0]
    f = dict(re.findall(r'(\w+)=([^ ]+)', line))
    rows[(int(f['rate']), who)].append((float(f['us_per_request']), int(f['failed'])))
print("\n| rate (req/s) | mgw us/request | Kamailio us/request | mgw / Kamailio | failed (mgw/kam) |")
print("|---|---|---|---|---|")
for rate in sorted({k[0] for k in rows}):
    m = statistics.median(v for v, _ in rows[(rate, 'mgw')])
    k = statistics.median(v for v, _ in rows[(rate, 'kamailio')])
    fm = sum(f for _, f in rows[(rate, 'mgw')]); fk = sum(f for _, f in rows[(rate, 'kamailio')])
    print(f"| {rate} | {m:.1f} | {k:.1f} | {m/k:.2f} | {fm}/{fk} |")
PY
