"""The ``cosmolet`` command line: one subcommand per job, each a thin shell over a module.

Exit codes: 0 success, 1 runtime failure, 2 bad input (config, objects file, arguments).
Logs go to stderr in every subcommand: stdout carries only what the command prints (a rendered
file, a plan, and for ``agent`` the ExaBGP command pipe).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosmolet import __version__, logs
from cosmolet.config.checks import router_id_warnings, warnings_for
from cosmolet.config.loader import load_config, node_ip
from cosmolet.config.schema import Config, ConfigError
from cosmolet.engine.objects import Malformed, Record, decode_all
from cosmolet.engine.peers import ResolvedPeers
from cosmolet.engine.plan import plan_from_documents
from cosmolet.sources.objects_file import ObjectsFileError, load_documents

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
#: ``cosmolet diff``: some node's routes change (for CI, as diff(1))
EXIT_CHANGED = 1

NO_OLD_CONFIG = """diff: give --old-config FILE, the config the agents run now.
diff cannot ask the agents for it: each serves its plan on /status on its node's loopback only
(http.statusListen). The config in force is in git (git show HEAD:path/to/config.yaml) or in
the cluster (kubectl get configmap cosmolet -n NAMESPACE -o jsonpath='{.data.config\\.yaml}')."""


def _load(path: str) -> Config | None:
    """Load a config, printing one line per problem to stderr on failure."""
    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.source}: {problem}", file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if config is None:
        return EXIT_BAD_INPUT
    for warning in warnings_for(config) + router_id_warnings(config, node_ip()):
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    peers = len(config.bgp.peers) if config.mode == "numbered" else len(config.bgp.interfaces)
    what = "peers" if config.mode == "numbered" else "fabric interfaces"
    print(
        f"{args.file}: valid: mode {config.mode}, AS {config.bgp.asn}, {peers} {what}, "
        f"BGP {'enabled' if config.bgp.enabled else 'disabled (dry run)'}"
    )
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    node_name = args.node or config.node_name
    if not node_name:
        print("plan: give --node NAME (or nodeName / NODE_NAME)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        documents = load_documents(args.objects)
    except ObjectsFileError as error:
        print(f"plan: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    plan = plan_from_documents(config, node_name, documents)
    json.dump(plan.to_json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


def _load_for_run(args: argparse.Namespace) -> Config | None:
    """Load the config for ``render``/``start``/``agent``, applying ``--node`` and its logging
    level and format (still to stderr)."""
    config = _load(args.config)
    if config is None:
        return None
    logs.configure(config.logging.level, config.logging.format)
    node = getattr(args, "node", None)
    if node:
        config = config.model_copy(update={"node_name": node})
    return config


def _source_args(args: argparse.Namespace) -> list[str]:
    """The agent arguments that ``start`` passes through."""
    extra: list[str] = []
    if getattr(args, "node", None):
        extra += ["--node", args.node]
    if args.objects:
        extra += ["--objects", str(Path(args.objects).resolve())]
    if getattr(args, "kubeconfig", None):
        extra += ["--kubeconfig", str(Path(args.kubeconfig).resolve())]
    return extra


def cmd_render(args: argparse.Namespace) -> int:
    """ExaBGP's configuration for this node (``--node``), its peers resolved from the Node in
    ``--objects`` or the API server's (``--kubeconfig``) and this machine's interfaces; or the
    node's FRR configuration. Problems with peer entries go to stderr."""
    config = _load_for_run(args)
    if config is None:
        return EXIT_BAD_INPUT
    from cosmolet.exabgp import config as exabgp_config
    from cosmolet.exabgp import supervisor as start

    node = None
    if args.objects or args.kubeconfig:
        node = start.read_node(config.node_name, args.objects, args.kubeconfig)
    if args.what == "frr":
        return _render_frr(config, start.discovered_links(config), start.resolve(config, node))
    try:
        text = exabgp_config.render(
            config,
            start.agent_command(Path(args.config).resolve(), _source_args(args)),
            links=start.discovered_links(config),
            peers=start.resolve(config, node),
        )
    except exabgp_config.RenderError as error:
        print(f"{args.config}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(text)
    return EXIT_OK


def _render_frr(config: Config, links: set[Any], resolved: ResolvedPeers) -> int:
    from cosmolet.engine.peers import bfd_links
    from cosmolet.hybrid import frr_config

    if config.mode != "hybrid" and not config.bgp.bfd.enabled:
        print(
            "render frr: only hybrid mode, or numbered mode with bgp.bfd.enabled, runs FRR",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    present = os.listdir("/sys/class/net") if os.path.isdir("/sys/class/net") else []
    if config.mode == "numbered":  # bfdd's peers: the resolved single-hop peers
        links = set(bfd_links(config, resolved))
    sys.stdout.write(
        frr_config.render(config, frr_config.fabric_interfaces(config, present), links)
    )
    return EXIT_OK


def cmd_start(args: argparse.Namespace) -> int:
    config = _load_for_run(args)
    if config is None:
        return EXIT_BAD_INPUT
    from cosmolet.exabgp import config as exabgp_config
    from cosmolet.exabgp import supervisor as start

    if not config.node_name:
        print("start: nodeName is empty: set it, NODE_NAME, or --node", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.objects and not Path(args.objects).exists():
        print(f"start: --objects {args.objects}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    for warning in warnings_for(config):
        logs.get("cosmolet.exabgp.supervisor").warning("config warning", problem=str(warning))
    node = start.read_node(config.node_name, args.objects, args.kubeconfig)
    try:
        conf = start.prepare(config, Path(args.config), _source_args(args), node)
    except exabgp_config.RenderError as error:
        print(f"{args.config}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"start: cannot prepare {config.runtime_dir}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return start.supervise(config, conf)


def cmd_agent(args: argparse.Namespace) -> int:
    config = _load_for_run(args)
    if config is None:
        return EXIT_BAD_INPUT
    from cosmolet.agent import main as agent
    from cosmolet.exabgp import config as exabgp_config
    from cosmolet.sources import Source

    source: Source
    if args.objects:
        from cosmolet.sources.file import FileSource

        source = FileSource(Path(args.objects), config, config.node_name)
    else:
        from cosmolet.sources.kube import KubeSource

        source = KubeSource(config, config.node_name, args.kubeconfig)
    # The sessions of the configuration in force are read from the runtime directory; these,
    # from the config alone, only stand in where no record is there.
    return agent.main(config, source, exabgp_config.sessions(config))


def _diff_objects(args: argparse.Namespace) -> tuple[list[Record], list[Malformed]] | None:
    """The objects file's, or the cluster's; ``None`` (after saying why) when unreadable."""
    if args.objects:
        try:
            return decode_all(load_documents(args.objects))
        except ObjectsFileError as error:
            print(f"diff: {error}", file=sys.stderr)
            return None
    from cosmolet.kube.snapshot import SnapshotError, snapshot

    try:
        return snapshot(args.kubeconfig)
    except SnapshotError as error:
        print(f"diff: {error}", file=sys.stderr)
        return None


def cmd_diff(args: argparse.Namespace) -> int:
    """Exit 0 when no node's routes change, 1 when some do, 2 for bad input or no cluster."""
    from cosmolet import plan_diff

    if not args.old_config:
        print(NO_OLD_CONFIG, file=sys.stderr)
        return EXIT_BAD_INPUT
    old, new = _load(args.old_config), _load(args.config)
    if old is None or new is None:
        return EXIT_BAD_INPUT
    objects = _diff_objects(args)
    if objects is None:
        return EXIT_BAD_INPUT
    records, malformed = objects
    nodes = [args.node] if args.node else plan_diff.node_names(records)
    if not nodes:
        print("diff: no Node objects to plan for: give --node NAME", file=sys.stderr)
        return EXIT_BAD_INPUT
    diffs = plan_diff.diff_nodes(old, new, nodes, records, malformed)
    if args.json:
        json.dump(plan_diff.to_json(diffs), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(plan_diff.format_text(diffs))
    return EXIT_CHANGED if any(diff.routes_change for diff in diffs) else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    url = args.url.rstrip("/") + "/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            data = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"status: cannot read {url}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print(format_status(data))
    return EXIT_OK


def format_status(data: dict[str, Any]) -> str:
    """A human table of peers and routes, from ``/status``."""
    ready = "ready" if data.get("ready") else f"NOT READY: {data.get('reason')}"
    dry = "" if data.get("bgpEnabled", True) else "  (bgp.enabled false: dry run)"
    lines = [f"node {data.get('node')}: {ready}{dry}", ""]
    if data.get("asn") is not None:
        lines[-1:-1] = [
            f"AS {data['asn']} (from {data.get('asnFrom')}), router id {data.get('routerId')} "
            f"(from {data.get('routerIdFrom')})"
        ]
    peers = data.get("peers", [])
    lines.append(f"{'PEER':<28} {'INTERFACE':<10} {'STATE':<8} {'SINCE':<21} {'ROUTES':<7} ORIGIN")
    for peer in peers:
        lines.append(
            f"{peer['address']:<28} {peer.get('interface') or '-':<10} {peer['state']:<8} "
            f"{peer.get('since') or '-':<21} {peer['routes']:<7} {peer.get('origin') or '-'}"
        )
    for problem in data.get("peerProblems", []):
        lines.append(f"problem: {problem['entry']}: {problem['problem']}")
    for unused in data.get("peerEntriesUnused", []):
        lines.append(f"not used here: {unused['entry']}: {unused['reason']}")
    routes = data.get("routes", [])
    lines += ["", f"{'PREFIX':<28} {'KIND':<10} {'PEERS':<6} SERVICES"]
    for route in routes:  # an aggregate names no Service, only how many
        names = ", ".join(route["services"]) or f"{route.get('serviceCount', 0)} Services inside"
        kind = route.get("kind", "cluster")
        lines.append(f"{route['prefix']:<28} {kind:<10} {len(route['peers']):<6} {names}")
    lines += ["", f"{len(routes)} routes, {len(peers)} peers"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cosmolet",
        description="Advertise healthy Kubernetes Service IPs to a BGP fabric through ExaBGP.",
    )
    parser.add_argument("--version", action="version", version=f"cosmolet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", help="the YAML config file")
    check.set_defaults(func=cmd_check_config)

    plan = sub.add_parser("plan", help="print the routes a node would advertise, as JSON")
    plan.add_argument("--config", required=True, help="the YAML config file")
    plan.add_argument("--node", help="the node name (default: nodeName or NODE_NAME)")
    plan.add_argument(
        "--objects", required=True, help="Services, EndpointSlices and Nodes (kubectl -o json/yaml)"
    )
    plan.set_defaults(func=cmd_plan)

    render = sub.add_parser("render", help="print a rendered configuration")
    render.add_argument("what", choices=["exabgp", "frr"], help="which configuration")
    render.add_argument("--config", required=True, help="the YAML config file")
    render.add_argument("--node", help="the node name (default: nodeName or NODE_NAME)")
    render.add_argument("--objects", help="as given to start (passed to the agent)")
    render.add_argument("--kubeconfig", help="as given to start (passed to the agent)")
    render.set_defaults(func=cmd_render)

    status = sub.add_parser("status", help="peers and routes of a running agent")
    status.add_argument(
        "--url",
        default="http://127.0.0.1:9180",
        help="the agent's /status address (http.statusListen; in a cluster, run this command "
        "in the agent's pod with kubectl exec)",
    )
    status.add_argument("--json", action="store_true", help="print /status as JSON")
    status.set_defaults(func=cmd_status)

    _add_diff(sub)

    for name, func, text in (
        ("start", cmd_start, "render ExaBGP's config and run ExaBGP with the agent"),
        ("agent", cmd_agent, "the ExaBGP API process (started by ExaBGP, not by hand)"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--config", required=True, help="the YAML config file")
        command.add_argument("--node", help="the node name (default: nodeName or NODE_NAME)")
        command.add_argument(
            "--objects", help="read cluster state from this kubectl -o json/yaml file"
        )
        command.add_argument(
            "--kubeconfig",
            help="kubeconfig of the API server (default: KUBECONFIG, else in-cluster)",
        )
        command.set_defaults(func=func)
    return parser


def _add_diff(sub: Any) -> None:
    diff = sub.add_parser(
        "diff",
        help="preview a config change: the routes each node would add, remove or change",
        description="Plan every node (or --node) under --old-config and --config, against the "
        "same objects (an objects file, or the cluster's), and print the routes that differ.",
        epilog="exit status: 0 no route changes, 1 routes change, 2 bad input or no cluster",
    )
    diff.add_argument("--config", required=True, metavar="NEW", help="the new config")
    diff.add_argument(
        "--old-config", metavar="OLD", help="the config in force (required: see its error)"
    )
    source = diff.add_mutually_exclusive_group()
    source.add_argument(
        "--kubeconfig",
        help="read the cluster's Services, EndpointSlices and Nodes (default: KUBECONFIG, "
        "else in-cluster, else ~/.kube/config)",
    )
    source.add_argument(
        "--objects", metavar="FILE", help="read them from this kubectl -o json/yaml file"
    )
    diff.add_argument(
        "--node", metavar="NAME", help="only this node (default: every Node in the objects)"
    )
    diff.add_argument("--json", action="store_true", help="print the difference as JSON")
    diff.set_defaults(func=cmd_diff)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # structlog's default logger prints to stdout, which is the rendered file of ``render`` and
    # ExaBGP's command pipe for ``agent``: send every line to stderr before anything can log.
    logs.configure()
    try:
        result: int = args.func(args)
    except BrokenPipeError:  # `cosmolet plan ... | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return result


if __name__ == "__main__":
    sys.exit(main())
