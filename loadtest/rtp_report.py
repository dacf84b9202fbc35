#!/usr/bin/env python3
"""Rows and the closing summary of compare-rtp.sh.

  rtp_report.py row RESULTS PART RELAY STREAMS STATUS_FILE RC JSON STDERR [CODEC_B]
      prints one row, appends the record to RESULTS (JSON lines) and writes the run's verdict to
      STATUS_FILE: ok | loss | setup | generator | failed
  rtp_report.py capacity RESULTS RELAY CRITERION CAPACITY FIRST_FAILING BOUND
      records the outcome of a capacity search
  rtp_report.py summary RESULTS
      the figures against the issue's goals
"""
import json
import sys

# "Without loss": below 0.01 % over the run.
LOSS_LIMIT = 1e-4
# A transcoding relay may hold back a frame or two per direction in its codec pipeline when a
# stream stops (rtpengine does, for Opus): the verdict for transcoded runs allows that many.
TRANSCODE_HELD_BACK = 2
# CPU share of one core (%) at which a relay counts as saturated.
RELAY_FULL_PCT = 90
# A relay over its capacity need not lose packets within a 10 s run: its sockets' buffers hold
# seconds of a 50 pps stream, and a saturated relay settles with a standing queue (rtpengine at
# 2 000 streams: p50 40 ms, p99 250 ms, no loss). A loss-free run whose median latency is over
# one packet interval is "late".
LATE_P50_US = 20_000

HEADER = ("part relay streams codecs sent received loss_pct lat_p50_us lat_p99_us lat_p999_us "
          "lat_max_us relay_cpu_s relay_us_per_pkt relay_cpu_pct softirq_s gen_cpu_pct "
          "gen_busy_pct send_lag_p99_us other_cpu_s steal_s verdict")


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def verdict(rec):
    if "sent" not in rec:
        # Status 2: nothing could be set up (the relay refused every offer, or no reply).
        return "setup" if rec.get("rc") == 2 else "failed"
    if rec["setup_failed"] > 0:
        return "setup"
    lost = rec["sent"] - rec["received"]
    # Lossy from `limit` lost packets on: below 0.01 %, or for transcoded runs up to the
    # frames a codec pipeline holds back.
    limit = LOSS_LIMIT * rec["sent"]
    if rec["transcoding"]:
        limit = max(limit, TRANSCODE_HELD_BACK * 2 * rec["streams"] + 1)
    lossy = rec["sent"] == 0 or (lost > 0 and lost >= limit)
    # A relay using (nearly) all of its core while packets go missing is the bottleneck, even
    # if the generator struggled too.
    if lossy and (rec.get("relay_cpu_pct") or 0) >= RELAY_FULL_PCT:
        return "loss"
    if rec["generator_saturated"]:
        return "generator"
    if lossy:
        return "loss"
    p50 = rec.get("latency_us_p50")
    return "late" if p50 is not None and p50 > LATE_P50_US else "ok"


def row(path, part, relay, streams, status_file, rc, out, err, codec_b=""):
    rec = {"part": part, "relay": relay, "streams_asked": int(streams), "rc": int(rc),
           "codec_b_asked": codec_b}
    try:
        rec.update(json.loads(out))
    except (ValueError, TypeError):
        rec["error"] = (err.strip().splitlines() or ["no output"])[-1]
    v = verdict(rec)
    rec["verdict"] = v
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    with open(status_file, "w") as f:
        f.write(v)
    if "sent" not in rec:
        print(f"{part} {relay} {streams} {codec_b or '-'} FAILED: {rec.get('error')}", flush=True)
        return
    codecs = rec["codec_a"] + (("-" + rec["codec_b"]) if rec["transcoding"] else "")
    cols = [part, relay, rec["streams"], codecs, rec["sent"], rec["received"], rec["loss_pct"],
            rec["latency_us_p50"], rec["latency_us_p99"], rec["latency_us_p999"],
            rec["latency_us_max"], rec["relay_cpu_s"], rec["relay_cpu_us_per_packet"],
            rec["relay_cpu_pct"], rec["relay_cpu_softirq_s"], rec["generator_cpu_pct"],
            rec["generator_busy_pct"],
            rec["send_lag_us_p99"], rec["other_cpu_s"], rec["machine_steal_s"], v]
    note = ""
    if rec["setup_failed"]:
        note = f"  ({rec['setup_failed']} set-ups failed: {rec['setup_error']})"
    print(" ".join(fmt(c) for c in cols) + note, flush=True)


