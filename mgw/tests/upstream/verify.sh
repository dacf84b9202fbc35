#!/usr/bin/env bash
# Manual check of the upstream provider without mgw: starts it (start.sh), drives every route
# with the SIPp scenarios in sipp/, prints one line per check and "N passed, N failed", and
# stops it again. Needs kamailio, sipp and kamcmd (baresip optional); takes about 20 s.
# The work directory (log, SIPp traces) is kept only when a check failed.
#
# usage: verify.sh [PORT]      (default 25070)
# Ports used, all on loopback: PORT (upstream), PORT+10 (PSTN UAS), PORT+11 (trusted peer),
# PORT+20 ("gw" contact), PORT+21 ("usera" contact), PORT+22 (an untrusted caller).
set -uo pipefail
port=${1:-25070}
here=$(cd "$(dirname "$0")" && pwd)
sf=$here/sipp
work=$(mktemp -d /tmp/mgw-upstream-verify.XXXXXX)
export UPSTREAM_RUNDIR=$work/run
pstn=$((port + 10)) peer=$((port + 11)) gwp=$((port + 20)) userap=$((port + 21)) other=$((port + 22))

pid=$("$here/start.sh" "$port") || { echo "start.sh failed" >&2; exit 1; }
log=$UPSTREAM_RUNDIR/kamailio.log
ctl=unix:$UPSTREAM_RUNDIR/kamailio.ctl
# kamailio is not our child (start.sh's job): stop it and poll until it is gone.
stop() {
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}
trap stop EXIT

passed=0 failed=0
check() { # NAME COMMAND...
  local name=$1; shift
  if "$@"; then
    echo "ok   $name"; passed=$((passed + 1))
  else
    echo "FAIL $name"; failed=$((failed + 1))
  fi
}
# sipp_to NAME TARGET ARGS...: one call, message trace in $work/NAME.msg, exit code of SIPp.
sipp_to() {
  local name=$1 target=$2; shift 2
  timeout 30 sipp "$target" -m 1 -nostdin -trace_msg -message_file "$work/$name.msg" "$@" \
    >"$work/$name.out" 2>&1
}
up() { local n=$1; shift; sipp_to "$n" "127.0.0.1:$port" -i 127.0.0.1 "$@"; }
# uas_bg NAME PORT [ARGS...]: a one-call UAS in the background; its PID in $uas.
uas_bg() {
  local name=$1 p=$2; shift 2
  timeout 30 sipp -sf "$sf/uas.xml" -p "$p" -m 1 -nostdin -trace_msg \
    -message_file "$work/$name.msg" "$@" >"$work/$name.out" 2>&1 &
  uas=$!
  sleep 0.3
}
has() { grep -q -- "$2" "$work/$1.msg" 2>/dev/null; }
logged() { grep -q -- "$1" "$log"; }
dump() { kamcmd -s "$ctl" ul.dump 2>/dev/null; }

# --- REGISTER ---
check "REGISTER gw (401, then 200)" \
  up reg_gw -sf "$sf/register.xml" -p "$gwp" -s gw -au gw -ap secret -key expires 300
check "log: REGISTER from gw: 200" logged "REGISTER from gw: 200 OK"
check "ul.dump lists gw's contact" bash -c "kamcmd -s '$ctl' ul.dump | grep -q 'sip:gw@127.0.0.1:$gwp'"
check "REGISTER wrong password (401, then 403)" \
  up reg_wrong -sf "$sf/register_403.xml" -p "$other" -s gw -au gw -ap wrong -key expires 300
check "log: wrong password" logged "REGISTER auth: wrong password for 'gw'"
check "REGISTER unknown user (401, then 403)" \
  up reg_unknown -sf "$sf/register_403.xml" -p "$other" -s nobody -au nobody -ap x -key expires 300
check "REGISTER someone else's AOR (401, then 403)" \
  up reg_foreign -sf "$sf/register_403.xml" -p "$other" -s usera -au gw -ap secret -key expires 300
check "REGISTER expires 30 (423, Min-Expires: 60)" \
  up reg_short -sf "$sf/register_423.xml" -p "$other" -s gw -au gw -ap secret -key expires 30
check "REGISTER usera expires 7200 (200)" \
  up reg_usera -sf "$sf/register.xml" -p "$userap" -s usera -au usera -ap pw -key expires 7200
check "  granted expires capped at 3600" has reg_usera "sip:usera@127.0.0.1:$userap;transport=UDP>;expires=3600"

