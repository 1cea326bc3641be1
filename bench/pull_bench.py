"""Pull from a local registry: hull vs `skopeo copy` vs `podman pull`, in one run, on a tmpfs (issue 5 section 6).

The image is unpack_bench's three gzip layers (two of ~50 MB random data, one
of 20,000 small files), pushed once by skopeo to Debian's docker-registry
(distribution 2.8.2) listening on 127.0.0.1, its storage on the same tmpfs.

Pull only, each into an empty store every run, each tool in a fresh process:

- ``hull pull`` into a hull root (digest and size verified while streaming,
  fsync, rename);
- ``skopeo copy docker://... oci:DIR`` (the same work: an OCI layout);
- ``podman pull`` (private --root/--runroot on the tmpfs, vfs driver): podman
  also *unpacks* the layers into containers-storage, so it is shown but is not
  the same work as the two above.

Pull and unpack: hull pull then ``unpack_layers`` from the store (two reads of
each blob), hull's one-pass ``hull pull --unpack`` (each blob streamed once
into the store and through gunzip, diff_id and the layer applier),
against the floor of the same work done by C tools on the blobs read from the
registry's storage files, one pass each: ``sha256sum`` of the blob and
``gzip -dc`` into ``sha256sum`` (the diff_id), the blobs side by side; and the
same plus ``tar -x``, layer after layer.

Runs are interleaved; medians, throughput (compressed MB/s) and ratios are
printed. ``--compare-src DIR`` adds ``hull pull`` run from another tree's
``src`` (e.g. ``git archive HEAD | tar -x -C /tmp/head``, then
``--compare-src /tmp/head/src``): a before/after in one run, on the same
machine load. ``--profile`` adds an in-process breakdown of hull's download (HTTP
reads alone, plus sha256, the whole ingest) and cProfile's top functions of one
blob's ingest. Needs root (mounts a tmpfs).

    python bench/pull_bench.py [-n 5] [--profile] [--pull-only] [--compare-src DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unpack_bench  # noqa: E402 - the test image's builder, shared with the unpack benchmark
from hull.testing import podman  # noqa: E402
from hull.testing.registry import RegistryDidNotStart, RegistryServer  # noqa: E402

PY = sys.executable
LAUNCHER = "import sys; from hull.cli.main import main; sys.exit(main())"
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))
HULL = os.path.join(os.path.dirname(PY), "hull")
REPO = "bench/image"
# Pull then unpack the image's layers from the store: the blob is read twice.
HULL_PULL_UNPACK = """
import sys
from hull.distribution.client import Registry
from hull.distribution.pull import pull
from hull.distribution.reference import parse
from hull.image.layer import LayerSource, unpack_layers
from hull.image.store import LayoutStore
from hull.oci.image import parse_config
store = LayoutStore(sys.argv[1])
ref = parse(sys.argv[2])
result = pull(store, ref, registry=Registry(ref.domain))
_m, manifest = store.manifest(result.descriptor)
config = parse_config(store.fetch(manifest.config))
sources = [LayerSource(store.open(d.digest), d.media_type, d.digest, d.size, diff)
           for d, diff in zip(manifest.layers, config.rootfs.diff_ids)]
