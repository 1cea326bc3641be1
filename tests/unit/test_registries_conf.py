"""registries.conf v2 (containers-registries.conf(5)) and certs.d directories."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from hull.distribution import registries as r
from hull.distribution.registries import BlockedError, RegistriesConf, RegistriesConfError, TLSConfig

CONF = """
unqualified-search-registries = ["registry.fedoraproject.org", "docker.io"]

[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar"
insecure = true

[[registry.mirror]]
location = "mirror-a.example.com/m"

[[registry.mirror]]
location = "mirror-b.example.com"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
prefix = "example.com"
location = "example.com"

[[registry.mirror]]
location = "tags.example.com"
pull-from-mirror = "tag-only"

[[registry]]
location = "blocked.io"
blocked = true

[[registry]]
prefix = "*.wild.io"

[[registry.mirror]]
location = "wmirror.io:5000"

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"""


def conf(tmp_path: Path) -> RegistriesConf:
    c = RegistriesConf.parse(CONF)
    c.cert_dirs = [tmp_path / "certs.d"]
    return c


def names(eps: list[r.Endpoint]) -> list[tuple[str, str, bool, bool]]:
    return [(e.registry, e.repository, e.insecure, e.mirror) for e in eps]


def test_longest_prefix_rewrites_and_mirror_order(tmp_path: Path) -> None:
    c = conf(tmp_path)
    assert names(c.pull_endpoints("example.com/foo/app")) == [
        ("mirror-a.example.com", "m/app", False, True),
        ("internal.example.com", "bar/app", True, False),
    ]
    assert names(c.pull_endpoints("example.com/foo/app", by_digest=True)) == [
        ("mirror-a.example.com", "m/app", False, True),
        ("mirror-b.example.com", "app", True, True),
        ("internal.example.com", "bar/app", True, False),
    ]
    # "example.com/foobar" is not under the prefix "example.com/foo": a path component must match whole.
    assert names(c.pull_endpoints("example.com/foobar/x")) == [
        ("tags.example.com", "foobar/x", False, True),
        ("example.com", "foobar/x", False, False),
    ]
    assert names(c.pull_endpoints("example.com/foobar/x", by_digest=True)) == [
        ("example.com", "foobar/x", False, False)
    ]
    assert c.push_endpoint("example.com/foo/app").registry == "internal.example.com"


def test_wildcard_prefix_and_unconfigured(tmp_path: Path) -> None:
    c = conf(tmp_path)
    assert names(c.pull_endpoints("a.wild.io/ns/img")) == [
        ("wmirror.io:5000", "ns/img", False, True),
        ("a.wild.io", "ns/img", False, False),
    ]
    assert names(c.pull_endpoints("wild.io/ns/img")) == [("wild.io", "ns/img", False, False)]
    assert names(c.pull_endpoints("quay.io/x/y")) == [("quay.io", "x/y", False, False)]
    assert c.pull_endpoints("quay.io/x/y")[0].schemes == ("https",)
    assert c.pull_endpoints("example.com/foo/app")[-1].schemes == ("https", "http")


def test_blocked(tmp_path: Path) -> None:
    with pytest.raises(BlockedError, match=r"^registry blocked.io is blocked in registries.conf"):
        conf(tmp_path).pull_endpoints("blocked.io/x")


def test_search_and_aliases(tmp_path: Path) -> None:
    c = conf(tmp_path)
    assert c.short_name_candidates("busybox") == ["registry.fedoraproject.org/busybox", "docker.io/busybox"]
    assert c.short_name_candidates("fedora") == ["registry.fedoraproject.org/fedora"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[registry]]\nlocation = 'https://x.io'", "registry[0].location: 'https://x.io': a location is host"),
        ("[[registry]]\ninsecure = true", "registry[0]: needs a prefix or a location"),
        ("[[registry]]\nlocation = 'x.io'\ninsecure = 'yes'", "registry[0].insecure: expected true or false"),
        ("[[registry]]\nlocation = 'x.io'\nfoo = 1", "registry[0].foo: unknown field"),
        (
            "[[registry]]\nlocation = 'x.io'\n[[registry.mirror]]\nlocation = 'm'\npull-from-mirror = 'some'",
            "registry[0].mirror[0].pull-from-mirror: 'some': expected one of all, digest-only, tag-only",
        ),
        ("[[registry]]\nprefix = '*.a.io/x'", "registry[0].prefix: '*.a.io/x': a wildcard is only"),
        ("[[registry]]\nprefix = '*.a.io'\nlocation = 'b.io'", "a wildcard prefix cannot be rewritten"),
        ("[registries.search]\nregistries = ['a']", "version 1 format"),
        ("unqualified-search-registries = 'docker.io'", "unqualified-search-registries: expected an array"),
        ("x = [", "not valid TOML"),
    ],
)
def test_bad_config_names_the_field(text: str, message: str) -> None:
    with pytest.raises(RegistriesConfError) as err:
        RegistriesConf.parse(text, "/etc/containers/registries.conf")
    assert str(err.value).startswith("/etc/containers/registries.conf: ")
    assert message in str(err.value)


def test_drop_ins_override_by_prefix(tmp_path: Path) -> None:
    main = tmp_path / "registries.conf"
    main.write_text('unqualified-search-registries = ["a.io"]\n[[registry]]\nlocation = "x.io"\nblocked = true\n')
    drop = tmp_path / "50-x.conf"
    drop.write_text('[[registry]]\nlocation = "x.io"\ninsecure = true\n')
    c = r.load([main, drop, tmp_path / "missing.conf"], cert_dirs=[])
    assert c.search == ["a.io"]
    assert names(c.pull_endpoints("x.io/y")) == [("x.io", "y", True, False)]


def test_an_aliases_only_drop_in_is_parsed_when_aliases_are_needed_in_file_order(tmp_path: Path) -> None:
    main = tmp_path / "registries.conf"
    main.write_text('[aliases]\n"app" = "main.io/app"\n"db" = "main.io/db"\n[[registry]]\nlocation = "x.io"\n')
    only = tmp_path / "10-aliases.conf"
    only.write_text('# short names\n[aliases]\n  "app" = "drop.io/app"\n  "web" = "drop.io/web"\n')
    later = tmp_path / "20-more.conf"
    later.write_text('[aliases]\n"web" = "later.io/web"\n[[registry]]\nlocation = "y.io"\nblocked = true\n')
    c = r.load([main, only, later], cert_dirs=[])
    assert c._alias_layers[2] == (only.read_text(), str(only))  # kept as text: no parse yet
    assert c.aliases == {"app": "drop.io/app", "db": "main.io/db", "web": "later.io/web"}
    with pytest.raises(BlockedError):
        c.pull_endpoints("y.io/z")

    broken = tmp_path / "30-broken.conf"
    broken.write_text('[aliases]\n"a" = "b\n')  # one line, but no closing quote: not deferred
    with pytest.raises(RegistriesConfError, match="30-broken.conf: not valid TOML"):
        r.load([broken], cert_dirs=[])


def test_conf_paths_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(tmp_path / "my.conf"))
    assert r.conf_paths() == [str(tmp_path / "my.conf")]


def test_system_config_of_this_machine_parses() -> None:
    """Debian's podman ships /etc/containers/registries.conf and a shortnames drop-in: both must load."""
    c = r.load(
        [Path("/etc/containers/registries.conf"), *sorted(Path("/etc/containers/registries.conf.d").glob("*.conf"))]
    )
    assert c.aliases.get("fedora", "").endswith("/fedora")


def make_pem(tmp_path: Path) -> tuple[Path, Path]:
    import subprocess

    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=t",
         "-days", "1", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key


def test_certs_d(tmp_path: Path) -> None:
    d = tmp_path / "certs.d" / "reg.example:5000"
    d.mkdir(parents=True)
    crt, key = make_pem(tmp_path)
    (d / "ca.crt").write_bytes(crt.read_bytes())
    (d / "client.cert").write_bytes(crt.read_bytes())
    (d / "client.key").write_bytes(key.read_bytes())
    c = conf(tmp_path)
    tls = c.pull_endpoints("reg.example:5000/app")[0].tls
    assert tls == TLSConfig((str(d / "ca.crt"),), (str(d / "client.cert"), str(d / "client.key")), True)
    ctx = r.ssl_context(tls)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert any(cert.get("subject") == ((("commonName", "t"),),) for cert in ctx.get_ca_certs())
    assert c.pull_endpoints("other.io/app")[0].tls == TLSConfig()
    insecure = r.ssl_context(r.tls_config("other.io", [], verify=False))
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname
    (d / "client.key").unlink()
    with pytest.raises(RegistriesConfError, match=r"client certificate client.cert has no key client.key"):
        r.tls_config("reg.example:5000", [tmp_path / "certs.d"])


def test_first_certs_dir_with_the_host_wins(tmp_path: Path) -> None:
    (tmp_path / "a" / "h").mkdir(parents=True)
    (tmp_path / "b" / "h").mkdir(parents=True)
    (tmp_path / "b" / "h" / "ca.crt").write_text("x")
    assert r.tls_config("h", [tmp_path / "a", tmp_path / "b"]).ca_files == ()
    assert r.tls_config("h", [tmp_path / "none", tmp_path / "b"]).ca_files == (str(tmp_path / "b" / "h" / "ca.crt"),)