# --- outbound calls (subscriber -> provider) ---
uas_bg uas_pstn "$pstn" -i 127.0.0.1
check "INVITE gw -> 9001 (407, auth, 200, BYE) via PSTN UAS" \
  up call_pstn -sf "$sf/uac_auth.xml" -p "$other" -d 300 -s 9001 -key caller gw -au gw -ap secret
wait "$uas"
check "  PSTN UAS answered" test $? -eq 0
check "  PSTN UAS got R-URI sip:9001@upstream.test" has uas_pstn "INVITE sip:9001@upstream.test SIP/2.0"
check "  credentials not forwarded" bash -c "! grep -qi '^Proxy-Authorization' '$work/uas_pstn.msg'"
check "  BYE relayed by Record-Route" has uas_pstn "BYE sip:127.0.0.1:$pstn"
check "log: INVITE from gw to 9001: 407 / 200" \
  bash -c "grep -q 'INVITE from gw to 9001: 407' '$log' && grep -q 'INVITE from gw to 9001: 200 OK' '$log'"

up call_badpw -sf "$sf/uac_auth.xml" -p "$other" -d 300 -s 9001 -key caller gw -au gw -ap wrong
check "INVITE wrong password: 407, then 403" \
  bash -c "grep -q '^SIP/2.0 407' '$work/call_badpw.msg' && grep -q '^SIP/2.0 403 Forbidden' '$work/call_badpw.msg'"
up call_404 -sf "$sf/uac_auth.xml" -p "$other" -d 300 -s 12345 -key caller gw -au gw -ap secret
check "INVITE to unknown number: 404 after auth" has call_404 "SIP/2.0 404 Not Found"

uas_bg uas_usera "$userap" -i 127.0.0.1
check "INVITE gw -> usera (registered) reaches usera's contact" \
  up call_usera -sf "$sf/uac_auth.xml" -p "$other" -d 300 -s usera -key caller gw -au gw -ap secret
wait "$uas"
check "  R-URI is usera's contact" has uas_usera "INVITE sip:usera@127.0.0.1:$userap;transport=UDP SIP/2.0"

# --- inbound calls (provider -> trunk) ---
uas_bg uas_did "$gwp" -i 127.0.0.1
check "INVITE 493012345 from trusted peer :$peer, no auth, reaches gw's contact" \
  up call_did -sf "$sf/uac_inbound.xml" -p "$peer" -d 300 -s 493012345
wait "$uas"
check "  R-URI = gw's contact with the DID as user" has uas_did "INVITE sip:493012345@127.0.0.1:$gwp;transport=UDP SIP/2.0"
check "  To keeps the DID" has uas_did "To: <sip:493012345@upstream.test>"

uas_bg uas_did2 "$gwp" -i 127.0.0.1
check "INVITE to a DID from an untrusted port also needs no auth" \
  up call_did2 -sf "$sf/uac_inbound.xml" -p "$other" -d 300 -s 493099
wait "$uas"

uas_bg uas_peer_pstn "$pstn" -i 127.0.0.1
check "trusted peer may call 9001 without auth" \
  up call_peer_pstn -sf "$sf/uac_inbound.xml" -p "$peer" -d 300 -s 9001
wait "$uas"

# --- IPv6 (when start.sh enabled it) ---
if grep -q 'udp: ::1' "$log"; then
  check "REGISTER gw over [::1] (200)" \
    sipp_to reg_v6 "[::1]:$port" -i ::1 -sf "$sf/register.xml" -p "$gwp" -s gw -au gw -ap secret -key expires 300
  uas_bg uas_did6 "$gwp" -i ::1
  check "DID call over [::1] reaches gw's IPv6 contact" \
    sipp_to call_did6 "[::1]:$port" -i ::1 -sf "$sf/uac_inbound.xml" -p "$other" -d 300 -s 493012345
  wait "$uas"
  check "  R-URI = [::1] contact" has uas_did6 "INVITE sip:493012345@\[::1\]:$gwp;transport=UDP SIP/2.0"
  # Only that contact: the IPv4 one from above stays for the rest of the checks.
  check "REGISTER gw over [::1] expires 0 (200)" \
    sipp_to unreg_v6 "[::1]:$port" -i ::1 -sf "$sf/register.xml" -p "$gwp" -s gw -au gw -ap secret -key expires 0
fi

