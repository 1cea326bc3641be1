"""--format templates: Go text/template's semantics and docker/cli's formatter (table, headers, json)."""

from __future__ import annotations

from typing import Any

import pytest

from hull.cli.gotemplate import Template, TemplateError, go_float, render, sprintf, template_string

C: dict[str, Any] = {
    "ID": "4f1c2a9b8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d",
    "Names": "web",
    "Image": "busybox",
    "State": {"Status": "running", "Running": True, "Paused": False, "Pid": 4242, "ExitCode": 0},
    "Labels": {"zone": "b", "app": "shop<&>"},
    "Mounts": [{"Source": "/srv", "RW": True}, {"Source": "/etc/x", "RW": False}],
    "Args": ["sh", "-c", "sleep 1"],
    "Empty": [],
    "Nothing": None,
    "Ratio": 0.5,
}


def run(text: str, data: Any = C) -> str:
    return Template(text).execute(data)


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("{{.Names}}", "web"),
        ("name: {{.Names}}!", "name: web!"),
        ("{{.State.Status}} {{.State.Pid}} {{.State.Running}} {{.State.Paused}}", "running 4242 true false"),
        ("{{.Missing}}", "<no value>"),  # a key missing from a map, as Go prints it
        ("{{.Missing.Deeper}}", "<no value>"),
        ("{{.Nothing}}", "<nil>"),
        ("{{.Args}}", "[sh -c sleep 1]"),
        ("{{.Labels}}", "map[app:shop<&> zone:b]"),  # fmt sorts map keys
        ("{{.Mounts}}", "[map[RW:true Source:/srv] map[RW:false Source:/etc/x]]"),
        ("{{.Ratio}}", "0.5"),
        ("{{.}}", None),
        ("{{$.Names}}", "web"),
        ('{{"a\\tb\\u00e9\\x41"}}', "a\tbéA"),
        ("{{`raw\\n`}}", "raw\\n"),
        ("{{3}} {{-3}} {{1.5}} {{0x1F}} {{true}} {{'a'}}", "3 -3 1.5 31 true 97"),
    ],
)
def test_fields_and_printing(text: str, out: str | None) -> None:
    if out is None:
        assert run(text).startswith("map[Args:[sh -c sleep 1] Empty:[] ID:4f1c")
    else:
        assert run(text) == out


