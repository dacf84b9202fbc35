#!/usr/bin/env bash
# Whole calls (INVITE -> 407 -> INVITE with digest -> 180/200 -> ACK -> 1 s -> BYE -> 200) with
# media anchoring, side by side in one run (docs/performance.md, "Calls (issue 6)"):
#   cpu  server CPU per completed call at RATES, SIPp caller and callee on both, interleaved:
#        Kamailio (stateful proxy, digest check of the INVITE, rtpengine_offer/answer/delete;
#        KAM_CHILDREN worker processes) + rtpengine (userspace, 1 thread), CPU of every Kamailio
#        process plus rtpengine; mgw (B2BUA, media anchored on its own relay, [engine]
#        workers = 1), CPU of the mgw process. mgw is also driven by mgw-loadtest at the same
#        rates, to show its cost does not depend on the generator.
#   cap  the highest clean rate against mgw for `mgw-loadtest call` and for SIPp (UAC + UAS):
#        both rise through CAP_RATES, interleaved (mgw-loadtest then SIPp at each rate), each
#        until its first run that is not clean, CAP_ROUNDS times; each generator's own CPU per
#        call is reported. Clean: under 0.1 % of calls failed, under 1 % retransmissions, and
#        at least 90 % of the asked rate achieved. Calls last CAP_CALL_MS (500) here: mgw's
#        11 384 RTP port pairs below the ephemeral range hold about 5 600 calls at once, which
#        with 1 s calls would cap the rate at the port range rather than at the CPU.
# Prints one line per run, then the tables.
#
# usage: loadtest/compare-calls.sh [RATES...]            (default 50 100 200 500 1000)
# env:   PARTS ("cpu cap"), RUNS (2) rounds of the cpu part, SECS (8) seconds of calls per run,
#        CALL_MS (1000) hold time, CAP_CALL_MS (500), CAP_SECS (8), CAP_ROUNDS (2),
#        CAP_RATES (1500 2000 2500 3000 3500 4000 4500 5000 5500 6000), USERS (1000),
#        KAM_CHILDREN (1), NO_BUILD=1 to skip the build, RESULTS=FILE to keep every run's line
# ports: mgw 5075 (admin 18095), Kamailio 5085, rtpengine ng 22235, SIPp callees 5095 (behind
#        Kamailio) and 5096 (behind mgw), mgw-loadtest's callee 5097.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rates=("$@"); ((${#rates[@]})) || rates=(50 100 200 500 1000)
parts=${PARTS:-cpu cap}
runs=${RUNS:-2} secs=${SECS:-8} call_ms=${CALL_MS:-1000} cap_secs=${CAP_SECS:-8}
cap_call_ms=${CAP_CALL_MS:-500} cap_rounds=${CAP_ROUNDS:-2}
nusers=${USERS:-1000} children=${KAM_CHILDREN:-1}
read -r -a cap_rates <<<"${CAP_RATES:-1500 2000 2500 3000 3500 4000 4500 5000 5500 6000}"
export CALL_MS=$call_ms

[[ -n ${NO_BUILD:-} ]] || (cd "$root" && cargo build --release -q -p mgw -p mgw-loadtest)
mgw="$root/target/release/mgw" lt="$root/target/release/mgw-loadtest"
work=$(mktemp -d)
results=${RESULTS:-$work/results.txt}
: >"$results"
python3 "$here/sipp/make_users.py" "$nusers" "$work/users" >/dev/null
export USERS_DIR="$work/users" SCENARIO=auth

