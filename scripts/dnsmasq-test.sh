#!/usr/bin/env bash
# Starts a throwaway dnsmasq that serves the trunk.test zone for the resolver and trunk tests,
# and prints its pid on stdout; stop it with `kill PID`. Nothing outside trunk.test is
# answered (--no-resolv, no upstream), and /etc/hosts is not read.
#
#   pid=$(scripts/dnsmasq-test.sh) || exit 1
#   ... tests against 127.0.0.1:15353 ...
#   kill "$pid"
#
# The zone (every address is loopback, so SIP peers on this machine can stand behind it):
#   _sip._udp.trunk.test  SRV 10 60 25070 sip1.trunk.test
#                         SRV 20 0  25071 sip2.trunk.test
#   _sip._tcp.trunk.test  SRV 10 0  25070 sip1.trunk.test
#   sip1.trunk.test, sip2.trunk.test, plain.trunk.test   A 127.0.0.1 (no AAAA)
#   v6.trunk.test         AAAA ::1 (no A)
#   _sip._udp.down.trunk.test  SRV 10 0 5060 nowhere.trunk.test (which does not exist)
#   anything else under trunk.test: NXDOMAIN
#
# Environment: MGW_DNSMASQ_PORT (default 15353). Exits 1 with a note on stderr when dnsmasq
# is not installed (Debian: dnsmasq-base) or does not start.
set -euo pipefail

port=${MGW_DNSMASQ_PORT:-15353}
dnsmasq=$(command -v dnsmasq || true)
if [ -z "$dnsmasq" ] && [ -x /usr/sbin/dnsmasq ]; then
  dnsmasq=/usr/sbin/dnsmasq
fi
if [ -z "$dnsmasq" ]; then
  echo "dnsmasq-test: dnsmasq is not installed (apt-get install dnsmasq-base)" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/mgw-dnsmasq.XXXXXX")
pidfile=$dir/dnsmasq.pid
# As root dnsmasq would drop to a user that may not exist here; staying as the caller is
# enough for an unprivileged port.
user_opt=()
if [ "$(id -u)" -eq 0 ]; then
  user_opt=(--user=root --group=root)
fi

"$dnsmasq" \
  --port="$port" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --no-poll --conf-file=/dev/null --pid-file="$pidfile" \
  --log-facility="$dir/dnsmasq.log" \
  "${user_opt[@]}" \
  --local=/trunk.test/ \
  --srv-host=_sip._udp.trunk.test,sip1.trunk.test,25070,10,60 \
  --srv-host=_sip._udp.trunk.test,sip2.trunk.test,25071,20,0 \
  --srv-host=_sip._tcp.trunk.test,sip1.trunk.test,25070,10,0 \
  --srv-host=_sip._udp.down.trunk.test,nowhere.trunk.test,5060,10,0 \
  --host-record=sip1.trunk.test,127.0.0.1 \
  --host-record=sip2.trunk.test,127.0.0.1 \
  --host-record=plain.trunk.test,127.0.0.1 \
  --host-record=v6.trunk.test,::1 \
  >&2

# dnsmasq writes the pid file before it returns to the shell, but give it a moment anyway.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  if [ -s "$pidfile" ]; then
    cat "$pidfile"
    exit 0
  fi
  sleep 0.1
done
echo "dnsmasq-test: dnsmasq did not start; see $dir/dnsmasq.log" >&2
exit 1
