"""A small in-memory Kubernetes API server for the lab, the demo and the integration tests.

There is no kube-apiserver here, so this one speaks the real wire protocol for the objects
cosmolet reads, and is itself tested with the official ``kubernetes`` client and ``kubectl``:

- core/v1 Services, Nodes, Namespaces and Events, discovery.k8s.io/v1 EndpointSlices;
- list (``resourceVersion``, ``limit``/``continue``, label and field selectors), get, create
  (``generateName`` too), update (409 on a stale ``resourceVersion``), merge and strategic-merge
  patch (as a JSON merge patch), delete, the ``/status`` subresource;
- watch as chunked JSON lines: ADDED / MODIFIED / DELETED, BOOKMARK when asked, and an ERROR
  event with a 410 ``Expired`` Status for a resourceVersion older than the retained history;
- discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/discovery.k8s.io/v1``, ``/version``);
- OpenAPI (``/openapi/v2`` as JSON, ``/openapi/v3`` and one document per group version) from
  Kubernetes' own schemas, and server-side ``fieldValidation``, so that ``kubectl apply`` works
  with its default validation (and refuses a misspelt field as a cluster does).

For fault tests: ``POST /lab/drop-watches`` closes every watch, ``POST /lab/compact`` forgets the
history (the next rewatch from an old resourceVersion gets 410), and ``--state FILE`` saves the
objects on exit and loads them on start, so a restart keeps the cluster but not its history.
``GET /lab/watch-stats`` (``Store.watch_stats()``) counts what watches sent: events and bytes by
event type, in total since the start and per open watch (the fleet benchmark's fan-out figures).

``--listen-netns NS`` also serves on 127.0.0.1 inside network namespace NS (the lab's nodes),
so one server and one kubeconfig serve the host and every node.

    python -m lab.apiserver --port 0 --kubeconfig /tmp/kubeconfig [--listen-netns NS ...]

The in-cluster path (a pod with a service account, HTTPS only) and the chart's RBAC:

    python -m lab.apiserver --port P --kubeconfig KC --tls-dir DIR
        [--tls-san IP-OR-NAME ...] [--service-account NAMESPACE/NAME [--rbac RENDERED.yaml]]

serves HTTPS with a certificate for 127.0.0.1, ::1, localhost and each ``--tls-san``, signed by
a CA in ``DIR/ca.crt``; ``DIR/token`` is the service account's bearer token and
``DIR/namespace`` its namespace (all three readable by any uid: a pod runner bind-mounts them at
``/var/run/secrets/kubernetes.io/serviceaccount/`` and sets ``KUBERNETES_SERVICE_HOST=127.0.0.1``
and ``KUBERNETES_SERVICE_PORT=P``). Every request then needs a bearer token (else 401): the
admin's (``DIR/admin-token``, the one the written kubeconfig carries, allowed everything) or the
account's, which ``--rbac`` (``helm template`` output: its ClusterRoles, Roles and their
bindings) authorizes as a cluster would (403 with a real ``Status`` otherwise; discovery and
OpenAPI for any authenticated user). Without ``--rbac`` the account may do everything. The CA,
keys and tokens are reused while valid, so a restarted server keeps what a pod holds.

Python API (tests, the pod runner):

- ``serving(port=0, host, netns, store, bookmark_seconds) -> (store, port)``: plain HTTP, in
  this process; ``write_kubeconfig(path, url)`` for it.
- ``serving_tls(tls_dir, *, service_account="NS/NAME", rbac=Path | list[dict], tls_sans=(),
  port, host, netns, store, bookmark_seconds) -> Secured``: HTTPS in this process;
  ``Secured`` has ``store``, ``port``, ``url``, ``tls_dir``, ``ca`` (the CA file), ``token``
  (the account's), ``admin_token`` and ``kubeconfig`` (``tls_dir/kubeconfig``, the admin's).
- ``start_host_apiserver(lab, port, kubeconfig, state, netns, *, tls_dir=None,
  service_account=None, rbac=None, tls_sans=())``: the same as a process (``kubeconfig`` is
  written once it listens); with ``tls_dir``, ``tls_dir/ca.crt`` and ``tls_dir/token`` are
  ready too.
- ``secure(tls_dir, tls_sans, service_account, rbac) -> (Security, TlsFiles)`` for
  ``serving(..., security=...)``; ``tls.CA_CERT`` / ``tls.TOKEN`` / ``tls.NAMESPACE`` name the
  files.
"""

# The package, one concern a module:
#   resources  the kinds served, ApiError, the discovery documents
#   selectors  label selectors (the lab's own parser, not cosmolet's) and field selectors
#   store      objects, resourceVersions, history, watchers, merge patch, save/load
#   routes     the table of (method, path pattern) -> handler, and the handlers
#   openapi    the OpenAPI v2/v3 documents, from kubernetes-validate's schemas
#   validation server-side fieldValidation against those schemas
#   http       the HTTP plumbing: read a request, guard it, write JSON or a chunked watch stream
#   tls        the CA, the server certificate and the tokens in --tls-dir
#   auth       bearer tokens, a request's RBAC attributes, 401 and 403
#   rbac       roles and bindings from rendered manifests, evaluated as Kubernetes does
#   listener   sockets here and inside network namespaces, serving(), kubeconfig, the process
#   __main__   the command line

from lab.apiserver.listener import (
    Secured,
    free_port,
    secure,
    serving,
    serving_tls,
    start_host_apiserver,
    write_kubeconfig,
)
from lab.apiserver.resources import BY_PATH, RESOURCES, ApiError, Resource
from lab.apiserver.store import Store

__all__ = [
    "BY_PATH",
    "RESOURCES",
    "ApiError",
    "Resource",
    "Secured",
    "Store",
    "free_port",
    "secure",
    "serving",
    "serving_tls",
    "start_host_apiserver",
    "write_kubeconfig",
]