# The dial plan sends numbers starting with 8 to the SIPp callee, every other number to
# mgw-loadtest's. Media ports stay below the kernel's ephemeral range (32768-60999), so no
# generator socket can take one; 11 384 pairs hold about 5 600 calls at once.
cat >"$work/mgw.toml" <<TOML
[engine]
workers = 1
[sip]
listen = ["udp:127.0.0.1:5075"]
domain = "127.0.0.1"
[admin]
listen = "127.0.0.1:18095"
token = "bench"
[store]
dir = "$work/store"
[accounts]
import_csv = "$work/users/users.csv"
[licences]
total = $nusers
[media]
bind = "127.0.0.1"
rtp_ports = "10000-32767"
[[calls.rule]]
prefix = "8"
uri = "sip:service@127.0.0.1:5096"
[[calls.rule]]
prefix = ""
uri = "sip:service@127.0.0.1:5097"
TOML
pids=()
cleanup() {
  if ((${#pids[@]})); then kill "${pids[@]}" 2>/dev/null || true; fi
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT
"$mgw" serve --config "$work/mgw.toml" >"$work/mgw.log" 2>&1 &
MP=$!
pids+=("$MP")
for _ in $(seq 100); do curl -sf http://127.0.0.1:18095/health >/dev/null && break; sleep 0.1; done
RP=$(RTPENGINE_LOG="$work/rtpengine.log" "$here/rtpengine/start.sh" 22235 1)
pids+=("$RP")
# shellcheck disable=SC2086
KP=$(KAMAILIO_LOG="$work/kamailio.log" \
  KAMAILIO_OPTS="-x tlsf -X tlsf -A WITH_AUTH -A CHILDREN=$children" \
  "$here/kamailio/start-proxy.sh" 5085 22235)
read -r -a kps <<<"$KP"
pids+=("${kps[@]}")
echo "# mgw pid $MP; rtpengine pid $RP; Kamailio pids $KP (children=$children)" >&2

# CPU ticks by part: rtpengine's process, and mgw's threads grouped by role (SIP worker, media
# worker, call-record writer, the rest), so each run's line says where the time went.
cat >"$work/snap.py" <<'PY'
import glob, json, sys
def ticks(path):
    s = open(path).read()
    rest = s[s.rindex(")") + 2:].split()
    return s[s.index("(") + 1:s.rindex(")")], int(rest[11]) + int(rest[12])
out = {}
for spec in sys.argv[1:]:
    label, pid = spec.split("=")
    paths = glob.glob(f"/proc/{pid}/task/*/stat") if label == "mgw" else [f"/proc/{pid}/stat"]
    for p in paths:
        try:
            comm, t = ticks(p)
        except OSError:
            continue
        if label == "mgw":
            label_t = {"mgw-worker": "mgw_sip", "mgw-media-": "mgw_media", "mgw-cdr": "mgw_cdr"}
            g = next((v for k, v in label_t.items() if comm.startswith(k)), "mgw_other")
        else:
            g = label
        out[g] = out.get(g, 0) + t
print(json.dumps(out, separators=(",", ":")))
PY
cpu_split() { # BEFORE AFTER -> " NAME_s=SECONDS..."
  python3 -c '
import json, os, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
hz = os.sysconf("SC_CLK_TCK")
print(" ".join(f"{k}_s={(b[k] - a.get(k, 0)) / hz:.2f}" for k in sorted(b)))' "$1" "$2"
}
kam() {
  local a b line
  a=$(python3 "$work/snap.py" rtpengine="$RP")
  line=$(SERVICE=service "$here/call-cpu.sh" 127.0.0.1:5085 "$1" "$2" 5095 "${kps[@]}" "$RP" 2>/dev/null)
  b=$(python3 "$work/snap.py" rtpengine="$RP")
  echo "who=kamailio gen=sipp $line $(cpu_split "$a" "$b")"
}
mgw_sipp() {
  local a b line
  a=$(python3 "$work/snap.py" mgw="$MP")
  line=$(SERVICE=8000 "$here/call-cpu.sh" 127.0.0.1:5075 "$1" "$2" 5096 "$MP" 2>/dev/null)
  b=$(python3 "$work/snap.py" mgw="$MP")
  echo "who=mgw gen=sipp $line $(cpu_split "$a" "$b")"
}
# One key=value line per mgw-loadtest run, like call-cpu.sh's.
cat >"$work/lt_line.py" <<'PY'
import json, sys
d = json.load(sys.stdin)
us = d["server_cpu_us_per_call"]
why = {k.replace(" ", "_"): v for k, v in (d["failed_by_status"] or d["failed_by_reason"]).items()}
print(" ".join(f"{k}={v}" for k, v in [
    ("who", "mgw"), ("gen", "mgw-loadtest"), ("target", d["target"]), ("rate", f"{d['rate']:g}"),
    ("offered", d["offered"]), ("ok", d["ok"]), ("failed", d["failed"]),
    ("retrans", d["retransmissions"]), ("elapsed_s", d["elapsed_s"]),
    ("server_cpu_s", d["server_cpu_s"]), ("us_per_call", us if us is not None else "nan"),
    ("gen_cpu_s", d["cpu_s"]), ("achieved", d["offered_rate"]),
    ("setup_p50_ms", d["setup_p50_ms"]), ("setup_p99_ms", d["setup_p99_ms"]),
    ("failed_by", json.dumps(why, separators=(",", ":"))),
    ("phrase", "|".join(v.replace(" ", "_") for v in d["reason_phrases"].values()) or "-"),
]))
PY
mgw_lt() {
  local a b line
  a=$(python3 "$work/snap.py" mgw="$MP")
  line=$("$lt" call --target 127.0.0.1:5075 --users "$work/users/users.csv" --callee 9000 \
    --uas-port 5097 --rate "$1" --count "$2" --hold-ms "$CALL_MS" --server-pid "$MP" \
    | python3 "$work/lt_line.py")
  b=$(python3 "$work/snap.py" mgw="$MP")
  echo "$line $(cpu_split "$a" "$b")"
}

# Warm-up: first calls pay for licence claims, allocator growth, rtpengine's first ports.
kam 50 100 >/dev/null
mgw_sipp 50 100 >/dev/null
mgw_lt 200 400 >/dev/null

# Idle CPU of each server over 5 s: what every rate pays whatever the load.
idle() { awk '{t+=$14+$15} END {print t}' $(printf '/proc/%s/stat ' "$@"); }
k0=$(idle "${kps[@]}" "$RP") m0=$(idle "$MP"); sleep 5; k1=$(idle "${kps[@]}" "$RP") m1=$(idle "$MP")
hz=$(getconf CLK_TCK)
echo "idle kamailio_rtpengine_cpu_pct=$(( (k1 - k0) * 100 / hz / 5 )) mgw_cpu_pct=$(( (m1 - m0) * 100 / hz / 5 ))" \
  | tee -a "$results"

if [[ " $parts " == *" cpu "* ]]; then
  for round in $(seq "$runs"); do
    for r in "${rates[@]}"; do
      n=$((r * secs))
      kam "$r" "$n" | sed "s/^/part=cpu round=$round call_ms=$CALL_MS /" | tee -a "$results"
      mgw_sipp "$r" "$n" | sed "s/^/part=cpu round=$round call_ms=$CALL_MS /" | tee -a "$results"
      mgw_lt "$r" "$n" | sed "s/^/part=cpu round=$round call_ms=$CALL_MS /" | tee -a "$results"
    done
  done
fi

clean() { # line -> exit status 0 when the run is clean
  python3 -c '
import re, sys
f = dict(re.findall(r"(\w+)=(\S+)", sys.argv[1]))
rate, offered, ok, failed = float(f["rate"]), int(f["offered"]), int(f["ok"]), int(f["failed"])
retrans, el = int(f["retrans"]), float(f["elapsed_s"])
achieved = float(f["achieved"]) if "achieved" in f else offered / max(el - int(sys.argv[2]) / 1000, 1e-9)
lost = offered - ok
sys.exit(0 if lost <= 0.001 * offered and retrans < 0.01 * offered and achieved >= 0.9 * rate else 1)
' "$1" "$CALL_MS"
}
if [[ " $parts " == *" cap "* ]]; then
  export CALL_MS=$cap_call_ms
  for round in $(seq "$cap_rounds"); do
    lt_on=1 sipp_on=1
    for r in "${cap_rates[@]}"; do
      # A pause before each run: after an overloaded run mgw still finishes the calls it was
      # handed (and writes their records), which would be charged to the next run.
      if ((lt_on)); then
        sleep 3
        line=$(mgw_lt "$r" $((r * cap_secs)) | sed "s/^/part=cap round=$round call_ms=$CALL_MS /")
        echo "$line" | tee -a "$results"
        clean "$line" || lt_on=0
      fi
      if ((sipp_on)); then
        sleep 3
        line=$(mgw_sipp "$r" $((r * cap_secs)) | sed "s/^/part=cap round=$round call_ms=$CALL_MS /")
        echo "$line" | tee -a "$results"
        clean "$line" || sipp_on=0
      fi
      ((lt_on || sipp_on)) || break
    done
  done
fi

python3 - "$results" <<'PY'
import collections, re, statistics, sys
path = sys.argv[1]
rows = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in open(path) if l.startswith("part=")]
def f(r, k): return float(r[k])
cpu = collections.defaultdict(list)
for r in rows:
    if r["part"] == "cpu":
        cpu[(int(float(r["rate"])), r["who"], r["gen"])].append(r)
def clean(r):
    offered, ok = int(r["offered"]), int(r["ok"])
    ach = float(r["achieved"]) if "achieved" in r else offered / max(f(r, "elapsed_s") - int(r.get("call_ms", 1000)) / 1000, 1e-9)
    return offered - ok <= 0.001 * offered and int(r["retrans"]) < 0.01 * offered and ach >= 0.9 * f(r, "rate"), ach
if cpu:
    print("\n| rate (calls/s) | Kamailio+rtpengine µs/call | mgw µs/call (SIPp) | mgw µs/call (mgw-loadtest) "
          "| Kamailio+rtpengine / mgw | failed k/m/m-lt | retrans k/m/m-lt |")
    print("|---|---|---|---|---|---|---|")
    for rate in sorted({k[0] for k in cpu}):
        g = lambda who, gen: cpu.get((rate, who, gen), [])
        med = lambda rs, fn=lambda r: f(r, "us_per_call"): statistics.median(fn(r) for r in rs) if rs else float("nan")
        k, m, ml = g("kamailio", "sipp"), g("mgw", "sipp"), g("mgw", "mgw-loadtest")
        tot = lambda rs, key: sum(int(r[key]) for r in rs)
        note = "" if all(clean(r)[0] for r in k + m + ml) else " (not clean: see failed)"
        print(f"| {rate} | {med(k):.0f} | {med(m):.0f} | {med(ml):.0f} | {med(k)/med(m):.2f}x{note} | "
              f"{tot(k,'failed')}/{tot(m,'failed')}/{tot(ml,'failed')} | "
              f"{tot(k,'retrans')}/{tot(m,'retrans')}/{tot(ml,'retrans')} |")
if cpu:
    print("\nWhere the CPU goes, µs per call (medians, SIPp load): Kamailio = all its processes, "
          "mgw by thread role")
    print("\n| rate (calls/s) | Kamailio | rtpengine | mgw SIP worker | mgw media worker | mgw call records | mgw other |")
    print("|---|---|---|---|---|---|---|")
    for rate in sorted({k[0] for k in cpu}):
        k, m = cpu.get((rate, "kamailio", "sipp"), []), cpu.get((rate, "mgw", "sipp"), [])
        per = lambda rs, key: statistics.median(f(r, key) * 1e6 / int(r["ok"]) for r in rs) if rs and key in rs[0] else float("nan")
        kam_only = statistics.median((f(r, "server_cpu_s") - f(r, "rtpengine_s")) * 1e6 / int(r["ok"]) for r in k) if k else float("nan")
        print(f"| {rate} | {kam_only:.0f} | {per(k, 'rtpengine_s'):.0f} | {per(m, 'mgw_sip_s'):.0f} | "
              f"{per(m, 'mgw_media_s'):.0f} | {per(m, 'mgw_cdr_s'):.0f} | {per(m, 'mgw_other_s'):.0f} |")
cap = [r for r in rows if r["part"] == "cap"]
if cap:
    print("\n| round | generator | rate asked | achieved | ok / offered | failed | retrans | generator µs/call "
          "| mgw µs/call | setup p50/p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    best = collections.defaultdict(dict)
    for r in cap:
        offered, ok = int(r["offered"]), int(r["ok"])
        ok_run, ach = clean(r)
        if ok_run:
            best[r["gen"]][r["round"]] = max(best[r["gen"]].get(r["round"], 0), f(r, "rate"))
        gen_us = f(r, "gen_cpu_s") * 1e6 / offered
        setup = f"{r['setup_p50_ms']}/{r['setup_p99_ms']}" if "setup_p50_ms" in r else "-"
        why = "" if ok_run else " not clean" + (f" ({r['phrase'].replace('_', ' ')})" if r.get("phrase", "-") != "-" else "")
        print(f"| {r['round']} | {r['gen']} | {f(r,'rate'):g} | {ach:.0f} | {ok}/{offered} | {r['failed']} | {r['retrans']} "
              f"| {gen_us:.0f} | {f(r, 'us_per_call'):.0f} | {setup} |{why}")
    for gen in ("mgw-loadtest", "sipp"):
        per_round = ", ".join(f"{v:g}" for _, v in sorted(best[gen].items())) or "none"
        print(f"highest clean rate, {gen}, per round: {per_round} calls/s")
PY
