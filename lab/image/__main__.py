"""``make image``: build the cosmolet image from the local Debian base and print its size.

    python -m lab.image [--tag cosmolet:VERSION] [--save PATH]

With ``DOCKER_HOST`` set, the caller's engine builds it and keeps it. Otherwise a private dockerd
does (see ``lab.image.engine``) and stops afterwards, so the image is saved with ``docker save``
(default ``build/cosmolet-VERSION.tar``; ``docker load -i`` it where it should run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab.image.base import build_base
from lab.image.build import ROOT, build_image, version
from lab.image.engine import EngineUnavailable, open_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.image", description=__doc__)
    parser.add_argument("--tag", default=f"cosmolet:{version()}")
    parser.add_argument("--save", type=Path, help="docker save the image to this tar file")
    args = parser.parse_args(argv)
    try:
        engine = open_engine()
    except EngineUnavailable as error:
        print(f"no container engine: {error}", file=sys.stderr)
        return 1
    with engine:
        base = build_base(engine)
        cached = "cached Debian tarball" if base.tarball_cached else "Debian tarball built"
        print(f"base {base.tag}: {base.seconds:.0f} s ({cached})")
        image = build_image(engine, args.tag, base.tag)
        print(f"image {image.tag}: built in {image.seconds:.0f} s, {image.size_bytes / 1e6:.0f} MB")
        save = args.save or (
            ROOT / "build" / f"cosmolet-{version()}.tar" if engine.private else None
        )
        if save is not None:
            save.parent.mkdir(parents=True, exist_ok=True)
            engine.docker("save", f"--output={save}", image.tag)
            print(f"saved to {save} (docker load -i {save})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
