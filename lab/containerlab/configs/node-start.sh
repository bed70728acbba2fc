#!/bin/bash
# A cosmolet node in containerlab: in hybrid mode FRR's zebra first (router advertisements, with
# the Helm chart's own sidecar script and daemons file), then cosmolet, reading its Services from
# /config/objects.yaml (edit lab/containerlab/configs/objects.yaml: the directory is mounted).
set -eu
if [ "$LAB_MODE" = numbered ]; then
  config=/config/numbered.yaml  # one config for both nodes: each derives its own peers
else
  config="/config/$NODE_NAME-$LAB_MODE.yaml"
fi
for ip in 10.96.0.10 10.96.0.11 fd00:96::11 198.51.100.10 192.0.2.66 10.96.0.12; do ip addr add "$ip" dev lo; done
if [ "$LAB_MODE" = hybrid ]; then
  cp /chart-files/frr-daemons /etc/frr/daemons
  cp /config/vtysh.conf /etc/frr/vtysh.conf
  cosmolet render frr --config "$config" > /etc/frr/frr.conf
  bash /chart-files/frr-sidecar.sh &
fi
exec cosmolet start --config "$config" --objects /config/objects.yaml
