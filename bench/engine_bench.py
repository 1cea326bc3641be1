"""Engine latency: ``hull run --rm IMAGE true`` against ``podman run --rm`` of the same image, same runtime.

    python bench/engine_bench.py [-n 20] [--concurrent 50]

(a) one container, foreground, removed at exit: hull (its own runtime, in
    process) and podman with ``--runtime hull-runtime``; hull and podman with
    ``--runtime runc``. Interleaved, medians and the ratio to podman.
(b) ``--concurrent`` containers started at once with ``run -d``: total time
    until every command returned, failures; then removed.

Both engines keep their state on a tmpfs (file creation on this VM's ext4 is
erratic); podman uses its overlay driver there, hull its overlayfs
snapshotter; podman runs with ``--network none`` as hull does. The image is
hull's built-in ``localhost/busybox``, saved by hull and loaded into podman.
Needs root, podman, runc and the project's virtualenv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(os.path.dirname(HERE), ".venv", "bin")
HULL = os.path.join(VENV, "hull")
HULL_RUNTIME = os.path.join(VENV, "hull-runtime")
IMAGE = "localhost/busybox:latest"


def fail(message: str) -> None:
    sys.exit(f"engine_bench: {message}")


def timed(argv: list[str], env: dict[str, str] | None = None) -> int:
    start = time.perf_counter_ns()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    took = time.perf_counter_ns() - start
    if proc.returncode != 0:
        fail(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return took


def ms(values: list[int], q: float = 0.5) -> float:
    if q == 0.5:
        return statistics.median(values) / 1e6
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20, help="runs of each variant (default 20)")
    parser.add_argument("--concurrent", type=int, default=50, help="containers started at once in (b)")
    args = parser.parse_args()
    on_tmpfs("hull-engine-bench-", lambda work: run(work, args.n, args.concurrent))


def on_tmpfs(prefix: str, body: Callable[[str], None]) -> None:
    """``body`` in a directory on a fresh tmpfs, unmounted after (needs root)."""
    if os.geteuid() != 0:
        fail("needs root")
    with tempfile.TemporaryDirectory(prefix=prefix) as work:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", work], check=True)
        try:
            body(work)
        finally:
            subprocess.run(["umount", "-l", work], check=False)


def engines(work: str) -> tuple[list[str], list[str], dict[str, str]]:
    """hull's and podman's command lines with their state under ``work``, podman's environment, and
    the built-in busybox image in both (built by hull, saved, loaded into podman)."""
    from hull.testing import podman as podman_setup

    hull = [HULL, "--root", f"{work}/hull/root", "--runroot", f"{work}/hull/run"]
    env = podman_setup.conf_env(f"{work}/containers.conf")
    podman = ["/usr/bin/podman", "--root", f"{work}/podman/root", "--runroot", f"{work}/podman/run",
              "--storage-driver", "overlay", "--tmpdir", f"{work}/podman/tmp"]  # fmt: skip
    timed([*hull, "run", "--rm", "--network", "none", IMAGE, "true"])  # builds the built-in image
    timed([*hull, "image", "save", IMAGE, "-o", f"{work}/busybox.tar"])
    timed([*podman, "load", "-i", f"{work}/busybox.tar"], env)
    return hull, podman, env


def run(work: str, n: int, concurrent: int) -> None:
    hull, podman, env = engines(work)
    variants = {
        "hull": ([*hull, "run", "--rm", "--network", "none", IMAGE, "true"], None),
        "podman --runtime hull-runtime": (
            [*podman, "run", "--rm", "--network", "none", "--runtime", HULL_RUNTIME, IMAGE, "true"], env),
        "hull --runtime runc": ([*hull, "run", "--rm", "--network", "none", "--runtime", "runc", IMAGE, "true"], None),
        "podman --runtime runc": (
            [*podman, "run", "--rm", "--network", "none", "--runtime", "/usr/bin/runc", IMAGE, "true"], env),
    }  # fmt: skip
    times: dict[str, list[int]] = {name: [] for name in variants}
    for _ in range(2):  # warm-up: page cache, the first cgroup migration
        for argv, e in variants.values():
            timed(argv, e)
    for _ in range(n):
        for name, (argv, e) in variants.items():
            times[name].append(timed(argv, e))
    print(f"(a) run --rm {IMAGE} true, N={n} each, interleaved; tmpfs; network none")
    print(f"{'':<32}{'median ms':>10}{'p90 ms':>9}{'x podman':>10}")
    pairs = {"hull": "podman --runtime hull-runtime", "hull --runtime runc": "podman --runtime runc"}
    for name, values in times.items():
        peer = pairs.get(name)
        ratio = f"{ms(values) / ms(times[peer]):>10.2f}" if peer else ""
        print(f"{name:<32}{ms(values):>10.1f}{ms(values, 0.9):>9.1f}{ratio}")
    print("goal: hull <= 0.5x podman with the same runtime")
    concurrency(hull, None, concurrent, "hull", ["--network", "none"])
    runc_flags = ["--network", "none", "--runtime", "/usr/bin/runc"]
    concurrency([*podman], env, concurrent, "podman --runtime runc", runc_flags)


def concurrency(engine: list[str], env: dict[str, str] | None, count: int, name: str,
                flags: list[str] | None = None) -> None:  # fmt: skip
    def one(i: int) -> tuple[bool, str]:
        proc = subprocess.run([*engine, "run", "-d", *(flags or []), IMAGE, "sleep", "60"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)  # fmt: skip
        return proc.returncode == 0, proc.stderr.strip()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(one, range(count)))
    took = time.perf_counter() - start
    failures = [err for ok, err in results if not ok]
    print(f"\n(b) {name}: {count} containers started at once (run -d): {took:.2f} s, {len(failures)} failures")
    for err in failures[:3]:
        print(f"    {err}")
    ids = subprocess.run([*engine, "ps", "-a", "-q"], capture_output=True, text=True, env=env).stdout.split()
    start = time.perf_counter()
    if ids:
        subprocess.run([*engine, "rm", "-f", *ids], capture_output=True, env=env)
    print(f"    rm -f of all {len(ids)}: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
