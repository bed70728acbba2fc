"""The fabric-economy benchmark's cluster (``lab.bench.economy``): S ClusterIP Services over N
nodes in two racks, their pods placed at random (seeded), under four policy mixes.

Service ``i`` has the ClusterIP ``10.96.0.0/16 + i + 1`` and 1 to 3 ready pods, on as many
distinct nodes drawn at random (the scheduler spreads a Deployment's replicas when it can). The
mixes differ only by ``internalTrafficPolicy`` and the agents' config:

- ``cluster``: every Service Cluster: every node advertises every ClusterIP;
- ``local``: every Service Local: only its pods' nodes advertise it;
- ``mixed``: every fifth Service Local (``i % 5 == 0``), the rest Cluster;
- ``aggregate``: the ``mixed`` Services with ``services.advertise.clusterIP.aggregate:
  [10.96.0.0/16]``: every node advertises the /16 (a Cluster Service in it is healthy), and
  the Local ClusterIPs still one by one, from their pods' nodes.

``prefixes``, ``advertised`` and ``groups`` say what the fabric should then hold, so that the
measured figures are checked against the model, and the model can be run on paper (``paper``)
for a fleet too big for this machine.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from lab.bench.fleet_objects import endpoint_slice, service_names

MIXES = ("cluster", "local", "mixed", "aggregate")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
AGGREGATE = str(SERVICE_CIDR)
#: in ``mixed`` and ``aggregate``, one Service in this many is Local
LOCAL_EVERY = 5


@dataclass(frozen=True)
class Placement:
    """S Services over N nodes (numbered from 1), racks of ``rack_size`` consecutive nodes."""

    nodes: int
    services: int
    rack_size: int
    seed: int = 23

    @cached_property
    def pods(self) -> list[tuple[int, ...]]:
        """Service -> the nodes holding its pods (1 to 3 distinct nodes)."""
        rng = random.Random(self.seed)
        everyone = range(1, self.nodes + 1)
        return [
            tuple(sorted(rng.sample(everyone, min(self.nodes, rng.randint(1, 3)))))
            for _ in range(self.services)
        ]

    @staticmethod
    def cluster_ip(index: int) -> str:
        return str(SERVICE_CIDR[index + 1])

    @staticmethod
    def local(mix: str, index: int) -> bool:
        return mix == "local" or (mix in ("mixed", "aggregate") and index % LOCAL_EVERY == 0)

    names = staticmethod(service_names)

    def rack(self, node: int) -> int:
        return (node - 1) // self.rack_size + 1

    def prefixes(self, mix: str) -> dict[str, tuple[dict[int, int], bool]]:
        """Prefix -> (node -> its endpoints behind the prefix, whether its routes are weighted)
        under ``mix`` once converged: a Local ClusterIP from its pods' nodes, weighted (weighted
        ECMP, the default); a Cluster one from every node, plain; in ``aggregate`` the Cluster
        ones as the CIDR, from every node, plain."""
        everyone = dict.fromkeys(range(1, self.nodes + 1), 1)
        found: dict[str, tuple[dict[int, int], bool]] = {}
        for index, pods in enumerate(self.pods):
            if self.local(mix, index):
                found[f"{self.cluster_ip(index)}/32"] = (dict(Counter(pods)), True)
            elif mix == "aggregate":
                found[AGGREGATE] = (everyone, False)
            else:
                found[f"{self.cluster_ip(index)}/32"] = (everyone, False)
        return found

    def advertised(self, mix: str) -> dict[int, set[str]]:
        """Node -> the prefixes it advertises under ``mix`` once converged."""
        found: dict[int, set[str]] = {node: set() for node in range(1, self.nodes + 1)}
        for prefix, (nodes, _) in self.prefixes(mix).items():
            for node in nodes:
                found[node].add(prefix)
        return found

    def groups(self, mix: str, spine_weighted: bool) -> dict[str, int]:
        """Router -> the ECMP groups it needs under ``mix``: one per distinct set of two or more
        next hops with their weights (as ratios: FRR installs them as shares of 100). At leaf
        ``r`` the next hops are its rack's nodes advertising the prefix; at the spine the racks
        that do. ``spine_weighted``: the leaves re-advertise the sum of their paths' link
        bandwidth (``set extcommunity bandwidth cumulative``); FRR 8.4 sets it only on a route
        it holds as multipath, and the spine weighs only when every path has one, so a prefix
        is weighted there only when every rack advertising it has two nodes or more doing so."""
        racks = range(1, (self.nodes - 1) // self.rack_size + 2)
        sets: dict[str, set[frozenset[tuple[int, int]]]] = {f"leaf{r}": set() for r in racks}
        sets["spine"] = set()
        for nodes, weighted in self.prefixes(mix).values():
            behind: Counter[int] = Counter()
            multipath = True
            for rack in racks:
                here = {node: n for node, n in nodes.items() if self.rack(node) == rack}
                if here:
                    behind[rack] = sum(here.values())
                    multipath = multipath and len(here) > 1
                if len(here) > 1:
                    sets[f"leaf{rack}"].add(_group(here, weighted))
            if len(behind) > 1:
                sets["spine"].add(_group(behind, weighted and spine_weighted and multipath))
        return {router: len(found) for router, found in sets.items()}

    def service(self, index: int, mix: str) -> dict[str, Any]:
        namespace, name = self.names(index)
        address = self.cluster_ip(index)
        return {
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": address,
                "clusterIPs": [address],
                "internalTrafficPolicy": "Local" if self.local(mix, index) else "Cluster",
                "ports": [{"port": 5000, "protocol": "UDP"}],
            },
        }

    def endpoint_slice(self, index: int) -> dict[str, Any]:
        return endpoint_slice(index, ((node, True) for node in self.pods[index]))

    def objects(self, mix: str) -> list[dict[str, Any]]:
        return [
            obj
            for index in range(self.services)
            for obj in (self.service(index, mix), self.endpoint_slice(index))
        ]


def _group(weights: dict[int, int], weighted: bool) -> frozenset[tuple[int, int]]:
    """A next-hop group: its members with their weights reduced to ratios (0: unweighted)."""
    common = math.gcd(*weights.values())
    return frozenset((hop, weight // common if weighted else 0) for hop, weight in weights.items())


def paper(
    nodes: int, services: int, rack_size: int, spine_weighted: bool, seed: int = 23
) -> dict[str, Any]:
    """The model alone, for a fleet too big for this machine: groups per leaf (the most any
    leaf needs) and at the spine, per mix."""
    placement = Placement(nodes, services, rack_size, seed)
    result: dict[str, Any] = {"nodes": nodes, "services": services, "rack_size": rack_size}
    for mix in MIXES:
        groups = placement.groups(mix, spine_weighted)
        spine = groups.pop("spine")
        result[mix] = {"leaf_groups_max": max(groups.values()), "spine_groups": spine}
    return result
