#!/usr/bin/env bash
# Highest clean REGISTER+digest rate (zero failures, < 1 % retransmissions) for mgw and for the
# Kamailio registrar anchor, both driven by mgw-loadtest in the same run; also server CPU/flow.
# usage: loadtest/compare-rate.sh [RATES...]   env: SECS (5), USERS (20000), RUNS (2)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rates=("$@"); ((${#rates[@]})) || rates=(5000 10000 15000 20000 25000 30000)
secs=${SECS:-5} nusers=${USERS:-20000} runs=${RUNS:-2}
(cd "$root" && cargo build --release -q -p mgw -p mgw-loadtest)
work=$(mktemp -d)
python3 "$here/sipp/make_users.py" "$nusers" "$work/users" >/dev/null
cat >"$work/mgw.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:5074"]
domain = "127.0.0.1"
[admin]
listen = "127.0.0.1:18094"
token = "bench"
[store]
dir = "$work/store"
[accounts]
import_csv = "$work/users/users.csv"
TOML
"$root/target/release/mgw" serve --config "$work/mgw.toml" >"$work/mgw.log" 2>&1 &
mgw_pid=$!
KP=$("$here/kamailio/start.sh" 5076)
trap 'kill $mgw_pid $KP 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18094/health >/dev/null && break; sleep 0.1; done
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/"$p"/stat))); done; echo $t; }
hz=$(getconf CLK_TCK)
echo "server rate run ok failed retrans retrans_pct server_us_per_flow p99_ms"
for r in "${rates[@]}"; do
  for i in $(seq "$runs"); do
    for who in mgw kamailio; do
      if [[ $who == mgw ]]; then port=5074; pids=($mgw_pid); else port=5076; pids=($KP); fi
      b=$(ticks "${pids[@]}")
      out=$("$root/target/release/mgw-loadtest" register --target 127.0.0.1:$port --users "$work/users/users.csv" \
            --rate "$r" --count $((r * secs)) --domain 127.0.0.1 --json-only)
      a=$(ticks "${pids[@]}"); [[ -n ${DEBUG:-} ]] && echo "$who pids=${pids[*]} b=$b a=$a" >&2
      python3 - "$who" "$r" "$i" "$((a - b))" "$hz" "$out" <<'PY'
import json, sys
who, r, i, ticks, hz, out = sys.argv[1:]
d = json.loads(out)
cpu = int(ticks) / int(hz)
us = cpu * 1e6 / d["ok"] if d["ok"] else float("nan")
print(f'{who} {r} {i} {d["ok"]} {d["failed"]} {d["retransmissions"]} {100*d["retransmissions"]/max(1,d["offered"]):.2f} {us:.1f} {d["p99_ms"]}')
PY
      sleep 1
    done
  done
done
