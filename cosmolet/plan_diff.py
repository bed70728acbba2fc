"""``cosmolet diff``: what a config change would do to each node's routes, before GitOps
applies it. Both plans come from the engine (``plan_from_records``, pure) over the same
objects, so the difference is the config's alone.

Routes are what the fabric sees, so they alone make a difference (and the exit status 1):
prefixes added, removed, and those whose path attributes change. A route that only gains or
loses a Service sharing its prefix is no change on the wire. Skipped items are summed up per
node in one line (``cosmolet plan`` lists them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from cosmolet.config.schema import Config
from cosmolet.engine.model import BYTES_PER_MBPS, Attributes, Plan, Route, RouteKind, route_json
from cosmolet.engine.objects import Malformed, Node, Record
from cosmolet.engine.plan import plan_from_records

#: How each attribute is named in the JSON and the text (as in ``cosmolet plan``).
ATTRIBUTE_NAMES = {
    "communities": "communities",
    "large_communities": "largeCommunities",
    "local_preference": "localPreference",
    "med": "med",
    "as_path_prepend": "asPathPrepend",
    "link_bandwidth": "linkBandwidthMbps",
}


@dataclass(frozen=True)
class NodeDiff:
    """One node's routes under the old config and the new one."""

    node: str
    added: tuple[Route, ...] = ()
    removed: tuple[Route, ...] = ()
    #: (old, new) for a prefix wanted under both whose attributes differ
    changed: tuple[tuple[Route, Route], ...] = ()
    skips_added: int = 0
    skips_removed: int = 0

    @property
    def routes_change(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff_plans(old: Plan, new: Plan) -> NodeDiff:
    """The difference between two plans of one node."""
    before = {route.prefix: route for route in old.routes}
    after = {route.prefix: route for route in new.routes}
    old_skips, new_skips = set(old.skipped), set(new.skipped)
    return NodeDiff(
        node=new.node,
        added=tuple(route for prefix, route in after.items() if prefix not in before),
        removed=tuple(route for prefix, route in before.items() if prefix not in after),
        changed=tuple(
            (before[prefix], route)
            for prefix, route in after.items()
            if prefix in before and before[prefix].attributes != route.attributes
        ),
        skips_added=len(new_skips - old_skips),
        skips_removed=len(old_skips - new_skips),
    )


def node_names(records: Iterable[Record]) -> list[str]:
    """Every Node among the records, by name."""
    return sorted({r.metadata.name for r in records if isinstance(r, Node)})


def diff_nodes(
    old: Config,
    new: Config,
    nodes: Iterable[str],
    records: Sequence[Record],
    malformed: Sequence[Malformed] = (),
) -> list[NodeDiff]:
    """Each node's plan under ``old`` and ``new``, against the same objects."""
    return [
        diff_plans(
            plan_from_records(old, node, records, malformed),
            plan_from_records(new, node, records, malformed),
        )
        for node in nodes
    ]


def _attributes(attributes: Attributes) -> dict[str, object]:
    values = {}
    for field in fields(attributes):
        value = getattr(attributes, field.name)
        if field.name == "link_bandwidth" and value is not None:
            value /= BYTES_PER_MBPS  # as ``cosmolet plan`` shows it
        values[ATTRIBUTE_NAMES[field.name]] = list(value) if isinstance(value, tuple) else value
    return values


def _route(route: Route) -> dict[str, object]:
    return {**route_json(route), **_attributes(route.attributes)}


def _names(route: Route) -> str:
    """Its Services, or how many an aggregate holds (it names none)."""
    if route.kind is RouteKind.AGGREGATE:
        return f"aggregate of {route.members} Service{'s' if route.members != 1 else ''}"
    return ", ".join(route.services)


def to_json(diffs: Sequence[NodeDiff]) -> dict[str, object]:
    """Every node, changed or not, for machines."""
    return {
        "changed": any(diff.routes_change for diff in diffs),
        "nodes": [
            {
                "node": diff.node,
                "added": [_route(route) for route in diff.added],
                "removed": [_route(route) for route in diff.removed],
                "changed": [
                    {
                        "prefix": new.prefix,
                        "old": _attributes(old.attributes),
                        "new": _attributes(new.attributes),
                    }
                    for old, new in diff.changed
                ],
                "skipsAdded": diff.skips_added,
                "skipsRemoved": diff.skips_removed,
            }
            for diff in diffs
        ],
    }


def _value(value: object) -> str:
    if value is None or value == []:
        return "-"
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _attribute_changes(old: Attributes, new: Attributes) -> str:
    before, after = _attributes(old), _attributes(new)
    return "; ".join(
        f"{name} {_value(before[name])} -> {_value(after[name])}"
        for name in before
        if before[name] != after[name]
    )


def format_text(diffs: Sequence[NodeDiff]) -> str:
    """For people: the nodes where something changes, then one summary line."""
    lines: list[str] = []
    for diff in diffs:
        if not diff.routes_change and not (diff.skips_added or diff.skips_removed):
            continue
        if diff.routes_change:
            counts = f"{len(diff.added)} added, {len(diff.removed)} removed"
            lines.append(f"node {diff.node}: {counts}, {len(diff.changed)} changed")
        else:
            lines.append(f"node {diff.node}: no route changes")
        lines += [f"  + {r.prefix:<26} {_names(r)}" for r in diff.added]
        lines += [f"  - {r.prefix:<26} {_names(r)}" for r in diff.removed]
        lines += [
            f"  ~ {new.prefix:<26} {_attribute_changes(old.attributes, new.attributes)}"
            for old, new in diff.changed
        ]
        if diff.skips_added or diff.skips_removed:
            lines.append(
                f"  skipped items: {diff.skips_added} new, {diff.skips_removed} gone "
                "(cosmolet plan lists them)"
            )
    changing = [diff for diff in diffs if diff.routes_change]
    if not changing:
        lines.append(f"no route changes on {len(diffs)} node{'s' if len(diffs) != 1 else ''}")
    else:
        added = sum(len(diff.added) for diff in changing)
        removed = sum(len(diff.removed) for diff in changing)
        changed = sum(len(diff.changed) for diff in changing)
        lines.append(
            f"routes change on {len(changing)} of {len(diffs)} nodes: "
            f"{added} added, {removed} removed, {changed} changed"
        )
    return "\n".join(lines)