def test_json_is_dockers_compact_unescaped_encoding() -> None:
    assert run("{{json .Labels}}") == '{"zone":"b","app":"shop<&>"}'  # SetEscapeHTML(false)
    assert run("{{json .Args}}") == '["sh","-c","sleep 1"]'
    assert run("{{json .State.Pid}} {{json .Nothing}} {{json .Missing}}") == "4242 null null"
    assert run("{{.Mounts | json}}") == '[{"Source":"/srv","RW":true},{"Source":"/etc/x","RW":false}]'
    assert run("{{json .}}", {"f": 1.0, "g": 1e-7, "s": "é\u2028"}) == '{"f":1,"g":1e-7,"s":"é\\u2028"}'


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ('{{index .Labels "app"}}', "shop<&>"),
        ('[{{index .Labels "nope"}}]', "[]"),
        ("{{index .Args 1}}", "-c"),
        ('{{index .Mounts 0 "Source"}}', "/srv"),
        ("{{(index .Mounts 1).Source}}", "/etc/x"),
        ("{{len .Args}} {{len .Labels}} {{len .Names}} {{len `é`}}", "3 2 3 2"),  # len counts bytes
        ('{{join .Args ","}}', "sh,-c,sleep 1"),
        ('{{join .Labels ";"}}', "b;shop<&>"),  # a map's values, sorted
        ('{{split "a:b:c" ":"}}', "[a b c]"),
        ("{{lower .State.Status | upper}}", "RUNNING"),
        ('{{title "hello big-world o\'neil"}}', "Hello Big-World O'Neil"),
        ("{{truncate .ID 12}}", "4f1c2a9b8e7d"),
        ("{{truncate .Names 12}}", "web"),
        ('{{pad .Names 2 1}}|{{pad "" 2 1}}|', "  web ||"),  # nothing to pad: stays empty
        ("{{slice .Args 1}} {{slice .Names 0 2}}", "[-c sleep 1] we"),
        ('{{printf "%s:%d" .Names .State.Pid}}', "web:4242"),
        ('{{printf "%-6s|%6s|%06d|%x|%X|%q|%t|%v|%5.1f|%%" "ab" "cd" 42 255 "hi" "q\\"" true .Args 3.14159}}',
         'ab    |    cd|000042|ff|6869|"q\\""|true|[sh -c sleep 1]|  3.1|%'),
        ('{{printf "%d" "x"}} {{printf "%s %s" "a"}} {{printf "%s" "a" 2}}',
         "%!d(string=x) a %!s(MISSING) a%!(EXTRA int=2)"),
        ('{{printf "%s" 5}}', "%!s(int=5)"),
        ('{{print "a" "b" 1 2 "c"}} {{println 1 "x"}}', "ab1 2c 1 x\n"),
        ('{{.Names | printf "<%s>"}}', "<web>"),
    ],
)  # fmt: skip
def test_functions(text: str, out: str) -> None:
    assert run(text) == out


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ("{{if .Empty}}x{{else if .Nothing}}y{{else if .Names}}z{{end}}", "z"),
        ("{{if .Missing}}x{{end}}.", "."),
        ("{{with .State}}{{.Status}}/{{$.Names}}{{end}}", "running/web"),
        ("{{with .Empty}}x{{else}}none{{end}}", "none"),
        ("{{range .Mounts}}{{.Source}} {{end}}", "/srv /etc/x "),
        ("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}};{{end}}", "0=/srv;1=/etc/x;"),
        ("{{range $k, $v := .Labels}}{{$k}}={{$v}} {{end}}", "app=shop<&> zone=b "),  # sorted keys
        ("{{range .Empty}}x{{else}}empty{{end}}", "empty"),
        ("{{range .Missing}}x{{end}}|{{range .Nothing}}x{{end}}", "|"),
        ("{{range .Args}}{{if eq . \"-c\"}}{{continue}}{{end}}{{.}},{{end}}", "sh,sleep 1,"),
        ("{{range .Args}}{{if eq . \"-c\"}}{{break}}{{end}}{{.}},{{end}}", "sh,"),
        ("{{$n := .Names}}{{range .Args}}{{$n}}{{end}}", "webwebweb"),
        ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
        ('{{if and .State.Running (eq .Names "web")}}ok{{end}}', "ok"),
        ("{{or .Empty .Nothing .Names}} {{and 1 0 2}} {{not .Empty}}", "web 0 true"),
        ('{{eq .State.Pid 4242}} {{ne .Names "db"}} {{lt 1 2}} {{ge "b" "a"}} {{eq .Names "x" "web"}}',
         "true true true true true"),
    ],
)  # fmt: skip
def test_control_structures(text: str, out: str) -> None:
    assert run(text) == out


