"""One run of one container: a process tree in its own mount and PID namespaces, in the pod's
network namespace, on a root filesystem of its own, as the pod's identity.

The command line is two shell scripts, so that what happens can be read in ``ps`` and in the
container's log:

1. ``outside`` runs as root in a fresh private mount namespace made from the pod's sandbox
   (its emptyDir tmpfs mounts, its network namespace). It mounts the root filesystem, an
   overlay whose lower layer is the host's ``/`` (host mode) or the unpacked image, with the
   writable layer on a tmpfs of its own (so a restarted container starts from a clean layer),
   binds ``/dev``, mounts a ``/proc`` and a ``/sys`` of this network namespace, puts the pod's
   volumes at ``/.lab-pod`` and, in host mode, a traversable directory over ``/root`` that holds
   only the interpreter's tree (``lab.node.unprivileged``'s veneer, here inside the container's
   own root). Then it chroots.
2. ``inside`` binds each volume at its ``mountPath`` (``readOnly`` as a read-only bind),
   removes ``/.lab-pod``, makes ``/`` read-only for ``readOnlyRootFilesystem`` and execs the
   command through ``setpriv`` (uid, gid, groups, capability bounding set, no_new_privs) and
   ``env -i`` (exactly the container's environment).

The command is PID 1 of the run's PID namespace (``unshare --fork``: ``unshare`` waits and exits
as its child did), so signals and the end of the main process behave as in a container. Every
process of the container is also found by its mount namespace, which nothing else shares: that
is the container's cgroup here, for the final SIGKILL.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.pod.spec import Identity, PodError
from lab.pod.volumes import Volume

POD_VOLUMES = "/.lab-pod"


@dataclass(frozen=True)
class Mount:
    volume: Volume
    path: str
    read_only: bool
    sub_path: str = ""


@dataclass(frozen=True)
class Launch:
    """Everything one run of a container needs."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    identity: Identity
    mounts: Sequence[Mount]
    working_dir: str
    lower: Path  # the root filesystem's lower layer: / or an unpacked image
    veneer: Sequence[Path] = ()  # host trees under /root to show (host mode's interpreter)
    #: (passwd lines, group lines) added to the container's /etc (host mode: the image's)
    accounts: tuple[Sequence[str], Sequence[str]] = ((), ())

    def setpriv(self) -> list[str]:
        ident = self.identity
        groups = ",".join(str(g) for g in ident.groups)
        caps = ",".join(["-all", *(f"+{c}" for c in sorted(ident.capabilities))])
        args = [
            "setpriv",
            f"--reuid={ident.uid}",
            f"--regid={ident.gid}",
            f"--groups={groups}" if groups else "--clear-groups",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            f"--bounding-set={caps}",
        ]
        if ident.no_new_privs:
            args.append("--no-new-privs")
        return args

    def inside(self) -> str:
        """The script run in the container's root, as root, ending in the container's exec."""
        lines = ["set -e"]
        for mount in sorted(self.mounts, key=lambda m: m.path.count("/")):
            source = f"{POD_VOLUMES}/{mount.volume.name}"
            if mount.sub_path:
                source += f"/{mount.sub_path}"
            target = shlex.quote(mount.path)
            lines.append(
                f"if [ -d {source} ]; then mkdir -p {target}; "
                f"else mkdir -p $(dirname {target}) && touch {target}; fi"
            )
            lines.append(f"mount --rbind {source} {target}")
            if mount.read_only:
                lines.append(f"mount -o remount,bind,ro {target}")
        lines += [f"umount -l {POD_VOLUMES}", f"rmdir {POD_VOLUMES}"]
        if self.identity.read_only_root:
            lines.append("mount -o remount,bind,ro /")
        lines.append(f"cd {shlex.quote(self.working_dir)}")
        env = [f"{key}={value}" for key, value in self.env.items()]
        command = [*self.setpriv(), "--", "/usr/bin/env", "-i", *env, *self.argv]
        lines.append("exec " + shlex.join(command))
        return "\n".join(lines)

    def outside(self, run_dir: Path, pod_volumes: Path) -> str:
        """The script that builds the root filesystem and chroots into it (``run_dir``: this
        run's own directory, with ``layer``, ``rootfs`` and the ``mnt-ns`` it writes)."""
        layer, root = run_dir / "layer", run_dir / "rootfs"
        lines = [
            "set -e",
            f"readlink /proc/self/ns/mnt > {run_dir}/mnt-ns",
            f"mount -t tmpfs -o mode=0755 container-layer {layer}",
            f"mkdir {layer}/upper {layer}/work",
            "mount -t overlay container-root -o "
            f"lowerdir={self.lower},upperdir={layer}/upper,workdir={layer}/work {root}",
            f"mount --rbind /dev {root}/dev",
            f"mount -t proc proc {root}/proc",
            f"mount -t sysfs sysfs {root}/sys",
        ]
        if self.veneer:
            lines.append(f"mount -t tmpfs -o mode=0755 host-root-veneer {root}/root")
            for tree in self.veneer:
                lines.append(f"mkdir -p {root}{tree} && mount --rbind {tree} {root}{tree}")
                lines.append(f"mount -o remount,bind,ro {root}{tree}")  # the host's, not ours
        for entries, name in zip(self.accounts, ("passwd", "group"), strict=True):
            if entries:
                lines.append(f"printf '%s\\n' {shlex.join(entries)} >> {root}/etc/{name}")
        lines.append(f"mkdir {root}{POD_VOLUMES}")
        lines.append(f"mount --rbind {pod_volumes} {root}{POD_VOLUMES}")
        for mount in self.mounts:
            if mount.volume.kind == "hostPath":
                stub = pod_volumes / mount.volume.name
                lines.append(f"mount --rbind {mount.volume.path} {root}{POD_VOLUMES}/{stub.name}")
        lines.append(f"exec chroot {root} /bin/sh -c {shlex.quote(self.inside())}")
        return "\n".join(lines)


