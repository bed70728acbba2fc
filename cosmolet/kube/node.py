"""This node's Node object, read once: ``cosmolet start`` and ``cosmolet render`` resolve the
peers from its labels and annotations before the agent (which watches it) runs."""

from __future__ import annotations

from kubernetes.client import ApiException
from kubernetes.config import ConfigException
from urllib3.exceptions import HTTPError

from cosmolet.engine.objects import Malformed, Node, decode_json
from cosmolet.kube.client import InFlight, api_client, kinds, list_page


class NodeReadError(Exception):
    """The Node could not be read (no kubeconfig, unreachable, refused, malformed)."""


def read_node(kubeconfig: str | None, name: str) -> Node | None:
    """The Node named ``name`` (``None`` if there is none), with the agent's own request.

    Raises:
        NodeReadError: naming what failed.
    """
    try:
        kind = kinds(api_client(kubeconfig), name, service_selector="").node
        page = list_page(kind, 1, None, InFlight())
    except ApiException as error:
        raise NodeReadError(f"the API server refused: {error.status} {error.reason}") from None
    except (ConfigException, HTTPError, OSError) as error:
        raise NodeReadError(f"cannot reach the API server: {error}") from None
    for raw in page.items or ():
        _, node = decode_json(Node, raw)
        if isinstance(node, Malformed):
            raise NodeReadError(f"Node {name} is malformed: {node.reason}")
        return node
    return None
