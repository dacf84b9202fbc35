#!/usr/bin/env bash
# Side by side in one run: server CPU per authenticated REGISTER flow (REGISTER, 401, REGISTER
# with digest, 200) for mgw and the Kamailio registrar anchor, under the same SIPp load.
# Runs interleaved so machine noise hits both alike; medians of RUNS runs.
# usage: loadtest/compare-register.sh [RATES...]   env: RUNS (3), COUNT_S (10), USERS (5000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rates=("$@"); ((${#rates[@]})) || rates=(500 2000 4000)
runs=${RUNS:-3} secs=${COUNT_S:-10} nusers=${USERS:-5000}
mgw="$root/target/release/mgw"
[[ -x $mgw ]] || (cd "$root" && cargo build --release -p mgw)
work=$(mktemp -d)
python3 "$here/sipp/make_users.py" "$nusers" "$work/users" >/dev/null
cat >"$work/mgw.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:5072"]
domain = "127.0.0.1"
[admin]
listen = "127.0.0.1:18093"
token = "bench"
[store]
dir = "$work/store"
[accounts]
import_csv = "$work/users/users.csv"
TOML
"$mgw" serve --config "$work/mgw.toml" >"$work/mgw.log" 2>&1 &
mgw_pid=$!
KP=$("$here/kamailio/start.sh" 5070)
trap 'kill $mgw_pid $KP 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18093/health >/dev/null && break; sleep 0.1; done
"$here/reg-cpu.sh" 127.0.0.1:5072 500 1000 "$work/users" $mgw_pid >/dev/null
"$here/reg-cpu.sh" 127.0.0.1:5070 500 1000 "$work/users" $KP >/dev/null
for r in "${rates[@]}"; do
  n=$((r * secs))
  for i in $(seq "$runs"); do
    "$here/reg-cpu.sh" 127.0.0.1:5072 "$r" "$n" "$work/users" $mgw_pid | sed 's/^/mgw /'
    "$here/reg-cpu.sh" 127.0.0.1:5070 "$r" "$n" "$work/users" $KP | sed 's/^/kamailio /'
  done
done | tee "$work/raw.txt"
python3 - "$work/raw.txt" <<'PY'
import sys, statistics, re, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    who = line.split()[0]
    f = dict(re.findall(r'(\w+)=([^ ]+)', line))
    rows[(int(f['rate']), who)].append((float(f['us_per_flow']), int(f['failed']), int(f['retrans'])))
print("\n| rate (flows/s) | mgw us/flow | Kamailio us/flow | mgw / Kamailio | failed (mgw/kam) | retrans (mgw/kam) |")
print("|---|---|---|---|---|---|")
for rate in sorted({k[0] for k in rows}):
    m = statistics.median(v for v, _, _ in rows[(rate, 'mgw')])
    k = statistics.median(v for v, _, _ in rows[(rate, 'kamailio')])
    fm = sum(f for _, f, _ in rows[(rate, 'mgw')]); fk = sum(f for _, f, _ in rows[(rate, 'kamailio')])
    rm = sum(r for _, _, r in rows[(rate, 'mgw')]); rk = sum(r for _, _, r in rows[(rate, 'kamailio')])
    print(f"| {rate} | {m:.1f} | {k:.1f} | {m/k:.2f} | {fm}/{fk} | {rm}/{rk} |")
PY
