#!/usr/bin/env bash
# RTP relays side by side in one run: the bare recvmmsg/sendmmsg relay (`mgw-loadtest floor`, the
# floor), mgw ([engine] workers = 1, io_uring) and rtpengine (userspace, --table=-1, 1 thread).
# Each relay is pinned to CPU 0 and the generator to CPU 1 (PIN=0: no pinning); all three are
# driven through their ng sockets by the same `mgw-loadtest rtp` streams: 50 pps each way,
# 20 ms G.711 (PCMU unless a part says otherwise), phases spread over the 20 ms. A relay's CPU is
# all its threads' over the media phase only (the generator reads it from /proc, see
# --relay-pid), divided by the packets it relayed.
#
# Parts (PARTS, default "fixed capacity latency transcode"):
#   fixed      CPU per packet, loss, latency at each of COUNTS streams (200 600), SECS (10) each,
#              all relays in turn, REPEAT (2) rounds; the summary takes the median per relay
#   capacity   per relay, the most streams with loss < 0.01 % over CAP_SECS (10), and the most
#              that also keep the median latency under 20 ms (one packet interval; a relay can
#              queue seconds of a 50 pps stream in its socket buffers before it loses any):
#              doubling from CAP_START (400) up to CAP_MAX (3400; rtpengine's port range stops
#              it at 2600), then bisection to ~5 %
#   latency    mgw and the floor at 80 % of mgw's capacity (by each criterion), LAT_REPEAT (3)
#              rounds, and rtpengine at 80 % of its own (needs the capacity part first in the
#              same run; MGW_CAPACITY stands in for mgw's loss-free capacity without it)
#   transcode  mgw and rtpengine: PCMU both ways and PCMU<->PCMA at TRANSCODE_COUNTS calls
#              (100 200), PCMU<->opus at OPUS_COUNTS (50 100; rtpengine's Opus encoder fills a
#              core near 50 calls), plain PCMU at every count for the ratios; a relay that
#              cannot transcode shows as FAILED rows
# One row per run (header below), then a summary against the issue's goals. RESULTS=FILE keeps
# every run's JSON line; GEN_ARGS adds generator options (e.g. "--spin-us 2000").
#
# usage: loadtest/compare-rtp.sh          env: as above, NO_BUILD=1 to use the built binaries
# About 12 minutes on the 2-vCPU VM.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
parts=${PARTS:-fixed capacity latency transcode}
counts=${COUNTS:-200 600}
secs=${SECS:-10}
cap_secs=${CAP_SECS:-10}
cap_start=${CAP_START:-400}
repeat=${REPEAT:-2}
lat_repeat=${LAT_REPEAT:-3}
tc_counts=${TRANSCODE_COUNTS:-100 200}
opus_counts=${OPUS_COUNTS:-50 100}
gen_args=${GEN_ARGS:-}
[ -n "${NO_BUILD:-}" ] || (cd "$root" && cargo build --release -q -p mgw -p mgw-loadtest)
gen=$root/target/release/mgw-loadtest
pin_relay=() pin_gen=()
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then pin_relay=(taskset -c 0) pin_gen=(taskset -c 1); fi

# Ports: every relay range below the kernel's ephemeral range (32768-60999), so no socket the
# generator opens can take a port a relay is about to bind. mgw and rtpengine take 4 ports per
# call (RTP+RTCP per leg), the floor 2; the searches stop short of each range.
floor_ng=127.0.0.1:22243 mgw_ng=127.0.0.1:22241 re_ng=127.0.0.1:22242
floor_ports=1100-7999 mgw_ports=8000-21999 re_min=22300 re_max=32767
top=${CAP_MAX:-3400}
declare -A cap_max=([floor]=$top [mgw]=$top [rtpengine]=$((top < 2600 ? top : 2600)))

work=$(mktemp -d)
results=${RESULTS:-$work/results.jsonl}
: >"$results"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/mgw.toml" <<TOML
[engine]
workers = 1
[sip]
listen = ["udp:127.0.0.1:22260"]
[admin]
listen = "127.0.0.1:22280"
token = "t"
[store]
dir = "$work/store"
[media]
ng_listen = "$mgw_ng"
bind = "127.0.0.1"
rtp_ports = "$mgw_ports"
TOML
"${pin_relay[@]}" "$gen" floor --ng "$floor_ng" --ports "$floor_ports" >"$work/floor.json" 2>&1 &
floor=$!; pids+=("$floor")
"${pin_relay[@]}" "$root/target/release/mgw" serve --config "$work/mgw.toml" >"$work/mgw.log" 2>&1 &
mgw=$!; pids+=("$mgw")
re=$(RTPENGINE_PORT_MIN=$re_min RTPENGINE_PORT_MAX=$re_max "${pin_relay[@]}" "$here/rtpengine/start.sh" 22242 1)
pids+=("$re")
for _ in $(seq 100); do curl -sf http://127.0.0.1:22280/health >/dev/null && break; sleep 0.1; done
declare -A pid_of=([floor]=$floor [mgw]=$mgw [rtpengine]=$re)
declare -A ng_of=([floor]=$floor_ng [mgw]=$mgw_ng [rtpengine]=$re_ng)

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); rtpengine $(rtpengine --version 2>&1 | awk '{print $2}')"
echo "# generator: --threads 1 --sockets 1 --tick-us 100 $gen_args; relays pinned: ${pin_relay[*]:-no}"
python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import rtp_report; print(rtp_report.HEADER)' "$here"

