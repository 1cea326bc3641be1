"""hull-runtime vs runc vs crun, side by side in one run.

    python bench/runtime_bench.py [-n 100] [--warmup 3] [--importtime]

(a) ``run`` of busybox ``true`` in the foreground (create, start, wait, delete in one command);
(b) ``create``, ``start``, wait for the container to exit, ``delete``: four steps an engine takes
    separately. The container runs ``true`` so that it exits on its own: the wait is for its
    init to exit (the benchmark's spawner is a child subreaper, as containerd-shim is, so it
    reaps the init with waitpid) and ``delete`` is a plain delete of a stopped container, the
    common case. No ``state`` polling is timed: how often one polls would be measured instead.
(c) (a) again with what an engine adds: the OCI config podman generates for
    ``--memory 256m --pids-limit 100`` (its cgroup resources, default capabilities and default
    seccomp profile) merged into the busybox config;
(d) ``podman run --rm`` of the same image with each runtime as ``--runtime`` (fewer iterations:
    podman's own cost dominates).

Every runtime command is started by a long-lived spawner process through a tiny C launcher
(compiled with cc at start-up) that forks, execs the runtime, and reports the time from fork to
reaped and wait4(2)'s rusage; so neither the driver's overhead nor (for crun) that of the mount
namespace is counted. Without a C compiler the spawner times posix_spawn..wait4 itself and peak
RSS is not reported. The runtimes take turns within each iteration, in a rotating order, so
machine noise hits them all alike. Bundles and state live on a tmpfs. Nothing is asserted about
the numbers.

Peak RSS is the largest ``ru_maxrss`` over the iterations, from wait4(2) on the runtime command.
That is the peak resident set of the runtime process *or* of any descendant it waited for (the
kernel reports max(own maxrss, cmaxrss)): a maximum over single processes, not a sum. For
``run`` that includes the container's init, which the foreground runtime reaps as subreaper
(runc: ``runc init``; hull-runtime and crun: a fork of themselves; all end as busybox ``true``).
For (b) it is the largest of create, start and delete; there the init is reaped by the spawner
and is not counted. (Spawned straight from Python, ru_maxrss would include the spawner's own
RSS: exec folds the old memory's high-water mark into it. Hence the launcher.)

crun 1.8.1 refuses a hybrid cgroup host (v1 controllers plus a cgroup2 mount at
/sys/fs/cgroup/unified). Its spawner therefore runs in a private mount namespace
(``unshare -m``) in which that cgroup2 mount is unmounted, created once before timing; crun
calls are spawned there exactly as the others are spawned in the host's namespace, so the
namespace costs nothing per iteration. hull-runtime and runc run in the host's namespace, as an
engine would call them.

Needs root, runc, crun, podman, busybox-static and the project's virtualenv (.venv/bin/hull-runtime).
Podman runs with a private store under the work directory (vfs driver, no network) and the
containers.conf the engine tests use (root lacks CAP_SYS_RESOURCE here, so no default ulimits).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HULL_RUNTIME = os.path.join(REPO, ".venv", "bin", "hull-runtime")
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
HYBRID_CGROUP2 = "/sys/fs/cgroup/unified"
PR_SET_CHILD_SUBREAPER = 36

# Why a C launcher: ru_maxrss counts the memory a process had *before* execve (the kernel folds the
# old mm's high-water mark into it at exec), so anything spawned straight from Python reports at
# least the spawner's own ~15 MiB. This launcher is tiny: it forks, the child execs the runtime, and
# it reports the child's wait4() ru_maxrss and the time from fork to reaped (CLOCK_MONOTONIC).
LAUNCHER_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct timespec a, b;
    struct rusage ru;
    int status;
    if (argc < 3) return 2;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid < 0) return 3;
    if (pid == 0) { execv(argv[2], argv + 2); _exit(127); }
    if (wait4(pid, &status, 0, &ru) < 0) return 4;
    clock_gettime(CLOCK_MONOTONIC, &b);
    FILE *f = fopen(argv[1], "w");
    if (!f) return 5;
    long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    fprintf(f, "%lld %ld %d\n", ns, ru.ru_maxrss, status);
    return fclose(f) == 0 ? 0 : 6;
}
"""

# ---------------------------------------------------------------- the spawner (runs as a child process)


