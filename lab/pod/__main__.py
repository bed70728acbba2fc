"""``python -m lab.pod``: run a rendered workload's pod on a lab node until SIGTERM or Ctrl-C,
then delete it as the kubelet would (SIGTERM, SIGKILL after the grace period)."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

import lab.pod
from lab.pod import ApiEndpoint, Image, LabNode, PodError, PodRunner, ServiceAccount

DOCKERFILE = Path(__file__).parents[2] / "Dockerfile"


def _documents(paths: list[str]) -> list[dict[str, Any]]:
    documents = []
    for path in paths:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        documents += [doc for doc in yaml.safe_load_all(text) if doc]
    return documents


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m lab.pod",
        description=lab.pod.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parse.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="manifests: the rendered chart (one workload), and any ConfigMaps and Secrets "
        "its volumes and env refer to; - for stdin; repeatable",
    )
    parse.add_argument("--netns", required=True, help="the lab node's network namespace")
    parse.add_argument("--node", required=True, help="the Node's name (spec.nodeName)")
    parse.add_argument(
        "--node-ip",
        action="append",
        required=True,
        metavar="IP",
        help="the Node's InternalIP (status.hostIP: the first); repeatable",
    )
    parse.add_argument(
        "--node-label", action="append", default=[], metavar="KEY=VALUE", help="for nodeSelector"
    )
    parse.add_argument("--workload", default="", help="which workload, if there are several")
    parse.add_argument(
        "--api-host", default="127.0.0.1", help="KUBERNETES_SERVICE_HOST (default 127.0.0.1)"
    )
    parse.add_argument("--api-port", type=int, help="KUBERNETES_SERVICE_PORT; none: no API env")
    parse.add_argument(
        "--service-account-dir",
        type=Path,
        metavar="DIR",
        help="DIR/token and DIR/ca.crt: the pod's ServiceAccount credentials "
        "(python -m lab.apiserver --tls-dir writes them)",
    )
    images = parse.add_mutually_exclusive_group()
    images.add_argument(
        "--image", help="image mode: this image of the docker engine, instead of the host's install"
    )
    images.add_argument(
        "--image-archive",
        type=Path,
        metavar="TAR",
        help="image mode without an engine: a docker save archive (make image writes one)",
    )
    parse.add_argument(
        "--dockerfile", type=Path, default=DOCKERFILE, help="host mode: ENTRYPOINT, CMD, USER"
    )
    parse.add_argument(
        "--host-bin", type=Path, help="host mode: where cosmolet is (default: this venv's bin)"
    )
    parse.add_argument("--workdir", type=Path, help="the pod's directory (logs, volumes)")
    parse.add_argument("--backoff", type=float, default=10.0, help="restart back-off, seconds")
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    labels = dict(label.split("=", 1) for label in args.node_label)
    node = LabNode(args.node, args.netns, tuple(args.node_ip), labels)
    if args.image:
        image = Image.from_docker(args.image)
    elif args.image_archive:
        image = Image.from_archive(args.image_archive)
    else:
        image = Image.from_dockerfile(args.dockerfile)
    account = None
    if args.service_account_dir:
        account = ServiceAccount(
            (args.service_account_dir / "token").read_text().strip(),
            (args.service_account_dir / "ca.crt").read_bytes(),
        )
    api = ApiEndpoint(args.api_host, args.api_port) if args.api_port else None
    directory = args.workdir or Path(tempfile.mkdtemp(prefix="lab-pod-"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        runner = PodRunner(
            _documents(args.filename),
            node,
            directory,
            image,
            api,
            account,
            args.workload,
            args.backoff,
            args.host_bin,
        ).start()
    except PodError as error:
        print(f"lab.pod: {error}", file=sys.stderr)
        return 2
    print(f"pod {runner.pod.namespace}/{runner.pod.name}: {directory}", flush=True)
    shown = 0
    while not stop.wait(0.5):
        for when, what in runner.events[shown:]:
            print(f"{when:8.2f}s {what}", flush=True)
        shown = len(runner.events)
    took = runner.delete()
    for when, what in runner.events[shown:]:
        print(f"{when:8.2f}s {what}", flush=True)
    print(f"pod deleted in {took:.2f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
