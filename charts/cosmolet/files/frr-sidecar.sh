#!/bin/bash
# FRR in a container: the cosmolet chart's hybrid-mode sidecar (zebra, and bfdd with BFD), and the
# containerlab switches and nodes. Start FRR as its init script does (watchfrr starts the daemons
# named in /etc/frr/daemons, applies /etc/frr/frr.conf with `vtysh -b` and restarts any daemon
# that dies), and exit when FRR is no longer running, so that the container is restarted.
# SIGTERM stops FRR, even during the start.
set -eu
trap '/usr/lib/frr/frrinit.sh stop; exit 0' TERM INT
/usr/lib/frr/frrinit.sh start
while /usr/lib/frr/frrinit.sh status >/dev/null 2>&1; do
  sleep 5 & wait $!
done
echo "frr-sidecar: FRR stopped running" >&2
exit 1