def spawner_main() -> None:
    """Read one JSON request per line on stdin, run it, answer one JSON line on stdout."""
    libc = ctypes.CDLL(None, use_errno=True)
    # Like containerd-shim: orphaned container inits are re-parented to us, and we reap them.
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "run":
            answer = _spawn(request["argv"], request["out"])
        elif request["op"] == "lifecycle":
            answer = _lifecycle(request)
        else:
            answer = {"error": f"unknown op {request['op']!r}"}
        _reap_strays()
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def _spawn(argv: list[str], out: str) -> dict[str, Any]:
    """Run ``argv`` through the launcher: elapsed ns, exit status, ru_maxrss (KiB or None) and the output."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    launcher = os.environ.get("RUNTIME_BENCH_LAUNCHER", "")
    if launcher:
        report = out + ".rusage"
        pid = os.posix_spawn(launcher, [launcher, report, *argv], os.environ, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"launcher failed for {argv}: status {status}")
        with open(report) as f:
            elapsed, maxrss, wstatus = (int(x) for x in f.read().split())
        code = os.waitstatus_to_exitcode(wstatus)
        answer: dict[str, Any] = {"ns": elapsed, "rc": code, "maxrss": maxrss}
    else:
        start = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
        _, status, _usage = os.wait4(pid, 0)
        # ru_maxrss would include this Python process's RSS (see LAUNCHER_C): not reported.
        answer = {"ns": time.perf_counter_ns() - start, "rc": os.waitstatus_to_exitcode(status), "maxrss": None}
    with open(out, errors="replace") as f:
        answer["output"] = f.read(4000)
    return answer


def _lifecycle(request: dict[str, Any]) -> dict[str, Any]:
    base, cid, out, pid_file = request["argv"], request["id"], request["out"], request["pid_file"]
    phases: dict[str, int] = {}
    maxrss: int | None = 0
    for phase, args in (
        ("create", ["create", "--bundle", request["bundle"], "--pid-file", pid_file, cid]),
        ("start", ["start", cid]),
        ("wait", None),
        ("delete", ["delete", cid]),
    ):
        if args is None:
            t = time.perf_counter_ns()
            with open(pid_file) as f:
                init = int(f.read())
            _wait_exit(init)
            phases[phase] = time.perf_counter_ns() - t
            continue
        result = _spawn([*base, *args], out)
        phases[phase] = result["ns"]
        maxrss = None if maxrss is None or result["maxrss"] is None else max(maxrss, result["maxrss"])
        if result["rc"] != 0:
            return {"rc": result["rc"], "failed": phase, "output": result["output"]}
    return {"rc": 0, "ns": sum(phases.values()), "phases": phases, "maxrss": maxrss}


def _wait_exit(pid: int) -> None:
    """Wait for the container's init to exit; it was re-parented to us (a subreaper) when create exited."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        # Not ours after all (some runtimes may keep a parent around): wait on a pidfd.
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            select.select([fd], [], [])
        finally:
            os.close(fd)


def _reap_strays() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ---------------------------------------------------------------- the driver


