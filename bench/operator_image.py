"""The operator's image (make operator-image): build time cold and warm, size. Needs root and mmdebstrap.

    python bench/operator_image.py [--rounds N]

cold: built from scratch (mmdebstrap, the Debian and PyPI downloads, the wheel, packing), not from the cache;
warm: `make operator-image` with the image cached (the key of every input computed, nothing built).
size: the archive (compressed layer + config + manifest) and the unpacked root filesystem (the layer's files).
Writes bench/results/operator_image.json."""

from __future__ import annotations

import argparse
import json
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from sovereign_suite.devcluster.realnode import operator_image


def unpacked_size(archive: Path) -> int:
    with tarfile.open(archive) as outer:
        index = json.load(outer.extractfile("index.json"))
        manifest = json.load(outer.extractfile(f"blobs/sha256/{index['manifests'][0]['digest'].split(':')[1]}"))
        layer = outer.extractfile(f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}")
        with tarfile.open(fileobj=layer, mode="r|gz") as inner:
            return sum(m.size for m in inner if m.isreg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="cold builds (0: warm and size only)")
    args = parser.parse_args()
    cached = operator_image.build(progress=print)
    cold, digests = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            start = time.monotonic()
            out = operator_image.build(Path(tmp) / f"{n}.oci.tar", progress=print, cache=False)
            cold.append(time.monotonic() - start)
            digests.add(operator_image.digest(out))
    warm = []
    for _ in range(5):
        start = time.monotonic()
        operator_image.build(progress=lambda m: None)
        warm.append(time.monotonic() - start)
    result = {
        "image": operator_image.image_name(), "digest": operator_image.digest(cached),
        # None: no cold build this run (--rounds 0)
        "same_digest_every_build": digests == {operator_image.digest(cached)} if digests else None,
        "cold_s": [round(c, 1) for c in cold], "warm_s_median": round(statistics.median(warm), 3),
        "archive_mib": round(cached.stat().st_size / 2**20, 1),
        "unpacked_mib": round(unpacked_size(cached) / 2**20, 1),
    }
    out = Path(__file__).parent / "results" / "operator_image.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
