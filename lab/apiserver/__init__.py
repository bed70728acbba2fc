"""A small in-memory Kubernetes API server for the lab, the demo and the integration tests.

There is no kube-apiserver here, so this one speaks the real wire protocol for the objects
cosmolet reads, and is itself tested with the official ``kubernetes`` client:

- core/v1 Services, Nodes, Namespaces and Events, discovery.k8s.io/v1 EndpointSlices;
- list (``resourceVersion``, ``limit``/``continue``, label and field selectors), get, create
  (``generateName`` too), update (409 on a stale ``resourceVersion``), merge and strategic-merge
  patch (as a JSON merge patch), delete, the ``/status`` subresource;
- watch as chunked JSON lines: ADDED / MODIFIED / DELETED, BOOKMARK when asked, and an ERROR
  event with a 410 ``Expired`` Status for a resourceVersion older than the retained history;
- discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/discovery.k8s.io/v1``, ``/version``).

For fault tests: ``POST /lab/drop-watches`` closes every watch, ``POST /lab/compact`` forgets the
history (the next rewatch from an old resourceVersion gets 410), and ``--state FILE`` saves the
objects on exit and loads them on start, so a restart keeps the cluster but not its history.

``--listen-netns NS`` also serves on 127.0.0.1 inside network namespace NS (the lab's nodes),
so one server and one kubeconfig serve the host and every node.

    python -m lab.apiserver --port 0 --kubeconfig /tmp/kubeconfig [--listen-netns NS ...]
"""

# The package, one concern a module:
#   resources  the kinds served, ApiError, the discovery documents
#   selectors  label selectors (the lab's own parser, not cosmolet's) and field selectors
#   store      objects, resourceVersions, history, watchers, merge patch, save/load
#   routes     the table of (method, path pattern) -> handler, and the handlers
#   http       the HTTP plumbing: read a request, write JSON or a chunked watch stream
#   listener   sockets here and inside network namespaces, serving(), kubeconfig, the process
#   __main__   the command line

from lab.apiserver.listener import free_port, serving, start_host_apiserver, write_kubeconfig
from lab.apiserver.resources import BY_PATH, RESOURCES, ApiError, Resource
from lab.apiserver.store import Store

__all__ = [
    "BY_PATH",
    "RESOURCES",
    "ApiError",
    "Resource",
    "Store",
    "free_port",
    "serving",
    "start_host_apiserver",
    "write_kubeconfig",
]
