"""Credentials files (podman's auth.json, docker's config.json) and credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from hull.distribution import credentials as c
from hull.distribution.credentials import Credentials, CredentialsError


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_auths_keys_in_every_spelling(tmp_path: Path) -> None:
    f = write(
        tmp_path / "config.json",
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64("hub:pw")},
                "http://reg.example:5000": {"auth": b64("u:p:with:colons")},
                "quay.io/team": {"auth": b64("team:t")},
                "quay.io": {"auth": b64("all:a")},
            }
        },
    )
    assert c.lookup("docker.io", [f]) == Credentials("hub", "pw", "", str(f))
    assert c.lookup("registry-1.docker.io", [f]) is not None
    assert c.lookup("reg.example:5000", [f]) == Credentials("u", "p:with:colons", "", str(f))
    assert c.lookup("quay.io/team/app", [f]).username == "team"  # type: ignore[union-attr]
    assert c.lookup("quay.io/other/app", [f]).username == "all"  # type: ignore[union-attr]
    assert c.lookup("reg.example", [f]) is None  # the port is part of the key


def test_identity_token_and_first_file_wins(tmp_path: Path) -> None:
    first = write(tmp_path / "auth.json", {"auths": {"r.io": {"identitytoken": "rt"}}})
    second = write(tmp_path / "config.json", {"auths": {"r.io": {"auth": b64("x:y")}, "s.io": {"auth": b64("s:t")}}})
    assert c.lookup("r.io", [first, second]) == Credentials("", "", "rt", str(first))
    assert c.lookup("s.io", [first, second]) == Credentials("s", "t", "", str(second))
    assert c.lookup("t.io", [first, second, tmp_path / "missing.json"]) is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{", "not valid JSON"),
        ('{"auths": []}', "auths: expected an object"),
        ('{"auths": {"r.io": {"auth": "%%%"}}}', "auths['r.io'].auth: not base64"),
        ('{"auths": {"r.io": {"auth": "' + b64("nocolon") + '"}}}', "no 'username:password' pair"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path: Path, doc: str, message: str) -> None:
    f = tmp_path / "auth.json"
    f.write_text(doc)
    with pytest.raises(CredentialsError, match=str(f)) as err:
        c.lookup("r.io", [f])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


class FakeHelper:
    def __init__(self, answers: dict[str, bytes] | None = None) -> None:
        self.calls: list[tuple[str, str, bytes]] = []
        self.answers = answers or {}

    def __call__(self, program: str, action: str, data: bytes) -> bytes:
        self.calls.append((program, action, data))
        return self.answers.get(action, b"")


def test_cred_helpers_and_creds_store(tmp_path: Path) -> None:
    f = write(
        tmp_path / "config.json",
        {"auths": {"plain.io": {"auth": b64("p:q")}}, "credHelpers": {"ecr.io": "ecr-login"}, "credsStore": "pass"},
    )
    helper = FakeHelper({"get": b'{"ServerURL": "ecr.io", "Username": "AWS", "Secret": "tok"}'})
    assert c.lookup("ecr.io", [f], helper) == Credentials("AWS", "tok", "", "docker-credential-ecr-login")
    assert helper.calls == [("docker-credential-ecr-login", "get", b"ecr.io")]
    assert c.lookup("plain.io", [f], helper) == Credentials("p", "q", "", str(f))
    helper.answers["get"] = b'{"ServerURL": "https://index.docker.io/v1/", "Username": "<token>", "Secret": "idt"}'
    assert c.lookup("docker.io", [f], helper) == Credentials("", "", "idt", "docker-credential-pass")
    assert helper.calls[-1] == ("docker-credential-pass", "get", b"https://index.docker.io/v1/")


def test_real_helper_program_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A docker-credential-* program on PATH, spoken to over stdin/stdout."""
    store = tmp_path / "store.json"
    prog = tmp_path / "bin" / "docker-credential-test"
    prog.parent.mkdir()
    prog.write_text(
        f"""#!{sys.executable}
import json, sys
path = {str(store)!r}
try:
    db = json.load(open(path))
except FileNotFoundError:
    db = {{}}
action = sys.argv[1]
data = sys.stdin.read()
if action == "store":
    doc = json.loads(data)
    db[doc["ServerURL"]] = doc
elif action == "get":
    if data not in db:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(db[data]))
elif action == "erase":
    if data not in db:
        print("credentials not found in native keychain")
        sys.exit(1)
    del db[data]
json.dump(db, open(path, "w"))
"""
    )
    prog.chmod(0o755)
    monkeypatch.setenv("PATH", f"{prog.parent}{os.pathsep}{os.environ['PATH']}")
    f = write(tmp_path / "config.json", {"credsStore": "test"})
    assert c.lookup("r.io", [f]) is None
    assert c.store("r.io", "u", "pw", f) == "docker-credential-test"
    assert json.loads(store.read_text())["r.io"]["Secret"] == "pw"
    assert "auth" not in json.loads(f.read_text())["auths"]["r.io"]  # the secret is in the helper only
    assert c.lookup("r.io", [f]) == Credentials("u", "pw", "", "docker-credential-test")
    assert c.erase("r.io", f) is True
    assert c.lookup("r.io", [f]) is None
    assert c.erase("r.io", f) is False
    write(f, {"credsStore": "absent"})
    with pytest.raises(CredentialsError, match="docker-credential-absent not found"):
        c.lookup("r.io", [f])