CRITERIA = {"loss": "without loss", "timely": "without loss and with p50 latency <= 20 ms"}


def capacity(path, relay, criterion, cap, first_failing, bound):
    rec = {"part": "capacity-result", "relay": relay, "criterion": criterion,
           "capacity": int(cap), "first_failing": int(first_failing) or None,
           "bound": bound or None}
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    why = {"generator": " (the generator, not the relay, gave out above this)",
           "limit": " (the search's upper limit: the relay's port range)"}.get(bound, "")
    fail = f", fails at {first_failing}" if int(first_failing) else ""
    print(f"capacity {relay}: {cap} streams {CRITERIA[criterion]}{fail}{why}", flush=True)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def summary(path):
    recs = [json.loads(l) for l in open(path) if l.strip()]
    ok = [r for r in recs if "sent" in r]

    def runs(part, relay, streams=None, codec_b=None):
        return [r for r in ok if r["part"] == part and r["relay"] == relay
                and (streams is None or r["streams_asked"] == streams)
                and (codec_b is None or r["codec_b"] == codec_b)]

    def us(part, relay, streams, codec_b=None):
        return median(r["relay_cpu_us_per_packet"] for r in runs(part, relay, streams, codec_b))

    def ratio(a, b):
        return None if a is None or b in (None, 0) else a / b

    def goal(name, value, op, limit, note=""):
        if value is None:
            print(f"  {name}: not measured{note}")
            return
        met = value <= limit if op == "<=" else value >= limit
        print(f"  {name}: {value:.2f} (goal {op} {limit}) {'MET' if met else 'MISSED'}{note}")

    print("\n== summary ==")
    goals = []
    fixed = sorted({r["streams_asked"] for r in ok if r["part"] == "fixed"})
    if fixed:
        print("CPU per relayed packet (us, median of the rounds), fixed stream counts:")
        print("  streams floor mgw rtpengine mgw/floor mgw/rtpengine")
        for n in fixed:
            f, m, e = (us("fixed", x, n) for x in ("floor", "mgw", "rtpengine"))
            r1, r2 = ratio(m, f), ratio(m, e)
            print(f"  {n} " + " ".join(fmt(x) for x in (f, m, e, r1, r2)))
            goals.append((f"mgw CPU/packet vs floor at {n} streams", r1, "<=", 1.2))
    caps = {(r["relay"], r["criterion"]): r for r in recs if r["part"] == "capacity-result"}
    for crit in ("loss", "timely"):
        if not any(k[1] == crit for k in caps):
            continue
        print(f"Streams on one core {CRITERIA[crit]} (capacity search, {crit!r}); the")
        print("  CPU-extrapolated figure is streams / CPU share of one core at the largest run")
        print("  that passed:")
        for relay in ("floor", "mgw", "rtpengine"):
            c = caps.get((relay, crit))
            if not c:
                continue
            passed = ("ok", "late") if crit == "loss" else ("ok",)
            good = [r for r in runs("capacity", relay) if r["verdict"] in passed]
            top = max(good, key=lambda r: r["streams"], default=None)
            est = ""
            if top and top["relay_cpu_pct"]:
                est = (f", CPU-extrapolated {top['streams'] * 100 / top['relay_cpu_pct']:.0f} "
                       f"({top['relay_cpu_pct']} % of a core at {top['streams']}, p50 latency "
                       f"{fmt(top['latency_us_p50'])} us)")
            b = " (a lower bound: " + c["bound"] + ")" if c["bound"] else ""
            print(f"  {relay}: {c['capacity']}{b}{est}")
        m, e = caps.get(("mgw", crit)), caps.get(("rtpengine", crit))
        if m and e:
            note = ""
            bounds = [f"{x} stopped by the {c['bound']}" for x, c in (("mgw", m), ("rtpengine", e))
                      if c["bound"]]
            if bounds:
                note = " (" + "; ".join(bounds) + ")"
            goals.append((f"streams on one core {CRITERIA[crit]}, mgw / rtpengine",
                          ratio(m["capacity"], e["capacity"]), ">=", 1.6, note))
    for crit in ("loss", "timely"):
        lat = [r for r in ok if r["part"] == f"latency80-{crit}"]
        if not lat:
            if crit == "timely" and any(r["part"] == "latency80-loss" for r in ok):
                print("Latency at 80 % of the capacity by the timely criterion: for each relay "
                      "it is the same load as above, or was not measured")
            continue
        print(f"Latency at 80 % of the capacity {CRITERIA[crit]} (us), every round:")
        for r in lat:
            print(f"  {r['relay']} at {r['streams']} streams: p50 {fmt(r['latency_us_p50'])} "
                  f"p99 {fmt(r['latency_us_p99'])} p99.9 {fmt(r['latency_us_p999'])} "
                  f"max {fmt(r['latency_us_max'])}, loss {r['loss_pct']} %, relay CPU "
                  f"{r['relay_cpu_pct']} %, generator send lag p99 {r['send_lag_us_p99']}")
        for relay in ("mgw", "floor"):
            mine = [r for r in lat if r["relay"] == relay]
            p99 = median(r["latency_us_p99"] for r in mine)
            p50 = median(r["latency_us_p50"] for r in mine)
            if p99 is None:
                continue
            print(f"  {relay} at {mine[0]['streams']}, median of the rounds: p50 {fmt(p50)} "
                  f"p99 {fmt(p99)}")
            if relay == "mgw":
                goals.append((f"mgw latency p99 (ms, median of rounds) at 80 % of its capacity "
                              f"{CRITERIA[crit]}", p99 / 1000, "<=", 1.0))
    tc = [r for r in recs if r["part"] == "transcode"]
    if tc:
        print("Transcoding (CPU per packet in us; calls per core = calls / CPU-seconds per second):")
        print("  relay calls plain pcma pcma/plain opus calls_per_core(plain) calls_per_core(opus)")
        per_core = {}
        for relay in ("mgw", "rtpengine"):
            for n in sorted({r["streams_asked"] for r in tc if r["relay"] == relay}):
                p, a, o = (runs("transcode", relay, n, c) for c in ("PCMU", "PCMA", "opus"))
                u = [median(x["relay_cpu_us_per_packet"] for x in rs) for rs in (p, a, o)]

                def cpc(rs):
                    good = [x for x in rs if x["verdict"] == "ok" and x["relay_cpu_s"]]
                    return median(x["streams"] * x["media_s"] / x["relay_cpu_s"] for x in good)
                c_plain, c_opus = cpc(p), cpc(o)
                if c_opus:
                    per_core.setdefault(relay, []).append(c_opus)
                failed = sorted({f["codec_b_asked"].upper() for f in tc if f["relay"] == relay
                                 and f["streams_asked"] == n and "sent" not in f})
                note = f"  (failed: {', '.join(failed)}: see the rows above)" if failed else ""
                print(f"  {relay} {n} {fmt(u[0])} {fmt(u[1])} {fmt(ratio(u[1], u[0]))} "
                      f"{fmt(u[2])} {fmt(c_plain)} {fmt(c_opus)}{note}")
                if relay == "mgw" and (a or "PCMA" in failed):
                    goals.append((f"mgw PCMU<->PCMA cost / plain relay at {n} calls",
                                  ratio(u[1], u[0]), "<=", 1.1))
        m, e = per_core.get("mgw"), per_core.get("rtpengine")
        goals.append(("PCMU<->opus calls per core, mgw / rtpengine",
                      ratio(max(m), max(e)) if m and e else None, ">=", 3.0))
    if goals:
        print("Goals:")
        for g in goals:
            goal(*g)
    noisy = [r for r in ok if (r.get("other_cpu_s") or 0) > 0.05 * r["media_s"]]
    if noisy:
        print(f"Warning: in {len(noisy)} runs other processes used more than 5 % of a core "
              "(other_cpu_s): the machine was not quiet.")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"row": row, "capacity": capacity, "summary": summary}[cmd](*args)