class ContainerRun:
    """A started run of a container: its main process and, through its mount namespace,
    every process it made."""

    def __init__(
        self, launch: Launch, sandbox: int, run_dir: Path, pod_volumes: Path, log: Path
    ) -> None:
        self.launch = launch
        self.run_dir = run_dir
        for directory in (run_dir / "layer", run_dir / "rootfs"):
            directory.mkdir(parents=True)
        for mount in launch.mounts:  # stubs where hostPath volumes are bound at /.lab-pod
            if mount.volume.kind == "hostPath":
                stub = pod_volumes / mount.volume.name
                if mount.volume.path.is_dir():
                    stub.mkdir(exist_ok=True)
                else:
                    stub.touch()
        self.log = log
        self.started = time.monotonic()
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    "nsenter",
                    f"--target={sandbox}",
                    "--mount",
                    "--net",
                    "--",
                    "unshare",
                    "--mount",
                    "--propagation=private",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "/bin/sh",
                    "-c",
                    launch.outside(run_dir, pod_volumes),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                start_new_session=True,
            )
        self.mnt_ns = self._namespace()
        self._hold = self._hold_namespace()
        self.pid = self._main_pid()

    def _hold_namespace(self) -> int | None:
        """An open descriptor on the run's mount namespace, kept until ``kill`` has found none
        of its processes left. The kernel reuses a namespace's inode number as soon as the
        namespace is freed, so once the container's last process ended, an unrelated new
        process (an ``ip netns exec`` of the test, say) could match it, and ``kill`` would
        kill that; while a descriptor holds the namespace, its number is its own."""
        if not self.mnt_ns:
            return None
        try:
            fd = os.open(f"/proc/{self.process.pid}/ns/mnt", os.O_RDONLY)
        except OSError:  # the run already ended
            self.mnt_ns = ""
            return None
        if os.readlink(f"/proc/self/fd/{fd}") != self.mnt_ns:  # not the run's namespace (yet)
            os.close(fd)
            self.mnt_ns = ""
            return None
        return fd

    def _release(self) -> None:
        if self._hold is not None:
            os.close(self._hold)
            self._hold = None
        self.mnt_ns = ""

    def _namespace(self, timeout: float = 10) -> str:
        """The run's mount namespace, as its first command wrote it; empty if the run ended
        before (it failed to set up: its log says why, and it is restarted like any exit)."""
        marker = self.run_dir / "mnt-ns"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = marker.read_text().strip() if marker.exists() else ""
            if text or self.process.poll() is not None:
                return text
            time.sleep(0.01)
        raise PodError(f"container {self.launch.name}: no mount namespace after {timeout}s")

    def _main_pid(self) -> int:
        """The container's PID 1: ``unshare --fork``'s child (``unshare`` itself only waits,
        with SIGTERM blocked, and exits as its child did). ``unshare``'s own PID when the child
        has already ended."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return pid
        return int(children[0]) if children else pid

    def poll(self) -> int | None:
        """None while running, else the exit code as the runtime reports it (128 + signal)."""
        code = self.process.poll()
        return 128 - code if code is not None and code < 0 else code

    def exec_command(self, argv: Sequence[str]) -> list[str]:
        """A command line that runs ``argv`` in this run's root, namespaces, identity and
        environment (``kubectl exec``, exec probes)."""
        env = [f"{key}={value}" for key, value in self.launch.env.items()]
        return [
            *("nsenter", f"--target={self.pid}", "--mount", "--net", "--pid"),
            *("--root", "--wd", "--"),
            *self.launch.setpriv(),
            *("--", "/usr/bin/env", "-i", *env, *argv),
        ]

    def processes(self) -> list[int]:
        """Every process in this run's mount namespace (the container's processes)."""
        if not self.mnt_ns:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == self.mnt_ns:
                    found.append(int(entry))
            except OSError:  # gone meanwhile, or a kernel thread
                continue
        return found

    def terminate(self) -> None:
        """SIGTERM to the container's main process, as the runtime's stop does. It is PID 1 of
        its PID namespace: without a handler for SIGTERM, it ignores it (SIGKILL follows)."""
        if self.process.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                return

    def kill(self) -> None:
        """SIGKILL every process of the container until none is left (the cgroup's end),
        and reap the main process."""
        for _ in range(500):
            pids = self.processes()
            if self.process.poll() is None:
                pids.append(self.process.pid)
            elif not pids:
                self._release()
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            time.sleep(0.02)
        raise PodError(f"container {self.launch.name}: processes left after SIGKILL")
