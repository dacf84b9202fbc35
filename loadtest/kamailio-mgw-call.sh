#!/usr/bin/env bash
# Kamailio's rtpengine module driving mgw's relay over ng: SIPp calls through the proxy, the
# caller playing SIPp's g711a.pcap and the callee echoing it, so RTP crosses mgw both ways.
# Prints SIPp's result and mgw's relayed packet counters.
# usage: loadtest/kamailio-mgw-call.sh [CALLS]      (ports: SIP proxy 5083, ng 22231, UAS 5094)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
calls=${1:-3}
(cd "$root" && cargo build --release -q -p mgw)
work=$(mktemp -d)
cat >"$work/mgw.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:25260"]
[admin]
listen = "127.0.0.1:28280"
token = "t"
[store]
dir = "$work/store"
[media]
ng_listen = "127.0.0.1:22231"
bind = "127.0.0.1"
TOML
"$root/target/release/mgw" serve --config "$work/mgw.toml" >"$work/mgw.log" 2>&1 &
mgw=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:28280/health >/dev/null && break; sleep 0.1; done
KP=$("$here/kamailio/start-proxy.sh" 5083 22231)
sipp -sf "$here/sipp/uas_call.xml" -i 127.0.0.1 -mi 127.0.0.1 -p 5094 -rtp_echo -nostdin >/dev/null 2>&1 &
uas=$!
trap 'kill $mgw $KP $uas 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 0.5
sipp 127.0.0.1:5094 -rsa 127.0.0.1:5083 -sf "$here/sipp/uac_call_rtp.xml" -i 127.0.0.1 -mi 127.0.0.1 \
  -m "$calls" -r 1 -d 4000 -nostdin >"$work/uac.out" 2>&1 || true
grep -E "Successful call|Failed call" "$work/uac.out" | tail -2
curl -s http://127.0.0.1:28280/metrics | grep -E "^mgw_media_(rx|tx)_packets_total|^mgw_media_sessions"
