"""What a network costs a container: ``run --rm IMAGE true`` on the default network vs ``--network none``,
for hull (CNI reference plugins: bridge, host-local, portmap, firewall, tuning) and podman (its default
network backend), in one interleaved run.

    python bench/network_bench.py [-n 20]

Prints medians, and the network's cost (default minus none) for each engine. Goal: hull's network set-up
adds <= 30 ms. Both engines keep their state on a tmpfs; the image is hull's built-in busybox, saved by hull
and loaded into podman. Needs root, podman, runc and the project's virtualenv.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine_bench import IMAGE, engines, ms, on_tmpfs, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20, help="runs of each variant (default 20)")
    args = parser.parse_args()
    on_tmpfs("hull-net-bench-", lambda work: run(work, args.n))


def run(work: str, n: int) -> None:
    hull, podman, env = engines(work)
    runc = ["--runtime", "/usr/bin/runc"]
    variants = {
        "hull, default network": ([*hull, "run", "--rm", IMAGE, "true"], None),
        "hull, --network none": ([*hull, "run", "--rm", "--network", "none", IMAGE, "true"], None),
        "podman, default network": ([*podman, "run", "--rm", *runc, IMAGE, "true"], env),
        "podman, --network none": ([*podman, "run", "--rm", *runc, "--network", "none", IMAGE, "true"], env),
    }
    times: dict[str, list[int]] = {name: [] for name in variants}
    for _ in range(2):
        for argv, e in variants.values():
            timed(argv, e)
    for _ in range(n):
        for name, (argv, e) in variants.items():
            times[name].append(timed(argv, e))
    print(f"run --rm {IMAGE} true, N={n} each, interleaved; tmpfs")
    print(f"{'':<28}{'median ms':>10}{'p90 ms':>9}")
    for name, values in times.items():
        print(f"{name:<28}{ms(values):>10.1f}{ms(values, 0.9):>9.1f}")
    for engine in ("hull", "podman"):
        cost = ms(times[f"{engine}, default network"]) - ms(times[f"{engine}, --network none"])
        print(f"{engine}: the network adds {cost:.1f} ms")
    print("goal: hull's network set-up adds <= 30 ms")


if __name__ == "__main__":
    main()