@dataclass
class Runtime:
    name: str
    argv: list[str]  # the runtime and its --root
    version: str
    private_mount_ns: bool = False
    binary: str = ""
    containers_conf: str = ""
    proc: subprocess.Popen[str] | None = None
    run_ns: list[int] = field(default_factory=list)
    run_rss: list[int | None] = field(default_factory=list)
    limited_ns: list[int] = field(default_factory=list)
    limited_rss: list[int | None] = field(default_factory=list)
    podman_ns: list[int] = field(default_factory=list)
    cycle_ns: list[int] = field(default_factory=list)
    cycle_phases: dict[str, list[int]] = field(default_factory=dict)
    cycle_rss: list[int | None] = field(default_factory=list)

    def start_spawner(self, hide: str | None, launcher: str | None) -> None:
        me = [sys.executable, os.path.abspath(__file__), "--spawner"]
        if self.private_mount_ns:
            # One private mount namespace for the whole series; hide the hybrid cgroup2 mount in it.
            script = (f"umount {hide} && " if hide else "") + 'exec "$@"'
            me = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "spawner", *me]
        env = dict(os.environ, RUNTIME_BENCH_LAUNCHER=launcher or "", CONTAINERS_CONF=self.containers_conf)
        self.proc = subprocess.Popen(me, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(request) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.name}: the spawner died (exit {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop_spawner(self) -> None:
        if self.proc:
            assert self.proc.stdin
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def fail(message: str) -> NoReturn:
    raise SystemExit(f"runtime_bench: {message}")


def first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except OSError as err:
        fail(f"{argv[0]}: {err}")
    return out.splitlines()[0] if out else "?"


def is_tmpfs(path: str) -> bool:
    """Whether the mount holding ``path`` is a tmpfs (the longest mount point prefix in mountinfo)."""
    path = os.path.realpath(path)
    best, kind = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, kind = point, fields[fields.index("-") + 1]
    return kind == "tmpfs"


def mounted_fstype(point: str) -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == point:
                return fields[fields.index("-") + 1]
    return ""


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1), linear interpolation between closest ranks."""
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    k = (len(data) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def build_launcher(work: str) -> str | None:
    source = os.path.join(work, "launcher.c")
    binary = os.path.join(work, "launcher")
    with open(source, "w") as f:
        f.write(LAUNCHER_C)
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    proc = subprocess.run([cc, "-O2", "-o", binary, source], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  (no launcher, peak RSS not reported: {proc.stderr.strip()})")
        return None
    return binary


def build_bundles(work: str) -> tuple[str, str, str]:
    sys.path.insert(0, os.path.join(REPO, "src"))
    from hull.testing import busybox

    rootfs = busybox.build_rootfs(os.path.join(work, "rootfs"))
    bundle = busybox.build_bundle(os.path.join(work, "bundle-true"), ["true"], busybox.default_config(["true"]), rootfs)
    probe_args = ["sh", "-c", "echo probe-ok hostname=$(hostname) uid=$(id -u)"]
    probe = busybox.build_bundle(
        os.path.join(work, "bundle-probe"), probe_args, busybox.default_config(probe_args), rootfs
    )
    return bundle, probe, rootfs


PODMAN_IMAGE = "localhost/busybox:bench"


def podman_argv(work: str) -> list[str]:
    from hull.testing import podman

    store = os.path.join(work, "podman")
    return podman.storage_argv(f"{store}/root", f"{store}/run", podman="/usr/bin/podman")


def setup_podman(work: str, rootfs: str) -> str:
    """A private podman store holding the busybox image; returns the containers.conf path."""
    from hull.testing import podman

    conf = os.path.join(work, "containers.conf")
    env = podman.conf_env(conf)
    tar = os.path.join(work, "rootfs.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
    proc = subprocess.run([*podman_argv(work), "import", tar, PODMAN_IMAGE], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        fail(f"podman import: {proc.stderr.strip()}")
    return conf


def engine_config(work: str, conf: str) -> dict[str, Any]:
    """The OCI config podman generates for --memory 256m --pids-limit 100 (made with runc, then read back)."""
    env = dict(os.environ, CONTAINERS_CONF=conf)
    podman = [*podman_argv(work), "--runtime", "/usr/bin/runc"]
    name = "bench-config"
    try:
        for args in (
            ["create", "--name", name, "--memory", "256m", "--pids-limit", "100", "--network", "none", PODMAN_IMAGE],
            ["init", name],
        ):
            proc = subprocess.run(
                [*podman, *args, *(["true"] if args[0] == "create" else [])], capture_output=True, text=True, env=env
            )
            if proc.returncode != 0:
                fail(f"podman {args[0]}: {proc.stderr.strip()}")
        path = subprocess.run(
            [*podman, "inspect", "--format", "{{.OCIConfigPath}}", name], capture_output=True, text=True, env=env
        ).stdout.strip()
        with open(path) as f:
            doc: dict[str, Any] = json.load(f)
        return doc
    finally:
        subprocess.run([*podman, "rm", "--force", name], capture_output=True, env=env)


def build_limited_bundle(work: str, rootfs: str, engine: dict[str, Any]) -> str:
    from hull.testing import busybox

    config = busybox.default_config(["true"])
    config["process"]["capabilities"] = engine["process"]["capabilities"]
    config["linux"]["resources"] = engine["linux"]["resources"]
    config["linux"]["seccomp"] = engine["linux"]["seccomp"]
    return busybox.build_bundle(os.path.join(work, "bundle-limited"), ["true"], config, rootfs)


def verify(runtimes: list[Runtime], bundle: str, probe: str, work: str) -> None:
    """Each runtime must run the probe and the benchmark bundle, and do one create/start/delete."""
    for rt in runtimes:
        out = os.path.join(work, f"out-{rt.name}")
        answer = rt.ask({"op": "run", "argv": [*rt.argv, "run", "--bundle", probe, f"probe-{rt.name}"], "out": out})
        if answer["rc"] != 0 or "probe-ok hostname=hull uid=0" not in answer["output"]:
            fail(f"{rt.name} cannot run the default busybox config (exit {answer['rc']}): {answer['output'].strip()}")
        answer = rt.ask({"op": "run", "argv": [*rt.argv, "run", "--bundle", bundle, f"verify-{rt.name}"], "out": out})
        if answer["rc"] != 0:
            fail(f"{rt.name} run of true exited {answer['rc']}: {answer['output'].strip()}")
        answer = rt.ask(lifecycle_request(rt, bundle, f"verify-cycle-{rt.name}", work))
        if answer["rc"] != 0:
            fail(f"{rt.name} {answer['failed']} exited {answer['rc']}: {answer['output'].strip()}")


def lifecycle_request(rt: Runtime, bundle: str, cid: str, work: str) -> dict[str, Any]:
    return {
        "op": "lifecycle",
        "argv": rt.argv,
        "bundle": bundle,
        "id": cid,
        "out": os.path.join(work, f"out-{rt.name}"),
        "pid_file": os.path.join(work, f"pid-{rt.name}"),
    }


def _run_once(rt: Runtime, argv: list[str], work: str, what: str) -> dict[str, Any]:
    answer = rt.ask({"op": "run", "argv": argv, "out": os.path.join(work, f"out-{rt.name}")})
    if answer["rc"] != 0:
        fail(f"{rt.name} {what} exited {answer['rc']}: {answer['output'].strip()}")
    return answer


def bench(runtimes: list[Runtime], bundles: dict[str, str], work: str, n: int, warmup: int) -> None:
    bundle, limited = bundles["true"], bundles["limited"]
    for i in range(-warmup, n):
        k = i % len(runtimes)
        order = runtimes[k:] + runtimes[:k]  # rotate who goes first
        for rt in order:
            answer = _run_once(rt, [*rt.argv, "run", "--bundle", bundle, f"r{i + warmup}"], work, f"run #{i}")
            if i >= 0:
                rt.run_ns.append(answer["ns"])
                rt.run_rss.append(answer["maxrss"])
        for rt in order:
            answer = _run_once(rt, [*rt.argv, "run", "--bundle", limited, f"l{i + warmup}"], work, f"limited run #{i}")
            if i >= 0:
                rt.limited_ns.append(answer["ns"])
                rt.limited_rss.append(answer["maxrss"])
        for rt in reversed(order):
            answer = rt.ask(lifecycle_request(rt, bundle, f"c{i + warmup}", work))
            if answer["rc"] != 0:
                fail(f"{rt.name} {answer['failed']} exited {answer['rc']} at iteration {i}: {answer['output'].strip()}")
            if i >= 0:
                rt.cycle_ns.append(answer["ns"])
                rt.cycle_rss.append(answer["maxrss"])
                for phase, ns in answer["phases"].items():
                    rt.cycle_phases.setdefault(phase, []).append(ns)


def bench_podman(runtimes: list[Runtime], work: str, n: int, warmup: int) -> None:
    for i in range(-warmup, n):
        k = i % len(runtimes)
        for rt in runtimes[k:] + runtimes[:k]:
            argv = [
                *podman_argv(work),
                "--runtime",
                rt.binary,
                "run",
                "--rm",
                "--network",
                "none",
                PODMAN_IMAGE,
                "true",
            ]
            answer = _run_once(rt, argv, work, f"podman run #{i}")
            if i >= 0:
                rt.podman_ns.append(answer["ns"])


def report(runtimes: list[Runtime], n: int) -> None:
    def ms(values: list[int], q: float = 0.5) -> float:
        return pct([v / 1e6 for v in values], q)

    def mib(values: list[int | None]) -> str:
        known = [v for v in values if v is not None]
        return f"{max(known) / 1024:.1f}" if known and len(known) == len(values) else "n/a"

    runc = next(rt for rt in runtimes if rt.name == "runc")
    print(f"\n(a) run /bin/true in the foreground (N={n} each)")
    print(f"{'runtime':<14}{'median ms':>11}{'p90 ms':>10}{'x runc':>9}{'peak RSS MiB':>15}")
    for rt in runtimes:
        ratio = ms(rt.run_ns) / ms(runc.run_ns)
        rss = mib(rt.run_rss)
        print(f"{rt.name:<14}{ms(rt.run_ns):>11.1f}{ms(rt.run_ns, 0.9):>10.1f}{ratio:>9.2f}{rss:>15}")

    phases = ("create", "start", "wait", "delete")
    print(f"\n(b) create + start + wait for exit + delete, container: true (N={n} each)")
    head = "".join(f"{p + ' ms':>11}" for p in phases)
    print(f"{'runtime':<14}{'median ms':>11}{'p90 ms':>10}{'x runc':>9}{'peak RSS MiB':>15}  |{head}  (medians)")
    for rt in runtimes:
        ratio = ms(rt.cycle_ns) / ms(runc.cycle_ns)
        rss = mib(rt.cycle_rss)
        cols = "".join(f"{ms(rt.cycle_phases[p]):>11.1f}" for p in phases)
        print(f"{rt.name:<14}{ms(rt.cycle_ns):>11.1f}{ms(rt.cycle_ns, 0.9):>10.1f}{ratio:>9.2f}{rss:>15}  |{cols}")

    print("\n(c) run /bin/true with podman's config for --memory 256m --pids-limit 100: cgroup limits,")
    print(f"    default capabilities and seccomp profile (N={n} each)")
    print(f"{'runtime':<14}{'median ms':>11}{'p90 ms':>10}{'x runc':>9}{'peak RSS MiB':>15}{'vs (a) ms':>11}")
    for rt in runtimes:
        ratio = ms(rt.limited_ns) / ms(runc.limited_ns)
        extra = ms(rt.limited_ns) - ms(rt.run_ns)
        rss = mib(rt.limited_rss)
        cols = f"{ms(rt.limited_ns):>11.1f}{ms(rt.limited_ns, 0.9):>10.1f}{ratio:>9.2f}{rss:>15}{extra:>+11.1f}"
        print(f"{rt.name:<14}{cols}")

    if runc.podman_ns:
        print(f"\n(d) podman run --rm --network none busybox true, with --runtime each (N={len(runc.podman_ns)} each)")
        print(f"{'runtime':<14}{'median ms':>11}{'p90 ms':>10}{'x runc':>9}")
        for rt in runtimes:
            ratio = ms(rt.podman_ns) / ms(runc.podman_ns)
            print(f"{rt.name:<14}{ms(rt.podman_ns):>11.1f}{ms(rt.podman_ns, 0.9):>10.1f}{ratio:>9.2f}")


def importtime(work: str) -> None:
    """``python -X importtime`` of ``hull-runtime state nonexistent``: the fixed start-up cost of every command."""
    argv = [VENV_PYTHON, "-X", "importtime", HULL_RUNTIME, "--root", os.path.join(work, "state-it"), "state", "x"]
    subprocess.run(argv, capture_output=True, text=True)  # warm the .pyc files
    proc = subprocess.run(argv, capture_output=True, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        # The name column is indented two spaces per level of nesting: keep that to find top-level imports.
        rows.append((int(self_us), int(cumulative_us), name[1:].rstrip()))
    total = sum(r[0] for r in rows)
    print(f"\nimporttime of `hull-runtime state nonexistent`: {total / 1000:.1f} ms in {len(rows)} imports")
    print("  slowest top-level imports (cumulative ms):")
    top = sorted((r for r in rows if not r[2].startswith(" ")), key=lambda r: -r[1])[:8]
    for _, cumulative, name in top:
        print(f"  {cumulative / 1000:>8.1f}  {name}")
    timings = {}
    for label, cmd in (
        ("hull-runtime", [HULL_RUNTIME]),
        ("runc", ["/usr/bin/runc"]),
        ("crun", ["/usr/bin/crun"]),
    ):
        samples = []
        for _ in range(10):
            t = time.perf_counter_ns()
            subprocess.run([*cmd, "--root", os.path.join(work, "state-it"), "state", "x"], capture_output=True)
            samples.append(time.perf_counter_ns() - t)
        timings[label] = statistics.median(samples) / 1e6
    print(
        "  `state nonexistent` wall time, median of 10 (subprocess.run): "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items())
    )


def cleanup(runtimes: list[Runtime], work: str) -> None:
    for rt in runtimes:
        root = rt.argv[rt.argv.index("--root") + 1]
        if os.path.isdir(root):
            for cid in os.listdir(root):
                if rt.proc and rt.proc.poll() is None:
                    rt.ask(
                        {"op": "run", "argv": [*rt.argv, "delete", "--force", cid], "out": os.path.join(work, "out-x")}
                    )
        rt.stop_spawner()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--spawner":
        spawner_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="timed iterations per runtime and benchmark (default 100)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    parser.add_argument("--importtime", action="store_true", help="also show hull-runtime's import time")
    parser.add_argument(
        "--no-podman", dest="podman", action="store_false", help="skip (d), podman run with each runtime"
    )
    parser.add_argument("--dir", help="an existing tmpfs directory to work in (default: mount a private tmpfs)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        fail("needs root")
    for path in (HULL_RUNTIME, "/usr/bin/runc", "/usr/bin/crun", "/usr/bin/podman"):
        if not os.access(path, os.X_OK):
            fail(f"{path} is missing")

    mounted = False
    if args.dir:
        work = tempfile.mkdtemp(prefix="hull-bench-", dir=args.dir)
    else:
        work = tempfile.mkdtemp(prefix="hull-bench-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m,mode=755", "hull-bench", work], check=True)
        mounted = True
    runtimes: list[Runtime] = []
    try:
        if not is_tmpfs(work):
            fail(f"{work} is not on a tmpfs")
        bundle, probe, rootfs = build_bundles(work)
        conf = setup_podman(work, rootfs)
        limited = build_limited_bundle(work, rootfs, engine_config(work, conf))
        hide = HYBRID_CGROUP2 if mounted_fstype(HYBRID_CGROUP2) == "cgroup2" else None
        runtimes = [
            Runtime("runc", ["/usr/bin/runc", "--root", f"{work}/state-runc"], first_line(["runc", "--version"])),
            Runtime("hull-runtime", [HULL_RUNTIME, "--root", f"{work}/state-hull"], first_line([HULL_RUNTIME, "-v"])),
            Runtime(
                "crun",
                ["/usr/bin/crun", "--root", f"{work}/state-crun"],
                first_line(["crun", "--version"]),
                private_mount_ns=True,
            ),
        ]
        for rt in runtimes:
            rt.binary = rt.argv[0]
            rt.containers_conf = conf
        launcher = build_launcher(work)
        for rt in runtimes:
            rt.start_spawner(hide, launcher)
        print(f"runtime_bench: N={args.n} timed iterations per runtime and benchmark, {args.warmup} warm-up")
        print(f"  work dir (bundles, state, pid files): {work}, tmpfs" + (" mounted for this run" if mounted else ""))
        for rt in runtimes:
            where = "private mount namespace" if rt.private_mount_ns else "host mount namespace"
            print(f"  {rt.name:<13} {rt.argv[0]}  ({rt.version}; {where})")
        if hide:
            print(f"  crun: {hide} (cgroup2, hybrid host) unmounted in its namespace, which crun 1.8.1 requires;")
            print("        the namespace is made once, before timing, so its cost is not in any sample")
        verify(runtimes, bundle, probe, work)
        print("  verified: each runtime runs the default busybox config (hostname, uid 0) and create/start/delete")
        print("  order: round-robin per iteration, rotating which runtime goes first")
        if launcher:
            print("  peak RSS: max over iterations of wait4() ru_maxrss of the runtime command = the largest single")
            print("            process among it and the children it reaped (for run: incl. the container init)")
        else:
            print("  peak RSS: n/a (no C compiler for the launcher; from Python it would include the spawner's RSS)")
        bench(runtimes, {"true": bundle, "limited": limited}, work, args.n, args.warmup)
        if args.podman:
            bench_podman(runtimes, work, max(3, args.n // 5), 1)
        report(runtimes, args.n)
        if args.importtime:
            importtime(work)
    finally:
        cleanup(runtimes, work)
        if mounted:
            subprocess.run(["umount", "-l", work], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