unpack_layers(sources, sys.argv[3])
"""
# The blobs side by side, as hull downloads them (tar -x in layer order: a later layer may overwrite).
FLOOR_HASH = 'for b in "$@"; do tee < "$b" >(sha256sum > /dev/null) | gzip -dc | sha256sum > /dev/null & done; wait'
FLOOR_TAR = (
    'for b in "$@"; do tee < "$b" >(sha256sum > /dev/null) | gzip -dc | tee >(sha256sum > /dev/null) '
    '| tar -x -C "$DEST"; done'
)


def sh(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(args, check=True, env=env, stdin=subprocess.DEVNULL)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def report(title: str, results: dict[str, list[float]], base: str, megabytes: float) -> None:
    print(f"\n{title}")
    ref = statistics.median(results[base])
    for name, times in results.items():
        med = statistics.median(times)
        print(
            f"  {name:<24} median {med * 1000:8.1f} ms  min {min(times) * 1000:8.1f} ms"
            f"  {megabytes / med:7.1f} MB/s   x{med / ref:5.2f} vs {base}"
        )


def profile(store_dir: str, ref_text: str, layers: list[tuple[str, int]]) -> None:
    """Where a download's time goes, in this process, one blob at a time (no pool threads)."""
    import cProfile
    import hashlib
    import pstats

    from hull.distribution.client import Registry as Client
    from hull.distribution.pull import _fetch
    from hull.distribution.reference import parse
    from hull.image.store import LayoutStore
    from hull.oci.image import Descriptor

    ref = parse(ref_text)
    client = Client(ref.domain)
    total = sum(size for _d, size in layers) / 1e6

    def http_only() -> None:
        for digest, _size in layers:
            client.open_blob(ref.path, digest).drain()

    def http_sha256() -> None:
        for digest, _size in layers:
            h = hashlib.sha256()
            for chunk in client.open_blob(ref.path, digest).chunks():
                h.update(chunk)

    def ingest() -> None:
        shutil.rmtree(store_dir, ignore_errors=True)
        store = LayoutStore(store_dir)
        with store.lease() as lease:
            for digest, size in layers:
                _fetch(client, store, ref.path, Descriptor("application/octet-stream", digest, size), lease)

    print("\nhull download breakdown (in-process, sequential, median of 3):")
    for name, fn in (("HTTP reads only", http_only), ("HTTP + sha256", http_sha256), ("store ingest", ingest)):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"  {name:<18} {med * 1000:8.1f} ms  {total / med:7.1f} MB/s")
    prof = cProfile.Profile()
    prof.runcall(ingest)
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="break down and cProfile hull's download")
    ap.add_argument("--pull-only", action="store_true", help="skip the pull+unpack comparison")
    ap.add_argument("--compare-src", default="", metavar="DIR", help="also time hull pull from this src tree")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (mounts a tmpfs)", file=sys.stderr)
        return 1
    for tool in ("docker-registry", "skopeo", "podman"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/setup.sh installs it)", file=sys.stderr)
            return 1
    sh(PY, "-m", "compileall", "-q", os.path.join(os.path.dirname(__file__), "..", "src"))
    if args.compare_src:
        sh(PY, "-m", "compileall", "-q", args.compare_src)
    base = tempfile.mkdtemp(prefix="hull-pull-bench-")
    sh("mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", base)
    registry: RegistryServer | None = None
    try:
        trees = unpack_bench.build_trees(os.path.join(base, "src"))
        layer_files = []
        for i, tree in enumerate(trees):
            layer = os.path.join(base, f"layer{i}.tar.gz")
            sh("tar", "--numeric-owner", "-czf", layer, "-C", tree, ".")
            layer_files.append(layer)
        layout, _mpath, _cpath = unpack_bench.build_layout(base, layer_files)
        shutil.rmtree(os.path.join(base, "src"))
        try:
            registry = RegistryServer(os.path.join(base, "registry"))
        except RegistryDidNotStart as err:
            raise SystemExit(str(err)) from None
        ref = f"{registry.host}/{REPO}:1"
        sh("skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:bench", f"docker://{ref}")
        layers = [(unpack_bench.sha256_file(f)[0], os.path.getsize(f)) for f in layer_files]
        blobs = [str(registry.blob_file(d)) for d, _s in layers]
        megabytes = sum(size for _d, size in layers) / 1e6
        sizes = ", ".join(f"{size / 1e6:.1f} MB" for _d, size in layers)
        print(f"layers (gzip): {sizes}; registry {registry.host}; tmpfs at {base}; {args.n} interleaved runs")

        podman_env = podman.conf_env(os.path.join(base, "containers.conf"))
        out = os.path.join(base, "out")
        dest = os.path.join(base, "dest")

        def hull_pull() -> float:
            return timed([HULL, "--root", out, "pull", "-q", ref])

        def skopeo_copy() -> float:
            return timed(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:bench"])

        def podman_pull() -> float:
            argv = podman.storage_argv(f"{out}/root", f"{out}/run")
            return timed([*argv, "pull", "-q", "--tls-verify=false", ref], env=podman_env)

        def hull_pull_unpack() -> float:
            return timed([PY, "-c", HULL_PULL_UNPACK, out, ref, f"{dest}/rootfs"])

        def hull_onepass() -> float:
            return timed([HULL, "--root", out, "pull", "-q", "--unpack", f"{dest}/rootfs", ref])

        def floor_hash() -> float:
            return timed(["bash", "-c", FLOOR_HASH, "floor", *blobs])

        def floor_tar() -> float:
            os.makedirs(f"{dest}/rootfs")
            return timed(["bash", "-c", FLOOR_TAR, "floor", *blobs], env={**os.environ, "DEST": f"{dest}/rootfs"})

        def src_hull_pull(src: str) -> Callable[[], float]:
            # One launcher for both trees (bin/hull's also imports re), hull imported from ``src``.
            env = {**os.environ, "PYTHONPATH": src}
            return lambda: timed([PY, "-c", LAUNCHER, "--root", out, "pull", "-q", ref], env=env)

        compared = {}
        if args.compare_src:
            print(f"compared: 'hull pull [this src]' is {SRC}, 'hull pull [other src]' {args.compare_src}")
            compared["hull pull [this src]"] = src_hull_pull(SRC)
            compared["hull pull [other src]"] = src_hull_pull(os.path.abspath(args.compare_src))
        pulls: dict[str, Callable[[], float]] = {
            "hull pull": hull_pull,
            **compared,
            "skopeo copy": skopeo_copy,
            "podman pull (+unpack)": podman_pull,
        }
        unpacks: dict[str, Callable[[], float]] = {}
        if not args.pull_only:
            unpacks["hull pull, then unpack"] = hull_pull_unpack
            if _has_onepass():
                unpacks["hull one-pass pull+unpack"] = hull_onepass
            unpacks["floor: sha256+gunzip"] = floor_hash
            unpacks["floor: + tar -x"] = floor_tar
        results: dict[str, list[float]] = {k: [] for k in pulls}
        unpack_results: dict[str, list[float]] = {k: [] for k in unpacks}
        for _ in range(args.n):
            for table, fns in ((results, pulls), (unpack_results, unpacks)):
                for name, fn in fns.items():
                    os.makedirs(out)
                    os.makedirs(dest)
                    table[name].append(fn())
                    shutil.rmtree(out)
                    shutil.rmtree(dest)
        report(f"pull, {megabytes:.1f} MB in 3 gzip layers", results, "skopeo copy", megabytes)
        if unpacks:
            report("pull and unpack", unpack_results, "floor: sha256+gunzip", megabytes)
        if args.profile:
            profile(out, ref, layers)
    finally:
        if registry is not None:
            registry.stop()
        if subprocess.run(["umount", base], check=False).returncode != 0:
            subprocess.run(["umount", "-l", base], check=False)
        os.rmdir(base)
    return 0


def _has_onepass() -> bool:
    import inspect

    from hull.distribution import pull

    return "unpack_to" in inspect.signature(pull.pull).parameters


if __name__ == "__main__":
    sys.exit(main())
