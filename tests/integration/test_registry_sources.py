"""``hull pull`` / ``hull push`` through a registries.conf (``CONTAINERS_REGISTRIES_CONF`` in a
temporary directory): a mirror that is down falls back to the registry, a mirror that has the image
serves it, a blocked registry is refused with one line, short names resolve through
unqualified-search-registries and through ``[aliases]``. Real docker-registry processes on
loopback (plain HTTP: loopback is insecure by default, as docker's daemon has it).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.image.store import LayoutStore
from hull.testing.registry import RegistryServer, free_port
from tests.integration.test_registry import (
    HULL,
    SOURCE,
    graph,
    hull_root,
    import_source,
    run,
    skopeo_push,
)

pytestmark = pytest.mark.usefixtures("root_required")


def closed_port() -> str:
    """A loopback address nobody listens on: connections to it are refused."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def registries(tmp_path: Path) -> Iterator[list[RegistryServer]]:
    started: list[RegistryServer] = []
    for name in ("primary", "mirror"):
        base = tmp_path / name
        base.mkdir()
        started.append(RegistryServer(base))
    yield started
    for reg in started:
        reg.stop()


@pytest.fixture
def source(tmp_path: Path, busybox_rootfs: Path) -> LayoutStore:
    return import_source(tmp_path, busybox_rootfs)


def hull_with(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)


def write_conf(tmp_path: Path, text: str) -> Path:
    conf = tmp_path / "registries.conf"
    conf.write_text(text)
    return conf


def test_a_mirror_that_is_down_falls_back_to_the_registry(
    tmp_path: Path, registries: list[RegistryServer], source: LayoutStore
) -> None:
    primary = registries[0]
    ref = f"{primary.host}/test/busybox:1"
    skopeo_push(source, SOURCE, ref)
    down = closed_port()
    conf = write_conf(
        tmp_path,
        f'[[registry]]\nlocation = "{primary.host}"\n[[registry.mirror]]\nlocation = "{down}"\n',
    )
    hull, store = hull_root(tmp_path)
    out = hull_with(conf, *hull, "pull", ref)
    assert out.returncode == 0, out.stderr
    assert graph(store, store.resolve(ref)) == graph(source, source.resolve(SOURCE))


def test_a_mirror_that_has_the_image_serves_it_under_the_registrys_name(
    tmp_path: Path, registries: list[RegistryServer], source: LayoutStore
) -> None:
    primary, mirror = registries
    # Only the mirror has it (under the same path, as a pull-through mirror would): the pull can
    # only succeed through the mirror, and the image is named as the user asked.
    skopeo_push(source, SOURCE, f"{mirror.host}/test/busybox:1")
    conf = write_conf(
        tmp_path,
        f'[[registry]]\nlocation = "{primary.host}"\n[[registry.mirror]]\nlocation = "{mirror.host}"\n',
    )
    hull, store = hull_root(tmp_path)
    ref = f"{primary.host}/test/busybox:1"
    out = hull_with(conf, *hull, "pull", ref)
    assert out.returncode == 0, out.stderr
    assert graph(store, store.resolve(ref)) == graph(source, source.resolve(SOURCE))
    assert [d.ref_name for d in store.images()] == [ref]

    # Neither the mirror nor the registry has another tag: one line naming both attempts.
    failed = hull_with(conf, *hull, "pull", "-q", f"{primary.host}/test/busybox:nope")
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert mirror.host in lines[0] and primary.host in lines[0] and "404" in lines[0]


def test_a_blocked_registry_is_refused_for_pull_and_push(
    tmp_path: Path, registries: list[RegistryServer], source: LayoutStore
) -> None:
    primary = registries[0]
    ref = f"{primary.host}/test/busybox:1"
    skopeo_push(source, SOURCE, ref)
    conf = write_conf(tmp_path, f'[[registry]]\nlocation = "{primary.host}"\nblocked = true\n')
    hull, store = hull_root(tmp_path)
    failed = hull_with(conf, *hull, "pull", ref)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"Error: registry {primary.host} is blocked in registries.conf (prefix {primary.host!r})"
    ]
    assert store.images() == []
    pushed = hull_with(conf, HULL, "--root", str(tmp_path / "src"), "push", SOURCE, f"{primary.host}/other/b:1")
    assert pushed.returncode == 1
    assert "is blocked in registries.conf" in pushed.stderr
    tags = run("skopeo", "list-tags", "--tls-verify=false", f"docker://{primary.host}/other/b", check=False)
    assert tags.returncode != 0  # the repository was never created