def test_store_creates_0600_atomically_and_keeps_other_entries(tmp_path: Path) -> None:
    f = tmp_path / "containers" / "auth.json"
    assert c.store("reg.example:5000", "u", "p", f) == str(f)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    assert json.loads(f.read_text()) == {"auths": {"reg.example:5000": {"auth": b64("u:p")}}}
    write(f, {"auths": {"http://reg.example:5000": {"auth": b64("old:o")}, "q.io": {"auth": b64("q:q")}}, "x": 1})
    f.chmod(0o644)
    c.store("reg.example:5000", "new", "n", f)
    doc = json.loads(f.read_text())
    assert doc == {"auths": {"q.io": {"auth": b64("q:q")}, "reg.example:5000": {"auth": b64("new:n")}}, "x": 1}
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert [p.name for p in f.parent.iterdir()] == ["auth.json"]  # no temporary left behind


def test_docker_config_keeps_hub_under_v1_url(tmp_path: Path) -> None:
    f = tmp_path / ".docker" / "config.json"
    c.store("docker.io", "u", "p", f)
    assert list(json.loads(f.read_text())["auths"]) == ["https://index.docker.io/v1/"]
    assert c.lookup("docker.io", [f]) == Credentials("u", "p", "", str(f))


def test_erase(tmp_path: Path) -> None:
    f = write(tmp_path / "auth.json", {"auths": {"a.io": {"auth": b64("a:a")}, "b.io": {"auth": b64("b:b")}}})
    assert c.erase("a.io", f) is True
    assert json.loads(f.read_text()) == {"auths": {"b.io": {"auth": b64("b:b")}}}
    assert c.erase("a.io", f) is False
    assert c.erase("a.io", tmp_path / "none.json") is False


def test_default_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dock"))
    assert c.default_auth_file() == tmp_path / "run" / "containers" / "auth.json"
    assert c.auth_files() == [
        tmp_path / "run" / "containers" / "auth.json",
        tmp_path / "cfg" / "containers" / "auth.json",
        tmp_path / "dock" / "config.json",
    ]
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "explicit.json"))
    assert c.default_auth_file() == tmp_path / "explicit.json"


def test_credentials_repr_hides_secrets() -> None:
    assert "hunter2" not in repr(Credentials("u", "hunter2", "idtok"))
    assert "idtok" not in repr(Credentials("u", "hunter2", "idtok"))
