"""A cosmolet node of the lab: ``cosmolet start`` in a namespace, with its config, its objects
file or kubeconfig, and its log (JSON lines)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.netns import Namespace

FETCH = (
    "import sys, urllib.request, urllib.error\n"
    "try:\n"
    "    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
    "    print(r.status); print(r.read().decode())\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(e.code); print(e.read().decode())\n"
)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


#: The agent's ports by default: probes and metrics (http.listen), /status (http.statusListen).
HTTP_PORT, STATUS_PORT = 9179, 9180


def http_get(
    ns: Namespace, path: str, port: int | None = None, host: str = "127.0.0.1"
) -> tuple[int, str]:
    """GET http://HOST:PORT<path> from inside a node's namespace (``/status`` from the
    status listener, everything else from http.listen, unless ``port`` says otherwise)."""
    if port is None:
        port = STATUS_PORT if path.split("?")[0] == "/status" else HTTP_PORT
    where = f"[{host}]" if ":" in host else host
    out = ns.run(sys.executable, "-c", FETCH, f"http://{where}:{port}{path}")
    code, _, body = out.partition("\n")
    return int(code), body


def metric_samples(ns: Namespace) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the agent's /metrics: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    _, text = http_get(ns, "/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def unprivileged(uid: int, scratch: Path, gid: int | None = None) -> list[str]:
    """A command prefix that runs what follows as ``uid`` (group ``gid``, by default ``uid``)
    with no capability at all.

    When this interpreter lives under root's 0700 home (pyenv on the lab machines), ``uid``
    could not even start it: then a private mount namespace puts a traversable directory over
    /root holding only a bind of the interpreter's tree. The host's /root is not touched.
    """
    setpriv = [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid if gid is None else gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ]
    interpreter = Path(os.path.realpath(sys.executable))
    if not interpreter.is_relative_to("/root"):
        return setpriv
    tree = Path("/root") / interpreter.relative_to("/root").parts[0]
    veneer = scratch / "root-veneer"
    (veneer / tree.name).mkdir(parents=True, exist_ok=True)
    veneer.chmod(0o755)
    script = (
        f"mount --bind {tree} {veneer / tree.name} && mount --rbind {veneer} /root && "
        f'exec {" ".join(setpriv)} "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


@dataclass
class Cosmolet:
    """``cosmolet start`` running in a node namespace, fed by an objects file."""

    ns: Namespace
    directory: Path
    config: dict[str, Any]
    kubeconfig: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  # added to the environment at start
    #: run as this uid (its group too) with no capability at all, as the chart's container does
    uid: int | None = None
    #: and this group instead of the uid's (OpenShift runs arbitrary uids in group 0)
    gid: int | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = self.directory / "cosmolet.log"
        self.config.setdefault("runtimeDir", str(self.directory / "run"))
        self.config.setdefault("logging", {"level": "info", "format": "json"})
        self.config_path.write_text(yaml.safe_dump(self.config))

    @property
    def config_path(self) -> Path:
        return self.directory / "config.yaml"

    @property
    def objects_path(self) -> Path:
        return self.directory / "objects.json"

    def set_objects(self, objects: list[dict[str, Any]]) -> None:
        """Atomically replace the cluster state the agent reads."""
        temporary = self.objects_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"kind": "List", "items": objects}))
        os.replace(temporary, self.objects_path)

    def start(self) -> Cosmolet:
        if self.kubeconfig:
            source = ["--kubeconfig", str(self.kubeconfig)]
        else:
            if not self.objects_path.exists():
                self.set_objects([])
            source = ["--objects", str(self.objects_path)]
        drop: list[str] = []
        if self.uid is not None:
            for path in (self.directory, *self.directory.rglob("*")):
                os.chown(path, self.uid, self.uid if self.gid is None else self.gid)
            drop = unprivileged(self.uid, self.directory, self.gid)
        self.process = self.ns.popen(
            *drop,
            sys.executable,
            "-m",
            "cosmolet",
            "start",
            "--config",
            str(self.config_path),
            *source,
            log=self.log,
            env={**os.environ, **self.env} if self.env else None,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.process = None

    def agent_pid(self) -> int:
        return int((self.directory / "run" / "agent.pid").read_text())

    def exabgp_pid(self) -> int:
        """ExaBGP is the agent's parent (the agent is its API process)."""
        stat = Path(f"/proc/{self.agent_pid()}/stat").read_text()
        return int(stat.rsplit(") ", 1)[1].split()[1])

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(line))
        return lines