# --- TCP ---
# SIPp's TCP client sends from its -p port, the one in its Via: no NAT detected, nothing
# stored as received (contrast with baresip below).
check "REGISTER usera over TCP (200)" \
  up reg_tcp -t t1 -sf "$sf/register.xml" -p "$userap" -s usera -au usera -ap pw -key expires 300
uas_bg uas_pstn_tcp "$pstn" -i 127.0.0.1
check "INVITE gw -> 9001 over TCP, relayed over UDP" \
  up call_tcp -t t1 -sf "$sf/uac_auth.xml" -p "$other" -d 300 -s 9001 -key caller gw -au gw -ap secret
wait "$uas"
check "  two Record-Route entries (udp and tcp side)" \
  bash -c "awk '/^INVITE /{on=1} on&&/^\r?$/{exit} on' '$work/uas_pstn_tcp.msg' | grep -c '^Record-Route' | grep -qx 2"

# --- unregister ---
check "REGISTER gw expires 0 (200)" \
  up unreg_gw -sf "$sf/register.xml" -p "$gwp" -s gw -au gw -ap secret -key expires 0
check "log: binding removed" logged "REGISTER binding removed: gw"
check "ul.dump has no gw any more" bash -c "! kamcmd -s '$ctl' ul.dump | grep -q 'AoR: gw'"
up call_did_off -sf "$sf/uac_inbound.xml" -p "$peer" -d 300 -s 493012345
check "DID call while gw is unregistered: 480" has call_did_off "SIP/2.0 480 Temporarily Unavailable"

# --- a TCP trunk from an ephemeral source port (baresip, registered as gw) ---
# Its REGISTER comes from an ephemeral port, not the Via/Contact port: the source address
# is stored as "received" and calls for gw go back over that same TCP connection.
if command -v baresip >/dev/null; then
  bdir=$work/baresip bport=$((port + 23))
  mkdir -p "$bdir"
  printf '%s\n' "module_path /usr/lib/baresip/modules" "poll_method epoll" \
    "sip_listen 127.0.0.1:$bport" "audio_player aubridge,nobody" "audio_alert aubridge,nobody" \
    "audio_source ausine,440" "ausrc_srate 48000" "ausrc_channels 2" "statmode_default off" \
    "module g711.so" "module ausine.so" "module aubridge.so" "module_tmp account.so" \
    "module_app menu.so" >"$bdir/config"
  echo "<sip:gw@upstream.test;transport=tcp>;auth_pass=secret;outbound=\"sip:127.0.0.1:$port;transport=tcp\";regint=300;answermode=auto;audio_codecs=PCMA" \
    >"$bdir/accounts"
  baresip -f "$bdir" -s -t 20 </dev/null >"$bdir/baresip.log" 2>&1 &
  bpid=$!
  for _ in $(seq 50); do dump | grep -q 'Received: sip:127.0.0.1:[0-9]*;transport=tcp' && break; sleep 0.1; done
  check "baresip gw over TCP: source stored as received" \
    bash -c "kamcmd -s '$ctl' ul.dump | grep -q 'Received: sip:127.0.0.1:[0-9]*;transport=tcp'"
  check "INVITE usera -> gw answered by baresip over the same TCP connection" \
    up call_bs -sf "$sf/uac_auth.xml" -p "$other" -d 300 -s gw -key caller usera -au usera -ap pw
  check "  relayed via the received address" \
    bash -c "grep -q 'INVITE from usera to gw: registered user, to sip:gw-[^ ]*@127.0.0.1:$bport;transport=tcp via sip:127.0.0.1:[0-9]*;transport=tcp' '$log'"
  # baresip answers this one 404: it only takes requests whose R-URI user is its own
  # Contact user (gw-0x...), and the DID route replaces it with the dialled number.
  up call_did_bs -sf "$sf/uac_inbound.xml" -p "$peer" -d 300 -s 493012345
  check "DID call routed over gw's TCP connection" \
    bash -c "grep -q 'DID of .gw., to sip:493012345@127.0.0.1:$bport;transport=tcp via sip:127.0.0.1:[0-9]*;transport=tcp' '$log'"
  kill "$bpid" 2>/dev/null; wait "$bpid" 2>/dev/null
fi

stop
trap - EXIT
if [[ $failed -eq 0 ]]; then
  rm -rf "$work"
else
  echo "kept for inspection: $work (run/kamailio.log, *.msg SIPp traces)"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
