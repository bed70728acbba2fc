"""Loading the configuration at the edge: the YAML file, and the node's identity from the
environment the chart's downward API sets (``NODE_NAME``, ``NODE_IP``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from cosmolet.config.schema import Config, ConfigError, Problem, validate


def node_ip(environ: Mapping[str, str] | None = None) -> str:
    """The node's primary address as the kubelet reports it (``status.hostIP``), or ``""``."""
    return (os.environ if environ is None else environ).get("NODE_IP", "").strip()


def with_node_name(config: Config, environ: Mapping[str, str] | None = None) -> Config:
    """``nodeName`` from the file, else ``NODE_NAME`` from the environment."""
    if config.node_name:
        return config
    name = (os.environ if environ is None else environ).get("NODE_NAME", "")
    return config.model_copy(update={"node_name": name}) if name else config


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file.

    Raises:
        ConfigError: the file is unreadable, is not YAML (or nests deeper than Python's stack),
            or fails validation.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(source, [Problem("", f"cannot read: {error.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(source, [Problem("", f"not valid YAML: {error}")]) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(source, [Problem("", "nested too deeply to be a config")]) from None
    return with_node_name(validate(data, source))
