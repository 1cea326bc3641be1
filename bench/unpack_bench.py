"""Layer unpack and creation: hull vs `umoci unpack` vs GNU tar, in one run, on a tmpfs (issue 4 section 7).

The image has three gzip layers: two of ~50 MB incompressible random data and
one of 20,000 small text files. Unpacking: hull (``unpack_layers``, verifying
every digest and diff_id, in a fresh interpreter so its start-up counts), umoci
(``umoci unpack`` of the same OCI layout; it also writes its mtree manifest and
a config.json) and GNU tar (``tar -xzf`` of each layer in turn, no
verification, no whiteout handling). Creation: hull ``create_layer`` vs
``tar -czf`` of the same trees at gzip's default level 6. Runs are interleaved;
medians and ratios are printed. Needs root (mounts a tmpfs).

    python bench/unpack_bench.py [-n 5] [--profile]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping

PY = sys.executable
HULL_UNPACK = """
import sys
from hull.image.layer import LayerSource, unpack_layers
layout, dest = sys.argv[1], sys.argv[2]
import json
manifest = json.load(open(sys.argv[3]))
config = json.load(open(sys.argv[4]))
sources = []
for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
    algo, hexd = desc["digest"].split(":")
    f = open(f"{layout}/blobs/{algo}/{hexd}", "rb", buffering=0)
    sources.append(LayerSource(f, desc["mediaType"], desc["digest"], desc["size"], diff_id))
unpack_layers(sources, dest)
for source in sources:
    source.blob.close()
"""
HULL_CREATE = """
import sys
from hull.image.changeset import create_layer
with open(sys.argv[2], "wb") as out:
    create_layer(out, sys.argv[1])
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


def build_trees(base: str) -> list[str]:
    trees = []
    for i in (1, 2):
        t = os.path.join(base, f"tree{i}", "data", f"blob{i}")
        os.makedirs(t)
        for j in range(5):
            with open(os.path.join(t, f"part{j}.bin"), "wb") as f:
                f.write(os.urandom(10 << 20))
        trees.append(os.path.join(base, f"tree{i}"))
    t = os.path.join(base, "tree3")
    rnd = random.Random(4)
    words = [f"word{k}" for k in range(500)]
    for d in range(200):
        sub = os.path.join(t, "usr", "share", f"pkg{d:03d}")
        os.makedirs(sub)
        for j in range(100):
            with open(os.path.join(sub, f"file{j:03d}.txt"), "w") as f:
                f.write(" ".join(rnd.choices(words, k=rnd.randint(20, 300))) + "\n")
    trees.append(t)
    return trees


def sha256_file(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest(), os.path.getsize(path)


def build_layout(base: str, layers: list[str]) -> tuple[str, str, str]:
    """An OCI image layout whose layers are GNU tar's gzip tars, for umoci and hull alike."""
    layout = os.path.join(base, "layout")
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    descs, diff_ids = [], []
    for layer in layers:
        digest, size = sha256_file(layer)
        shutil.copy(layer, os.path.join(layout, "blobs", "sha256", digest[7:]))
        out = subprocess.run(["gzip", "-dc", layer], check=True, capture_output=True).stdout
        diff_ids.append("sha256:" + hashlib.sha256(out).hexdigest())
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})

    def blob(obj: Mapping[str, object]) -> tuple[str, int, str]:
        data = json.dumps(obj).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = os.path.join(layout, "blobs", "sha256", digest[7:])
        with open(path, "wb") as f:
            f.write(data)
        return digest, len(data), path

    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}  # fmt: skip
    cdigest, csize, cpath = blob(config)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
                "layers": descs}  # fmt: skip
    mdigest, msize, mpath = blob(manifest)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": mdigest, "size": msize, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]},
                  f)  # fmt: skip
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    return layout, mpath, cpath


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def report(title: str, results: dict[str, list[float]], base: str) -> None:
    print(f"\n{title}")
    ref = statistics.median(results[base])
    for name, times in results.items():
        med = statistics.median(times)
        print(
            f"  {name:<14} median {med * 1000:8.1f} ms  min {min(times) * 1000:8.1f} ms   x{med / ref:5.2f} vs {base}"
        )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile one hull unpack (top functions)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (mounts a tmpfs)", file=sys.stderr)
        return 1
    sh(PY, "-m", "compileall", "-q", os.path.join(os.path.dirname(__file__), "..", "src"))
    base = tempfile.mkdtemp(prefix="hull-unpack-bench-")
    sh("mount", "-t", "tmpfs", "-o", "size=3g", "tmpfs", base)
    try:
        trees = build_trees(os.path.join(base, "src"))
        layers = []
        for i, tree in enumerate(trees):
            layer = os.path.join(base, f"layer{i}.tar.gz")
            sh("tar", "--numeric-owner", "-czf", layer, "-C", tree, ".")
            layers.append(layer)
        layout, mpath, cpath = build_layout(base, layers)
        sizes = ", ".join(f"{os.path.getsize(layer) / 1e6:.1f} MB" for layer in layers)
        print(f"layers (gzip): {sizes}; tmpfs at {base}; {args.n} interleaved runs")
        dest = os.path.join(base, "dest")

        def hull_unpack() -> float:
            return timed([PY, "-c", HULL_UNPACK, layout, dest + "/rootfs", mpath, cpath])

        def umoci_unpack() -> float:
            return timed(["umoci", "unpack", "--image", f"{layout}:bench", dest])

        def tar_unpack() -> float:
            os.makedirs(dest + "/rootfs")
            t = time.perf_counter()
            for layer in layers:
                subprocess.run(["tar", "-xzf", layer, "-C", dest + "/rootfs"], check=True)
            return time.perf_counter() - t

        unpack = {"hull": hull_unpack, "umoci unpack": umoci_unpack, "tar -xzf": tar_unpack}
        results: dict[str, list[float]] = {k: [] for k in unpack}
        for _ in range(args.n):
            for name, fn in unpack.items():
                os.makedirs(dest)
                results[name].append(fn())
                shutil.rmtree(dest)
        report("unpack, 3 layers (2 x 50 MB random, 20,000 small files)", results, "tar -xzf")

        out = os.path.join(base, "created.tar.gz")
        per_tree: dict[str, dict[str, list[float]]] = {t: {"hull": [], "tar -czf": []} for t in ("50 MB", "20k files")}
        for _ in range(args.n):
            for label, tree in (("50 MB", trees[0]), ("20k files", trees[2])):
                h = timed([PY, "-c", HULL_CREATE, tree, out])
                g = timed(["tar", "--numeric-owner", "-czf", out, "-C", tree, "."])
                per_tree[label]["hull"].append(h)
                per_tree[label]["tar -czf"].append(g)
        for label, res in per_tree.items():
            report(f"create a gzip layer from a tree of {label}", res, "tar -czf")

        if args.profile:
            import cProfile
            import pstats

            sys.argv = ["x", layout, dest + "/rootfs", mpath, cpath]
            os.makedirs(dest)
            prof = cProfile.Profile()
            prof.runctx(HULL_UNPACK, {"__name__": "__bench__"}, {})
            shutil.rmtree(dest)
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    finally:
        if subprocess.run(["umount", base], check=False).returncode != 0:
            subprocess.run(["umount", "-l", base], check=False)
        os.rmdir(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
