"""Build the project's Dockerfile on the local base and measure the result."""

from __future__ import annotations

import re
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lab.image.base import BASE_TAG
from lab.image.engine import Engine

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class Image:
    tag: str
    seconds: float
    size_bytes: int


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def git_commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def build_image(engine: Engine, tag: str, base: str = BASE_TAG) -> Image:
    """``docker build`` of the project's Dockerfile from ``base``, with the host's network (the
    engine has no bridge) for apt and pip."""
    started = time.monotonic()
    engine.docker(
        "build",
        "--network=host",
        f"--build-arg=BASE_IMAGE={base}",
        f"--build-arg=VERSION={version()}",
        f"--build-arg=GIT_COMMIT={git_commit()}",
        f"--tag={tag}",
        str(ROOT),
    )
    return Image(tag, time.monotonic() - started, image_size(engine, tag))


def image_size(engine: Engine, tag: str) -> int:
    """Bytes of the image's layers, uncompressed (what ``docker images`` shows)."""
    return int(engine.docker("image", "inspect", "--format={{.Size}}", tag).stdout.strip())


def chart_ids() -> tuple[int, int, int]:
    """The uid, gid and supplemental group (frrvty) the Helm chart gives the pod: the image must
    define them, under those names."""
    templates = ROOT / "charts" / "cosmolet" / "templates"
    helpers = (templates / "_helpers.tpl").read_text()
    daemonset = (templates / "daemonset.yaml").read_text()
    uid = re.search(r"runAsUser: (\d+)", helpers)
    gid = re.search(r"runAsGroup: (\d+)", helpers)
    supplemental = re.search(r"supplementalGroups: \[(\d+)\]", daemonset)
    if uid is None or gid is None or supplemental is None:
        raise ValueError(f"the chart's security contexts moved: read {templates}")
    return int(uid[1]), int(gid[1]), int(supplemental[1])