# measure PART RELAY STREAMS SECONDS [generator options...]: one row; the verdict in $work/status.
measure() {
  local part=$1 relay=$2 n=$3 s=$4 out rc=0 codec_b="" prev="" a
  shift 4
  for a in "$@"; do [ "$prev" = --codec-b ] && codec_b=$a; prev=$a; done
  # shellcheck disable=SC2086 # GEN_ARGS is a list of options
  out=$("${pin_gen[@]}" "$gen" rtp --ng "${ng_of[$relay]}" --relay-pid "${pid_of[$relay]}" \
    --streams "$n" --duration "$s" $gen_args "$@" 2>"$work/err") || rc=$?
  python3 "$here/rtp_report.py" row "$results" "$part" "$relay" "$n" "$work/status" "$rc" \
    "$out" "$(tail -c 400 "$work/err")" "$codec_b"
  # Let the relay finish the deletes and go idle before the next run.
  sleep 1
}

# Capacity searches share their runs: one verdict per relay and stream count.
declare -A seen=()
probe() { # RELAY STREAMS: the verdict in $st
  local key="$1:$2"
  if [ -z "${seen[$key]:-}" ]; then
    measure capacity "$1" "$2" "$cap_secs"
    seen[$key]=$(cat "$work/status")
  fi
  st=${seen[$key]}
}
# passes CRITERION VERDICT. "loss": no loss (0.01 %) over the run, however late; "timely": that,
# and a median latency within one packet interval (20 ms).
passes() { case $1:$2 in *:ok | loss:late) return 0 ;; *) return 1 ;; esac; }

# search RELAY CRITERION: doubling, then bisection to within 5 % (at least 25 streams). A run
# where the generator gave out says nothing about the relay: it bounds what can be measured,
# and the result is then a lower bound.
search() {
  local relay=$1 crit=$2 max=${cap_max[$1]} n=$cap_start lo=0 hi=0 bound="" st
  while :; do
    probe "$relay" "$n"
    if passes "$crit" "$st"; then lo=$n; else
      hi=$n bound=""
      [ "$st" = generator ] && bound=generator
      break
    fi
    if [ "$n" -ge "$max" ]; then bound=limit; break; fi
    n=$((n * 2 > max ? max : n * 2))
  done
  if [ "$hi" -gt 0 ]; then
    while :; do
      local step=$((lo / 20 > 25 ? lo / 20 : 25))
      [ $((hi - lo)) -gt "$step" ] || break
      n=$(((lo + hi) / 2 / 25 * 25))
      [ "$n" -gt "$lo" ] || n=$((lo + 25))
      [ "$n" -lt "$hi" ] || break
      probe "$relay" "$n"
      if passes "$crit" "$st"; then lo=$n; else
        hi=$n bound=""
        [ "$st" = generator ] && bound=generator
      fi
    done
  fi
  python3 "$here/rtp_report.py" capacity "$results" "$relay" "$crit" "$lo" "$hi" "$bound"
  declare -g "cap_${crit}_$relay=$lo"
}

for part in $parts; do
  case $part in
  fixed)
    for _ in $(seq "$repeat"); do
      for n in $counts; do
        for relay in floor mgw rtpengine; do measure fixed "$relay" "$n" "$secs"; done
      done
    done
    ;;
  capacity)
    for relay in floor mgw rtpengine; do
      search "$relay" timely
      search "$relay" loss
    done
    ;;
  latency)
    # 80 % of mgw's capacity by either criterion (they differ by the standing queue a relay
    # may build without losing anything); the floor at the same load, as this machine's own
    # floor of latency; rtpengine at 80 % of its own.
    done_mgw="" done_re=""
    for crit in loss timely; do
      var=cap_${crit}_mgw m=${!var:-0}
      [ "$crit" = loss ] && [ "$m" = 0 ] && m=${MGW_CAPACITY:-0}
      # Both criteria often give the same capacity: measure each load once.
      if [ "$m" = "$done_mgw" ]; then
        echo "latency: mgw's capacity $crit is the same, $m streams"
      elif [ "$m" -gt 0 ]; then
        done_mgw=$m
        n=$((m * 8 / 10))
        for _ in $(seq "$lat_repeat"); do
          measure "latency80-$crit" mgw "$n" "$cap_secs"
          measure "latency80-$crit" floor "$n" "$cap_secs"
        done
      else
        echo "latency: no mgw capacity ($crit) known: run the capacity part first"
      fi
      var=cap_${crit}_rtpengine r=${!var:-0}
      if [ "$r" -gt 0 ] && [ "$r" != "$done_re" ]; then
        done_re=$r
        measure "latency80-$crit" rtpengine $((r * 8 / 10)) "$cap_secs"
      fi
    done
    ;;
  transcode)
    for n in $(printf '%s\n' $tc_counts $opus_counts | sort -nu); do
      for relay in mgw rtpengine; do
        measure transcode "$relay" "$n" "$secs" --codec-a pcmu --codec-b pcmu
        if [[ " $tc_counts " == *" $n "* ]]; then
          measure transcode "$relay" "$n" "$secs" --codec-a pcmu --codec-b pcma
        fi
        if [[ " $opus_counts " == *" $n "* ]]; then
          measure transcode "$relay" "$n" "$secs" --codec-a pcmu --codec-b opus
        fi
      done
    done
    ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
python3 "$here/rtp_report.py" summary "$results"
