"""One list of every Service, EndpointSlice and Node, for ``cosmolet diff``: a one-shot read
through the same raw requests and decoders as the agent's watch (``cosmolet.kube.client``), with
every Node instead of the agent's own and no label selector (each config applies its own).
"""

from __future__ import annotations

import dataclasses

from kubernetes.client import ApiException
from kubernetes.config import ConfigException
from urllib3.exceptions import HTTPError

from cosmolet.engine.objects import Malformed, Record, RecordT, decode_json
from cosmolet.kube.client import InFlight, Kind, api_client, kinds, list_page

PAGE_SIZE = 500


class SnapshotError(Exception):
    """The cluster could not be read (no kubeconfig, unreachable, refused)."""


def _list(kind: Kind[RecordT]) -> tuple[list[Record], list[Malformed]]:
    records: list[Record] = []
    malformed: list[Malformed] = []
    token: str | None = None
    while True:
        page = list_page(kind, PAGE_SIZE, token, InFlight())
        for raw in page.items or ():
            _, record = decode_json(kind.record, raw)
            if isinstance(record, Malformed):
                malformed.append(record)
            else:
                records.append(record)
        token = page.metadata.continue_
        if not token:
            return records, malformed


def snapshot(kubeconfig: str | None) -> tuple[list[Record], list[Malformed]]:
    """Every Service, EndpointSlice and Node of the cluster, decoded.

    Raises:
        SnapshotError: naming what failed.
    """
    records: list[Record] = []
    malformed: list[Malformed] = []
    try:
        api = api_client(kubeconfig)
        watched = kinds(api, node_name="", service_selector="")
        every_node = dataclasses.replace(watched.node, params={})
        for good, bad in (_list(watched.services), _list(watched.slices), _list(every_node)):
            records += good
            malformed += bad
    except ApiException as error:
        raise SnapshotError(
            f"the API server refused the list: {error.status} {error.reason}"
        ) from None
    except (ConfigException, HTTPError, OSError) as error:
        raise SnapshotError(f"cannot reach the API server: {error}") from None
    return records, malformed
