#!/usr/bin/env bash
# Load generators side by side: mgw-loadtest and SIPp run the same REGISTER + digest flow
# (REGISTER -> 401 -> REGISTER with credentials -> 200) against the Kamailio registrar anchor,
# at the same rates, interleaved so machine noise hits both alike. For each run it records the
# flows that succeeded and failed, the retransmissions, and the CPU (user + system) that the
# generator itself used, from getrusage of the child; Kamailio's CPU comes from /proc.
#
# Both get 8 MiB socket buffers (SIPp through -buff_size, capped by net.core.rmem_max; its 64 KiB
# default drops answers in bursts and makes it collapse into retransmissions from 5000/s on).
#
# A run is "clean" when it has zero failed flows and fewer than 1 % retransmissions
# (retransmitted requests / flows offered). The table ends with the highest rate of each tool
# at which every run, and most runs, were clean. On a shared machine, a stall of the server of a
# few milliseconds overflows its socket buffer (Kamailio's is 512 KiB) and costs
# retransmissions whatever the generator: more runs (RUNS) give steadier answers.
#
# usage: loadtest/compare-loadgen.sh [RATES...]     (default: 5000 7500 10000 15000 20000)
# env:   RUNS (3) runs per rate and tool, SECS (10) seconds per run, USERS (1000),
#        PORT (5077, away from the 5070 the other scripts use) for Kamailio,
#        TICK_US (mgw-loadtest --tick-us, its default if unset), SOCKETS (--sockets, 4),
#        KEEP=dir to keep the raw results there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rates=("$@"); ((${#rates[@]})) || rates=(5000 7500 10000 15000 20000)
runs=${RUNS:-3} secs=${SECS:-10} nusers=${USERS:-1000} port=${PORT:-5077}
gen="$root/target/release/mgw-loadtest"
[[ -x $gen ]] || (cd "$root" && cargo build --release -p mgw-loadtest)
command -v sipp >/dev/null || { echo "sipp is not installed" >&2; exit 1; }
work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
python3 "$here/sipp/make_users.py" "$nusers" "$work/users" >/dev/null
KP=$("$here/kamailio/start.sh" "$port")
trap 'kill $KP 2>/dev/null || true; [[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
echo "kamailio pids: $KP; $(nproc) CPUs; $runs run(s) of ${secs}s per rate and tool" >&2

python3 - "$work" "$gen" "$here/sipp/reg_auth.xml" "127.0.0.1:$port" "$runs" "$secs" \
  "${TICK_US:-}" "${SOCKETS:-4}" "$KP" "${rates[@]}" <<'PY'
import csv, json, os, resource, statistics, subprocess, sys, time

work, gen, scenario, target, runs, secs, tick, sockets, kpids, *rates = sys.argv[1:]
runs, secs, rates = int(runs), int(secs), [int(r) for r in rates]
kpids = kpids.split()
hz = os.sysconf("SC_CLK_TCK")

def kamailio_ticks():
    t = 0
    for p in kpids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        except OSError:
            pass
    return t

def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def measure(cmd):
    """Runs cmd; returns (stdout, wall s, own CPU s, Kamailio CPU s)."""
    c0, k0, t0 = child_cpu(), kamailio_ticks(), time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                       timeout=secs * 10 + 120)
    return p.stdout, time.monotonic() - t0, child_cpu() - c0, (kamailio_ticks() - k0) / hz

def run_mgw(rate, count):
    cmd = [gen, "register", "--target", target, "--users", f"{work}/users/users.csv",
           "--rate", str(rate), "--count", str(count), "--sockets", sockets, "--json-only"]
    if tick:
        cmd += ["--tick-us", tick]
    out, wall, cpu, kcpu = measure(cmd)
    j = json.loads(out.strip().splitlines()[-1])
    return dict(ok=j["ok"], failed=j["failed"], retrans=j["retransmissions"],
                elapsed=j["elapsed_s"], cpu=cpu, kcpu=kcpu, p50=j["p50_ms"], p99=j["p99_ms"])

def run_sipp(rate, count, i):
    stf = f"{work}/sipp-{rate}-{i}.csv"
    cmd = ["sipp", target, "-sf", scenario, "-inf", f"{work}/users/sipp_users.csv",
           "-r", str(rate), "-m", str(count), "-trace_stat", "-stf", stf, "-fd", "1",
           "-nostdin", "-buff_size", str(8 << 20)]
    _, wall, cpu, kcpu = measure(cmd)
    rows = list(csv.reader(open(stf), delimiter=";"))
    d = dict(zip(rows[0], rows[-1]))
    return dict(ok=int(d["SuccessfulCall(C)"]), failed=int(d["FailedCall(C)"]),
                retrans=int(d["Retransmissions(C)"]), elapsed=wall, cpu=cpu, kcpu=kcpu,
                p50=None, p99=None)

# Warm-up (Kamailio's location table, caches), discarded.
run_mgw(1000, 2000)
results = {}
for rate in rates:
    count = rate * secs
    for i in range(runs):
        for tool in ("mgw-loadtest", "sipp"):
            r = run_mgw(rate, count) if tool == "mgw-loadtest" else run_sipp(rate, count, i)
            r["offered"] = count
            results.setdefault((tool, rate), []).append(r)
            print(f"{tool:12} rate={rate} ok={r['ok']} failed={r['failed']} "
                  f"retrans={r['retrans']} elapsed_s={r['elapsed']:.2f} "
                  f"gen_cpu_s={r['cpu']:.2f} gen_us_per_flow={r['cpu'] * 1e6 / count:.1f} "
                  f"kamailio_us_per_flow={r['kcpu'] * 1e6 / count:.1f}"
                  + (f" p50_ms={r['p50']} p99_ms={r['p99']}" if r["p50"] is not None else ""),
                  file=sys.stderr, flush=True)

def clean_run(r):
    return r["failed"] == 0 and r["retrans"] < 0.01 * r["offered"]

print("\n| rate (flows/s) | tool | ok/offered (median) | failed (sum) | retrans % (median, max) "
      "| clean runs | generator us/flow (median) | Kamailio us/flow (median) |")
print("|---|---|---|---|---|---|---|---|")
best_all, best_most = {}, {}
for rate in rates:
    for tool in ("mgw-loadtest", "sipp"):
        rs = results[(tool, rate)]
        ok = statistics.median(r["ok"] for r in rs)
        us = statistics.median(r["cpu"] * 1e6 / r["offered"] for r in rs)
        kus = statistics.median(r["kcpu"] * 1e6 / r["offered"] for r in rs)
        rts = [100.0 * r["retrans"] / r["offered"] for r in rs]
        n_clean = sum(clean_run(r) for r in rs)
        if n_clean == len(rs):
            best_all[tool] = max(best_all.get(tool, 0), rate)
        if 2 * n_clean > len(rs):
            best_most[tool] = max(best_most.get(tool, 0), rate)
        print(f"| {rate} | {tool} | {ok:.0f}/{rs[0]['offered']} | {sum(r['failed'] for r in rs)} "
              f"| {statistics.median(rts):.2f}, {max(rts):.2f} | {n_clean}/{len(rs)} | {us:.1f} "
              f"| {kus:.1f} |")
print()
for tool in ("mgw-loadtest", "sipp"):
    print(f"highest clean rate, {tool}: every run: {best_all.get(tool, 'none tried')}, "
          f"most runs: {best_most.get(tool, 'none tried')}")
PY
