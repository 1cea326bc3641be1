"""The runc-style (urfave/cli on Go's flag package) command-line parser."""

from __future__ import annotations

import pytest

from hull.cli.args import Flag, UsageError, parse, usage

# The flags of `runc create`/`run`, and a global value flag.
FLAGS = [
    Flag("bundle", True, ("b",), "path to the bundle"),
    Flag("console-socket", True),
    Flag("pid-file", True),
    Flag("no-pivot"),
    Flag("detach", aliases=("d",)),
    Flag("root", True),
]


@pytest.mark.parametrize(
    "argv",
    [
        ["--bundle", "/b", "c1"],
        ["-bundle", "/b", "c1"],
        ["--bundle=/b", "c1"],
        ["-bundle=/b", "c1"],
        ["-b", "/b", "c1"],
        ["--b=/b", "c1"],
    ],
    ids=["--flag v", "-flag v", "--flag=v", "-flag=v", "alias -b v", "alias --b=v"],
)
def test_value_flag_spellings_are_equivalent(argv: list[str]) -> None:
    parsed = parse(argv, FLAGS)

    assert parsed.value("bundle") == "/b"
    assert parsed.args == ["c1"]


@pytest.mark.parametrize("argv", [["--detach"], ["-detach"], ["-d"], ["--d"]])
def test_bool_flag_alone_is_true(argv: list[str]) -> None:
    parsed = parse(argv, FLAGS)

    assert parsed.flag("detach") is True
    assert parsed.args == []


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("--detach=false", False),
        ("--detach=true", True),
        ("-d=0", False),
        ("-d=1", True),
        ("--detach=f", False),
        ("--detach=t", True),
        ("--detach=FALSE", False),
        ("--detach=True", True),
    ],
)
def test_bool_flag_takes_an_explicit_value_after_equals(arg: str, expected: bool) -> None:
    assert parse([arg], FLAGS).flag("detach") is expected


def test_bool_flag_does_not_consume_the_next_argument() -> None:
    parsed = parse(["--detach", "false"], FLAGS)

    assert parsed.flag("detach") is True
    assert parsed.args == ["false"]


def test_invalid_bool_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        parse(["--detach=maybe"], FLAGS)

    assert str(info.value) == 'invalid boolean value "maybe" for -detach'


def test_flags_stop_at_the_first_positional_argument() -> None:
    parsed = parse(["--bundle", "/b", "c1", "--detach", "-x"], FLAGS)

    assert parsed.args == ["c1", "--detach", "-x"]
    assert parsed.flag("detach") is False
    assert parsed.value("bundle") == "/b"


def test_without_stopping_flags_and_positionals_may_interleave() -> None:
    parsed = parse(["c1", "--detach", "KILL", "--root", "/r"], FLAGS, stop_at_positional=False)

    assert parsed.args == ["c1", "KILL"]
    assert parsed.flag("detach") is True
    assert parsed.value("root") == "/r"


def test_double_dash_ends_the_flags() -> None:
    parsed = parse(["--detach", "--", "--bundle", "x"], FLAGS)

    assert parsed.flag("detach") is True
    assert parsed.args == ["--bundle", "x"]
    assert parsed.value("bundle") == ""


def test_single_dash_is_a_positional_argument() -> None:
    assert parse(["-", "--detach"], FLAGS).args == ["-", "--detach"]


@pytest.mark.parametrize(
    ("argv", "name"),
    [(["-x"], "x"), (["--x"], "x"), (["--xyz=1"], "xyz"), (["--bundle", "/b", "--nope", "c1"], "nope")],
)
def test_unknown_flag_error_text_matches_go_flag(argv: list[str], name: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(argv, FLAGS)

    assert str(info.value) == f"flag provided but not defined: -{name}"


@pytest.mark.parametrize("argv", [["--bundle"], ["-b"], ["--detach", "--root"]])
def test_value_flag_without_a_value_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        parse(argv, FLAGS)

    assert str(info.value).startswith("flag needs an argument: -")
    assert str(info.value).endswith(argv[-1].lstrip("-"))


def test_value_flag_takes_the_next_argument_even_if_it_looks_like_a_flag() -> None:
    # Go's flag package: a non-boolean flag's value is the next argument, whatever it is.
    parsed = parse(["--pid-file", "--detach", "c1"], FLAGS)

    assert parsed.value("pid-file") == "--detach"
    assert parsed.flag("detach") is False
    assert parsed.args == ["c1"]


def test_value_may_be_empty_or_contain_equals_signs() -> None:
    assert parse(["--bundle="], FLAGS).value("bundle", "default") == ""
    assert parse(["--root=/a=b"], FLAGS).value("root") == "/a=b"


def test_repeated_flag_keeps_the_last_value() -> None:
    assert parse(["--root", "/one", "--root=/two"], FLAGS).value("root") == "/two"


def test_values_are_stored_under_the_flag_name_not_the_alias() -> None:
    parsed = parse(["-b", "/b", "-d"], FLAGS)

    assert set(parsed.values) == {"bundle", "detach"}


def test_absent_flags_read_as_defaults() -> None:
    parsed = parse([], FLAGS)

    assert parsed.flag("detach") is False
    assert parsed.value("bundle") == ""
    assert parsed.value("bundle", ".") == "."
    assert parsed.args == []


def test_usage_lists_each_flag_with_its_aliases_and_value() -> None:
    text = usage(FLAGS)

    assert "--bundle, -b value" in text
    assert "path to the bundle" in text
    assert "--detach, -d" in text
    assert "--detach, -d value" not in text