def test_trim_markers_and_comments() -> None:
    assert run("a  \n {{- .Names -}} \n  b") == "awebb"
    assert run("{{.Names}} {{- /* gone */}} x") == "web x"
    assert run("x {{- /* a comment */ -}} y") == "xy"
    assert run("{{/* only */}}") == ""
    assert run("{{-3}}") == "-3"  # no space: a negative number, not a trim marker
    assert run('{{printf "}}{{"}}') == "}}{{"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Names", "template: :1:0: unclosed action"),
        ("a\n{{if .X}}", "template: :2:9: unexpected EOF"),
        ("{{end}}", "template: :1:2: unexpected {{end}}"),
        ("{{else}}", "template: :1:2: unexpected {{else}}"),
        ("{{nosuch .X}}", 'template: :1:2: function "nosuch" not defined'),
        ("{{$y}}", 'template: :1:2: undefined variable "$y"'),
        ('{{"abc}}', "unterminated quoted string"),
        ('{{template "x"}}', "{{template}} is not supported"),
    ],
)
def test_parse_errors_name_the_position(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as err:
        run(text)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Names.X}}", 'template: :1:2: executing "" at <.Names.X>: can\'t evaluate field X in type string'),
        ("{{.Nothing.X}}", "nil pointer evaluating interface {}.X"),
        ("{{lower .State.Pid}}", "error calling lower: wrong type for value; expected string; got int"),
        ("{{lower .Missing}}", "invalid value; expected string"),
        (
            "x\n  {{index .Args 7}}",
            'template: :2:4: executing "" at <index>: error calling index: index out of range: 7',
        ),
        ("{{range .Names}}{{end}}", "range can't iterate over web"),
        ("{{.Names 1}}", "can't give argument to non-function .Names"),
    ],
)
def test_execution_errors_name_the_position(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as err:
        run(text)
    assert message in str(err.value)


def test_go_float_printing() -> None:
    # fmt's %v: strconv 'g' shortest, exponent from 1e6 (eprec 6) or below 1e-4
    assert [go_float(f) for f in (0.5, 100.0, 123456.0, 1e6, 1234567.0, 1e-4, 1e-5, -2.5)] == [
        "0.5", "100", "123456", "1e+06", "1.234567e+06", "0.0001", "1e-05", "-2.5"
    ]  # fmt: skip
    # encoding/json: plain digits from 1e-6 up to 1e21, short exponents beyond
    assert [go_float(f, json=True) for f in (1e6, 1e20, 1e21, 1e-6, 1e-7)] == [
        "1000000", "100000000000000000000", "1e+21", "0.000001", "1e-7"
    ]  # fmt: skip


def test_sprintf_directly() -> None:
    assert sprintf("%s is %d years", ["x", 5]) == "x is 5 years"
    assert sprintf("%v %v", [None, [True, None]]) == "<nil> [true <nil>]"


ITEMS = [
    {"ID": "4f1c2a9b8e7d", "Names": "web", "Status": "Up 5 seconds"},
    {"ID": "0a1b2c3d4e5f", "Names": "a-much-longer-name", "Status": "Exited (0) 3 seconds ago"},
]
HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS"}


def test_render_plain_format_prints_one_line_per_item() -> None:
    assert render("{{.Names}}", ITEMS) == "web\na-much-longer-name\n"
    assert render("{{.Names}}\\t{{.ID}}", ITEMS[:1]) == "web\t4f1c2a9b8e7d\n"  # a typed \t becomes a tab
    assert render("  {{.Names}}  ", ITEMS[:1]) == "web\n"  # spaces around a format are trimmed
    assert render("json", ITEMS[:1]) == '{"ID":"4f1c2a9b8e7d","Names":"web","Status":"Up 5 seconds"}\n'
    assert render("{{.Names}}", []) == ""


def test_render_table_aligns_like_docker_with_a_header_row() -> None:
    out = render("table {{.ID}}\\t{{.Names}}\\t{{.Status}}", ITEMS, HEADERS)
    assert out == (
        "CONTAINER ID   NAMES                STATUS\n"
        "4f1c2a9b8e7d   web                  Up 5 seconds\n"
        "0a1b2c3d4e5f   a-much-longer-name   Exited (0) 3 seconds ago\n"
    )


def test_render_table_minimum_width_and_header_functions() -> None:
    # docker's header functions echo their argument: "lower" does not lower the header
    out = render("table {{.Names | lower}}\t{{upper .ID}}", ITEMS[:1], HEADERS)
    assert out == "NAMES     CONTAINER ID\nweb       4F1C2A9B8E7D\n"  # minwidth 10
    # a field without a header is headed by its name upper-cased; a bare "table" takes the default
    assert render("table {{.Size}}", [{"Size": "1MB"}]) == "SIZE\n1MB\n"
    assert render("table", ITEMS[:1], HEADERS, table_default="table {{.Names}}") == "NAMES\nweb\n"
    assert render("table {{.ID}}\t{{.Names}}", [], HEADERS) == "CONTAINER ID   NAMES\n"


def test_template_string_is_docker_clis() -> None:
    assert template_string("table {{.ID}}\\t{{.Names}}") == "{{.ID}}\t{{.Names}}"
    assert template_string("  {{.ID}}\\n ") == "{{.ID}}\n"
    assert template_string("json") == "{{json .}}"
    assert template_string("table") == ""
