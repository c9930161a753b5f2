"""The operator as an earlier commit of this repository shipped it: that commit's sources, chart and image, for the
upgrade test (tests/cluster/test_real_node_upgrade.py; docs/install.md, "Upgrade").

    python -m sovereign_suite.devcluster.realnode.previous_image [COMMIT]

The commit is fixed and named (PREVIOUS): this repository has no release tag yet, so "the previous chart" is the
first commit of main whose chart and image run the operator as a pod (below). When there are release tags, the
previous release (the merge-base of HEAD and the last tag) takes its place.

Its sources come from ``git archive <commit>`` (this repository's history; a shallow clone without that commit
gets an error saying so) into $(CACHE)/previous/<commit>/; its image is built from them by *this* tree's builder
(operator_image.build with that root), so the two images differ only by what the commit's sources differ by. The
image carries the reference ``sovereign-suite-operator:<version>-<short commit>`` so that importing it next to
the current image (same version, tag ``<version>``) replaces neither. Both are cached by commit, outside the
repository; the build is reproducible like the current one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ..cluster import ClusterError, cache_dir
from . import operator_image
from .images import images_dir

# The first commit of main whose image runs the operator: the merge of the image work (9b029df) built an image
# whose lock lacked cryptography (the TLS work's new dependency), so its pods exit at import; this commit
# regenerated the lock. Found by this test, on the real node.
PREVIOUS = "7f596bfa80a28250d9e883192ebf29f2b07ac54a"
REPOSITORY = "docker.io/library/sovereign-suite-operator"


def short(commit: str) -> str:
    return commit[:7]


def sources(commit: str = PREVIOUS, progress=print) -> Path:
    """The commit's tree, extracted once into the cache (read-only use: charts, image inputs)."""
    root = cache_dir() / "previous" / commit
    if (root / ".complete").exists():
        return root / "src"
    proc = subprocess.run(["git", "-C", str(operator_image.ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"previous operator: commit {commit} is not in this repository's history (a shallow "
                           "clone? `git fetch --unshallow`)")
    shutil.rmtree(root, ignore_errors=True)
    (root / "src").mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(operator_image.ROOT), "archive", "--format=tar", commit],
                               stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(root / "src")], stdin=archive.stdout, capture_output=True)
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        raise ClusterError(f"previous operator: git archive {commit} failed: {untar.stderr.decode()[-500:]}")
    (root / ".complete").touch()
    progress(f"previous operator: sources of {short(commit)} in {root / 'src'}")
    return root / "src"


def chart(commit: str = PREVIOUS, progress=print) -> Path:
    return sources(commit, progress) / "charts" / "sovereign-suite-operator"


def tag(commit: str = PREVIOUS) -> str:
    return f"{operator_image.version(sources(commit, lambda _m: None))}-{short(commit)}"


def build(commit: str = PREVIOUS, progress=print) -> Path:
    """The commit's image archive: from the cache (by commit), or built now by this tree's builder."""
    src = sources(commit, progress)
    out = images_dir() / "previous" / f"sovereign-suite-operator-{short(commit)}.oci.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    operator_image.build(partial, progress, cache=False, root=src, name=f"{REPOSITORY}:{tag(commit)}")
    partial.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    commit = args[0] if args else PREVIOUS
    try:
        path = build(commit, lambda m: print(f"[image] {m}", file=sys.stderr))
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{REPOSITORY}:{tag(commit)}\t{operator_image.digest(path)}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
