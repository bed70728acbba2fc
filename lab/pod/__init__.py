"""The lab's pod runner: a rendered workload's pod (``helm template`` output) run on a lab node
(a network namespace) the way the kubelet would run it, so that the Helm chart is tested as a
pod, not as a command line.

What it does, as the kubelet and a container runtime would:

- **scheduling check**: the pod's ``nodeSelector`` must match the Node's labels and its
  tolerations (plus the DaemonSet controller's) must cover the Node's NoSchedule/NoExecute
  taints; ``hostNetwork`` pods only (the pod is in the node's network namespace);
- **init containers, then containers**: each container's ``command``/``args``, or the image's
  ENTRYPOINT/CMD (from the ``Dockerfile``, or the built image), ``$(VAR)`` expanded;
- **environment**: the image's ENV, ``KUBERNETES_SERVICE_HOST/PORT``, ``envFrom``, ``env`` with
  the downward API from the lab's Node (``spec.nodeName``, ``status.hostIP``,
  ``status.podIP`` = the node's address with ``hostNetwork``, ``metadata.*``) and ConfigMap and
  Secret keys;
- **volumes**: ConfigMaps and Secrets (base64-decoded) as files at their ``mountPath`` with
  ``defaultMode`` and root as owner, ``fsGroup`` applied as the kubelet does; ``emptyDir`` as a
  tmpfs shared by the pod's containers; ``hostPath`` as a bind; ``readOnly`` as read-only
  binds; the ServiceAccount's ``token``, ``ca.crt`` and ``namespace`` at
  ``/var/run/secrets/kubernetes.io/serviceaccount``;
- **isolation**: each container in its own mount and PID namespaces (its command is PID 1:
  without a SIGTERM handler it ignores SIGTERM, as in a real container; when it ends, every
  process of the container ends) on an overlay of the host's ``/`` (host mode) or of the
  unpacked image (image mode), chrooted, with ``/proc``, ``/sys`` and ``/dev``, a fresh
  writable layer per run; ``readOnlyRootFilesystem`` makes that root read-only; the pod's
  containers share the node's network namespace (``hostNetwork``);
- **securityContext**: ``runAsUser``/``runAsGroup`` (else the image's USER), ``runAsNonRoot``
  checked, ``supplementalGroups`` and ``fsGroup``, capabilities from the runtime's default set
  with ``drop``/``add`` (a non-root process keeps none), ``allowPrivilegeEscalation: false``
  as no_new_privs; not enforced: seccomp profiles, resource limits;
- **probes**: startup, liveness and readiness (``httpGet``, ``tcpSocket``, ``exec``) polled at
  their periods from the node's network namespace; a failed liveness probe stops the container
  (SIGTERM, SIGKILL after the grace period) and it is restarted; an exited container is
  restarted with the kubelet's back-off;
- **delete**: SIGTERM to every container, SIGKILL of every process left after
  ``terminationGracePeriodSeconds``.

Host mode (the default) runs the host's install of cosmolet: its ``bin`` directory is first on
the container's PATH, the interpreter's tree under ``/root`` (pyenv, mode 0700) is shown in the
container's root, the image's named groups (``groupadd`` in the Dockerfile: frrvty is 10003)
are the host's groups of those names, and the image's users and groups the host lacks (uid
10001, ``cosmolet``) are added to the container's own /etc/passwd and /etc/group. Image mode
runs a built image's filesystem and config instead, and translates nothing: ``--image-archive``
takes a ``docker save`` archive (``make image`` writes ``build/cosmolet-VERSION.tar``) and
needs no engine; ``--image`` takes an image of the engine at ``DOCKER_HOST``.

    helm template cosmolet charts/cosmolet -n cosmolet-system --set ... > pod.yaml
    python -m lab.pod -f pod.yaml -f secrets.yaml --netns NS --node NAME --node-ip IP \\
        --api-port PORT --service-account-dir DIR
"""

from lab.pod.env import ApiEndpoint
from lab.pod.image import Image
from lab.pod.runner import PodRunner
from lab.pod.spec import LabNode, PodError
from lab.pod.volumes import ServiceAccount

__all__ = ["ApiEndpoint", "Image", "LabNode", "PodError", "PodRunner", "ServiceAccount"]
