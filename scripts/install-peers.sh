#!/usr/bin/env bash
# Installs the real SIP/RTP peers that mgw's interoperability tests talk to.
# Idempotent: a tool that `command -v` already finds is skipped. Never fatal:
# unit tests must still run on a machine where apt cannot install, so every
# failure is a warning and the script exits 0.
set -uo pipefail

# package -> command that proves it is installed
peers=(
  "sip-tester:sipp"
  "kamailio:kamailio"
  "rtpengine-daemon:rtpengine"
  "baresip:baresip"
  "sipsak:sipsak"
  "redis-server:redis-server"
  # scripts/dnsmasq-test.sh: a DNS server for the resolver and trunk tests. -base is the
  # binary without the system service, which would take port 53.
  "dnsmasq-base:dnsmasq"
  # The reference Opus library for media/tests/opus_interop.rs: a library, found with ldconfig.
  "libopus0:lib:libopus.so.0"
)

warn() { echo "install-peers: warning: $*" >&2; }

missing=()
for entry in "${peers[@]}"; do
  pkg=${entry%%:*}
  cmd=${entry#*:}
  if [[ $cmd == lib:* ]]; then
    if ldconfig -p 2>/dev/null | grep -q "${cmd#lib:}"; then
      echo "install-peers: ${cmd#lib:} present"
      continue
    fi
    missing+=("$pkg")
    continue
  fi
  if command -v "$cmd" >/dev/null 2>&1; then
    echo "install-peers: $cmd present"
  else
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  warn "not root; cannot install ${missing[*]}; the tests that need them will skip"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  warn "no apt-get; cannot install ${missing[*]}"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# kamailio, rtpengine and redis start a daemon from their postinst; one of them
# would hold port 5060 or 22222 that the tests use. policy-rc.d answering 101
# tells invoke-rc.d not to start anything.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

echo "install-peers: installing ${missing[*]}"
apt-get update -qq >/dev/null 2>&1 || warn "apt-get update failed; trying the cached package lists"
apt_install() {
  apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "$@" >/dev/null 2>&1
}
if ! apt_install "${missing[@]}"; then
  # One unavailable package must not keep the others out.
  for pkg in "${missing[@]}"; do
    apt_install "$pkg" || warn "could not install $pkg; the tests that need it will skip"
  done
fi
exit 0
