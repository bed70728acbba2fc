#!/bin/bash
# FRR in a container: the cosmolet chart's sidecar (hybrid mode: zebra, and bfdd with BFD;
# numbered mode with BFD: zebra and bfdd), and the containerlab switches and nodes. Start FRR as its init script does (watchfrr starts the daemons
# named in /etc/frr/daemons, applies /etc/frr/frr.conf with `vtysh -b` and restarts any daemon
# that dies), and exit when FRR is no longer running, so that the container is restarted.
#
# SIGTERM stops FRR, even during the start; but on a node (no bgpd here) only once this host's
# BGP sessions have closed, for at most FRR_STOP_WAIT_SECONDS (default 25; the chart sets it
# below the pod's grace period). The pod's containers get SIGTERM together: if bfdd went first,
# the switch would see BFD go down and drop the node's routes at once (Cease/BFD Down), where
# ExaBGP closing its sessions first leaves them stale under graceful restart.
set -eu

bgp_sessions_open() {
  ss -Htn state established '( dport = :179 )' | grep -q .
}

stop() {
  if ! grep -q '^bgpd=yes' /etc/frr/daemons 2>/dev/null; then
    deadline=$((SECONDS + ${FRR_STOP_WAIT_SECONDS:-25}))
    while [ "$SECONDS" -lt "$deadline" ] && bgp_sessions_open; do
      sleep 0.2
    done
  fi
  /usr/lib/frr/frrinit.sh stop
}

trap 'stop; exit 0' TERM INT
/usr/lib/frr/frrinit.sh start
while /usr/lib/frr/frrinit.sh status >/dev/null 2>&1; do
  sleep 5 & wait $!
done
echo "frr-sidecar: FRR stopped running" >&2
exit 1