def test_a_short_name_resolves_through_the_search_registries_in_order(
    tmp_path: Path, registries: list[RegistryServer], source: LayoutStore
) -> None:
    primary = registries[0]
    skopeo_push(source, SOURCE, f"{primary.host}/test/busybox:1")
    down = closed_port()
    conf = write_conf(tmp_path, f'unqualified-search-registries = ["{down}", "{primary.host}"]\n')
    hull, store = hull_root(tmp_path)
    out = hull_with(conf, *hull, "pull", "test/busybox:1")
    assert out.returncode == 0, out.stderr
    assert f"Trying to pull {down}/test/busybox:1..." in out.stderr
    assert f"Trying to pull {primary.host}/test/busybox:1..." in out.stderr
    assert [d.ref_name for d in store.images()] == [f"{primary.host}/test/busybox:1"]
    listed = json.loads(run(*hull, "images", "--format", "json").stdout)
    assert listed[0]["RepoTags"] == [f"{primary.host}/test/busybox:1"]


def test_an_alias_names_the_image_a_short_name_means(
    tmp_path: Path, registries: list[RegistryServer], source: LayoutStore
) -> None:
    primary, mirror = registries
    skopeo_push(source, SOURCE, f"{primary.host}/test/busybox:1")
    # The search registry does not have it: only the alias can find it.
    conf = write_conf(
        tmp_path,
        f'unqualified-search-registries = ["{mirror.host}"]\n[aliases]\n"mybox" = "{primary.host}/test/busybox"\n',
    )
    hull, store = hull_root(tmp_path)
    out = hull_with(conf, *hull, "pull", "mybox:1")
    assert out.returncode == 0, out.stderr
    assert [d.ref_name for d in store.images()] == [f"{primary.host}/test/busybox:1"]
    assert graph(store, store.resolve(f"{primary.host}/test/busybox:1")) == graph(source, source.resolve(SOURCE))


def test_a_location_rewrite_applies_to_pull_and_push(
    tmp_path: Path, registries: list[RegistryServer], source: LayoutStore
) -> None:
    primary = registries[0]
    conf = write_conf(tmp_path, f'[[registry]]\nprefix = "example.test/team"\nlocation = "{primary.host}/real"\n')
    pushed = hull_with(conf, HULL, "--root", str(tmp_path / "src"), "push", SOURCE, "example.test/team/box:1")
    assert pushed.returncode == 0, pushed.stderr
    remote = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{primary.host}/real/box:1").stdout)
    assert remote["Digest"] == source.resolve(SOURCE).digest
    hull, store = hull_root(tmp_path)
    out = hull_with(conf, *hull, "pull", "example.test/team/box:1")
    assert out.returncode == 0, out.stderr
    assert [d.ref_name for d in store.images()] == ["example.test/team/box:1"]


def test_remote_inspect_matches_skopeo_inspect_without_pulling(
    tmp_path: Path, registries: list[RegistryServer], source: LayoutStore
) -> None:
    primary = registries[0]
    ref = f"{primary.host}/test/busybox:1"
    skopeo_push(source, SOURCE, ref)
    skopeo_push(source, SOURCE, f"{primary.host}/test/busybox:2")
    skopeo = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{ref}").stdout)
    hull, store = hull_root(tmp_path)
    mine = json.loads(run(*hull, "image", "inspect", "--remote", ref).stdout)
    # LayersData came in skopeo 1.10; Debian 12's skopeo is 1.9.3: every other field is compared.
    layers_data = mine.pop("LayersData")
    assert mine == skopeo
    assert [d["Digest"] for d in layers_data] == skopeo["Layers"]
    assert [d["Size"] for d in layers_data] == [
        layer.size for layer in source.manifest(source.resolve(SOURCE))[1].layers
    ]
    assert sorted(mine["RepoTags"]) == ["1", "2"]
    raw = subprocess.run([*hull, "image", "inspect", "--remote", "--raw", ref], capture_output=True, timeout=60)
    assert raw.returncode == 0
    skopeo_raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"], capture_output=True, timeout=60
    )
    assert raw.stdout == skopeo_raw.stdout
    assert store.images() == [] and store.blobs() == []  # nothing was pulled

    missing = run(*hull, "image", "inspect", "--remote", f"{primary.host}/test/busybox:nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: ") and "404" in missing.stderr and len(missing.stderr.splitlines()) == 1
