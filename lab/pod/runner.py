"""The pod runner: one pod of a rendered workload on one lab node, run as the kubelet would.

``PodRunner.start()`` checks that the node may run the pod (nodeSelector, taints), makes the
pod's sandbox (a process holding the pod's mount namespace, with each emptyDir as a tmpfs, in
the node's network namespace: ``hostNetwork``), writes its volumes, and starts the pod's
"kubelet" thread, which lives in the node's network namespace like the real one: init
containers one after the other (each must exit 0; a failed one is restarted with back-off),
then every container; an exited container is restarted (``restartPolicy: Always``) after a
back-off that doubles from ``backoff`` up to five minutes; startup, liveness and readiness
probes are polled at their periods, a container whose liveness fails is stopped (SIGTERM, then
SIGKILL after the grace period) and restarted. ``delete()`` stops every container (SIGTERM,
SIGKILL after ``terminationGracePeriodSeconds``) and then the sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.netns import enter_netns
from lab.pod.container import ContainerRun
from lab.pod.env import ApiEndpoint
from lab.pod.image import Image
from lab.pod.launch import build
from lab.pod.probes import ProbeState, check
from lab.pod.spec import Container, LabNode, Objects, Pod, PodError
from lab.pod.volumes import ServiceAccount, Volume, set_up

BACKOFF_MAX = 300.0
BACKOFF_RESET = 600.0  # a container that ran this long starts its back-off afresh
TICK = 0.05


@dataclass
class ContainerState:
    """What ``kubectl get pod -o yaml`` would show of one container, and its probes."""

    container: Container
    init: bool = False
    run: ContainerRun | None = None
    restarts: int = -1  # the first start is not a restart
    exit_codes: list[int] = field(default_factory=list)
    ready: bool = False
    started: bool = False  # the startup probe passed (or there is none)
    probes: dict[str, ProbeState] = field(default_factory=dict)
    restart_at: float = 0.0
    backoff: float = 0.0
    stop_deadline: float | None = None  # being stopped (liveness failure): SIGKILL at this time

    @property
    def name(self) -> str:
        return self.container.name


class PodRunner:
    """One pod on one lab node; a context manager that deletes the pod on exit."""

    def __init__(
        self,
        documents: Iterable[Mapping[str, Any]],
        node: LabNode,
        directory: Path,
        image: Image,
        api: ApiEndpoint | None = None,
        account: ServiceAccount | None = None,
        workload: str = "",
        backoff: float = 10.0,
        host_bin: Path | None = None,
    ) -> None:
        documents = list(documents)
        self.pod = Pod.from_manifests(documents, workload)
        self.objects = Objects.from_manifests(documents)
        self.node, self.image, self.api, self.account = node, image, api, account
        self.directory = directory
        self.backoff = backoff
        #: host mode: where the host's ``cosmolet`` is (first on the container's PATH)
        self.host_bin = host_bin or Path(sys.executable).parent
        self.states: dict[str, ContainerState] = {}
        self.events: list[tuple[float, str]] = []
        self.sandbox: subprocess.Popen[bytes] | None = None
        self.volumes: dict[str, Volume] = {}
        self.created = 0.0
        self.ready_at: float | None = None
        self._deleting = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._grace: float | None = None  # delete()'s, else the pod's
        self._lock = threading.Lock()

    # --- the pod's life ---------------------------------------------------------------------

    def start(self) -> PodRunner:
        if not self.pod.spec.get("hostNetwork"):
            raise PodError("only hostNetwork pods run here: the pod is in the node's namespace")
        reason = self.pod.unschedulable(self.node)
        if reason:
            raise PodError(f"{self.pod.name} cannot run on {self.node.name}: {reason}")
        self.created = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._event(f"Scheduled {self.pod.namespace}/{self.pod.name} on {self.node.name}")
        self.volumes = set_up(
            self.pod, self.node, self.objects, self.directory / "volumes", self.account
        )
        try:
            self._start_sandbox()
        except BaseException:
            self._stop_sandbox()
            raise
        self.states = {c.name: ContainerState(c, init=True) for c in self.pod.init_containers}
        self.states.update({c.name: ContainerState(c) for c in self.pod.containers})
        self._thread = threading.Thread(target=self._kubelet, name=f"kubelet-{self.pod.name}")
        self._thread.start()
        return self

    def delete(self, grace: float | None = None) -> float:
        """Delete the pod: SIGTERM to each container, SIGKILL after the grace period; returns
        the seconds until every container had stopped."""
        self._grace = self.pod.grace_seconds if grace is None else grace
        began = time.monotonic()
        self._deleting.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._stop_sandbox()
        if self._error is not None:
            raise PodError(f"the pod's kubelet thread failed: {self._error!r}")
        return time.monotonic() - began

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None or self.sandbox is not None:
            self.delete()

    # --- what tests and the command line read -----------------------------------------------

    @property
    def ready(self) -> bool:
        main = [s for s in self.states.values() if not s.init]
        return bool(main) and all(s.ready for s in main)

    def wait_ready(self, timeout: float) -> float:
        """Seconds from the pod's creation to Ready; raises with the pod's status if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._error is not None:
                raise PodError(f"the pod's kubelet thread failed: {self._error!r}")
            if self.ready_at is not None:
                return self.ready_at - self.created
            time.sleep(TICK)
        raise TimeoutError(f"{self.pod.name} not Ready after {timeout}s:\n{self.describe()}")

    def current(self, name: str) -> ContainerRun:
        run = self.states[name].run
        if run is None or run.poll() is not None:
            raise PodError(f"container {name} is not running")
        return run

    def exec(self, name: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """``kubectl exec``: a command in the container's root, identity and environment."""
        command = self.current(name).exec_command(argv)
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def log(self, name: str, restart: int | None = None) -> str:
        """``kubectl logs`` (``--previous``: ``restart`` of the run before)."""
        state = self.states[name]
        number = state.restarts if restart is None else restart
        path = self.directory / "logs" / name / f"{number}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def describe(self) -> str:
        lines = [f"pod {self.pod.namespace}/{self.pod.name} on {self.node.name}"]
        for state in self.states.values():
            running = state.run is not None and state.run.poll() is None
            lines.append(
                f"  {'init ' if state.init else ''}{state.name}: "
                f"{'running' if running else 'not running'} ready={state.ready} "
                f"restarts={max(state.restarts, 0)} exits={state.exit_codes} "
                + " ".join(f"{k}=[{p.last}]" for k, p in state.probes.items())
            )
            tail = self.log(state.name)[-1500:]
            if tail:
                lines.append("    log: " + tail.replace("\n", "\n    log: "))
        lines += [f"  {when:7.2f}s {what}" for when, what in self.events[-30:]]
        return "\n".join(lines)

    # --- the sandbox ------------------------------------------------------------------------

    def _start_sandbox(self) -> None:
        """A process holding the pod's mount namespace (the pause container's role), in the
        node's network namespace, with a tmpfs for each emptyDir."""
        self.sandbox = subprocess.Popen(
            [
                *("nsenter", f"--net=/run/netns/{self.node.netns}", "--"),
                *("unshare", "--mount", "--propagation=private", "sleep", "infinity"),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        ours = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.sandbox.pid}/ns/mnt") == ours:
            if time.monotonic() > deadline or self.sandbox.poll() is not None:
                raise PodError("the pod's sandbox did not start")
            time.sleep(0.01)
        fs_group = self.pod.security_context.get("fsGroup")
        for volume in self.volumes.values():
            if volume.kind != "emptyDir":
                continue
            options = "mode=0777" + (f",size={volume.tmpfs_size}" if volume.tmpfs_size else "")
            script = f"mount -t tmpfs -o {options} emptydir-{volume.name} {volume.path}"
            if fs_group is not None:
                script += f" && chown 0:{int(fs_group)} {volume.path} && chmod 2777 {volume.path}"
            subprocess.run(
                ["nsenter", f"--target={self.sandbox.pid}", "--mount", "--", "sh", "-c", script],
                check=True,
            )

    def _stop_sandbox(self) -> None:
        if self.sandbox is not None:
            self.sandbox.kill()
            self.sandbox.wait()
            self.sandbox = None
            self._event("Sandbox removed")

    # --- the kubelet thread -----------------------------------------------------------------

    def _kubelet(self) -> None:
        try:
            enter_netns(self.node.netns)
            self._run_init_containers()
            while not self._deleting.is_set():
                now = time.monotonic()
                for state in self.states.values():
                    if not state.init:
                        self._supervise(state, now)
                if self.ready and self.ready_at is None:
                    self.ready_at = time.monotonic()
                    self._event(f"Ready after {self.ready_at - self.created:.2f}s")
                time.sleep(TICK)
        except BaseException as error:  # reported by delete() and wait_ready()
            self._error = error
            self._event(f"kubelet thread failed: {error!r}")
        finally:
            self._terminate_all()

    def _run_init_containers(self) -> None:
        for state in self.states.values():
            if not state.init:
                continue
            while not self._deleting.is_set():
                run = self._start(state)
                while run.poll() is None and not self._deleting.is_set():
                    time.sleep(TICK)
                if self._deleting.is_set():
                    return
                code = self._exited(state)
                if code == 0:
                    break
                self._wait(state.restart_at)

    def _wait(self, until: float) -> None:
        while time.monotonic() < until and not self._deleting.is_set():
            time.sleep(TICK)

    def _supervise(self, state: ContainerState, now: float) -> None:
        run = state.run
        if run is not None and run.poll() is not None:
            self._exited(state)
            return
        if run is None:
            if now >= state.restart_at:
                self._start(state)
            return
        if state.stop_deadline is not None:
            if now >= state.stop_deadline:
                run.kill()
            return
        for kind, probe in list(state.probes.items()):
            if kind != "startup" and not state.started:
                continue
            if now < probe.due:
                continue
            pod_ip = self.pod.field("status.podIP", self.node)
            ok, what = check(probe.probe, run, pod_ip, state.container.ports)
            result = probe.record(ok, what)
            if kind == "startup" and result:
                state.started = True
            elif kind == "readiness" and result is not None and result != state.ready:
                state.ready = result
                self._event(f"{state.name}: readiness {'passed' if result else 'failed'}: {what}")
            elif kind in ("liveness", "startup") and result is False:
                self._event(f"{state.name}: {kind} probe failed ({what}): killing it")
                state.ready = False
                run.terminate()
                state.stop_deadline = now + self.pod.grace_seconds

    def _start(self, state: ContainerState) -> ContainerRun:
        state.restarts += 1
        state.ready, state.stop_deadline = False, None
        launch = build(
            state.container,
            self.pod,
            self.node,
            self.objects,
            self.image,
            self.api,
            self.volumes,
            self.account is not None,
            self.host_bin,
        )
        run_dir = self.directory / "containers" / state.name / str(state.restarts)
        log = self.directory / "logs" / state.name / f"{state.restarts}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        assert self.sandbox is not None
        state.run = ContainerRun(launch, self.sandbox.pid, run_dir, self.directory / "volumes", log)
        now = time.monotonic()
        state.probes = {k: ProbeState(p, now) for k, p in state.container.probes.items()}
        state.started = "startup" not in state.probes
        if "readiness" not in state.probes:
            state.ready = not state.init
        self._event(f"Started {'init ' if state.init else ''}container {state.name}")
        return state.run

    def _exited(self, state: ContainerState) -> int:
        """Record the run's end, clear what it left, and schedule the next run."""
        run = state.run
        assert run is not None
        code = run.poll()
        assert code is not None
        run.kill()  # what the main process left behind
        state.exit_codes.append(code)
        state.ready, state.stop_deadline, state.run = False, None, None
        now = time.monotonic()
        if now - run.started > BACKOFF_RESET:
            state.backoff = 0.0
        # As the kubelet's back-off: the first restart at once, then backoff, doubling.
        state.restart_at = now + state.backoff
        state.backoff = min(max(state.backoff * 2, self.backoff), BACKOFF_MAX)
        self._event(f"{state.name} exited {code}" + (" (restarting)" if not state.init else ""))
        return code

    def _terminate_all(self) -> None:
        """The pod's deletion: SIGTERM to every running container, SIGKILL at the deadline;
        each container's exit code is recorded (137 for a SIGKILL, as the runtime reports)."""
        grace = self.pod.grace_seconds if self._grace is None else self._grace
        running = [s for s in self.states.values() if s.run is not None]
        for state in running:
            assert state.run is not None
            if state.run.poll() is None:
                self._event(f"Killing {state.name} (grace {grace:.0f}s)")
                state.run.terminate()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(
            s.run is not None and s.run.poll() is None for s in running
        ):
            time.sleep(TICK)
        for state in running:
            assert state.run is not None
            if state.run.poll() is None:
                self._event(f"{state.name}: grace period over, SIGKILL")
            state.run.kill()
            code = state.run.poll()
            assert code is not None
            state.exit_codes.append(code)
            self._event(f"{state.name} exited {state.exit_codes[-1]}")
            state.run, state.ready = None, False

    def _event(self, what: str) -> None:
        with self._lock:
            when = time.monotonic() - self.created if self.created else 0.0
            self.events.append((when, what))
            with open(self.directory / "events.log", "a") as out:
                out.write(f"{when:8.2f}s {what}\n")
