"""Go text/tabwriter's layout (elastic tabstops) as runc, docker and podman print tables."""

from __future__ import annotations

import random

from hull.cli.table import tabulate, tabwrite


def test_runc_list_layout() -> None:
    # runc: tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0): columns at least 12 wide, the widest
    # cell plus 3 otherwise, the last column unpadded.
    rows = [["ID", "PID", "STATUS", "BUNDLE"], ["a-long-container-id", "4242", "running", "/b"]]
    assert tabulate(rows, minwidth=12, tabwidth=1, padding=3) == (
        "ID" + " " * 20 + "PID" + " " * 9 + "STATUS" + " " * 6 + "BUNDLE\n"
        "a-long-container-id" + " " * 3 + "4242" + " " * 8 + "running" + " " * 5 + "/b\n"
    )


def test_uniform_rows_match_the_closed_form() -> None:
    # With every row the same length, tabwriter reduces to max(minwidth, widest + padding) per
    # column; hull-runtime list printed that formula before it used this module.
    rng = random.Random(7)
    for _ in range(200):
        ncol = rng.randint(1, 5)
        rows = [["x" * rng.randint(0, 20) for _ in range(ncol)] for _ in range(rng.randint(1, 6))]
        widths = [max(12, *(len(r[i]) + 3 for r in rows)) for i in range(ncol - 1)]
        expected = "".join("".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + r[-1] + "\n" for r in rows)
        assert tabulate(rows, 12, 1, 3) == expected


def test_a_line_without_a_tab_ends_the_alignment_block() -> None:
    text = "a\tbb\tc\nxxxxx\ty\nsingle line\nq\tw\n"
    assert tabwrite(text, 0, 1, 1) == "a     bb c\nxxxxx y\nsingle line\nq w\n"


def test_columns_are_blocks_of_consecutive_lines_with_that_cell() -> None:
    # column 1 exists only on the first two lines, so only they align on it
    text = "a\tb\tc\naa\tbbbbbb\tc\naaa\tb\nz\tb\tc\n"
    assert tabwrite(text, 0, 1, 1) == "a   b      c\naa  bbbbbb c\naaa b\nz   b c\n"


def test_docker_formatter_minwidth_and_empty_cells() -> None:
    # docker/cli: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
    text = "CONTAINER ID\tNAMES\tPORTS\nabc\t\tweb\n"
    assert tabwrite(text, 10, 1, 3) == "CONTAINER ID   NAMES     PORTS\nabc                      web\n"


def test_text_after_the_last_newline_is_written_unpadded() -> None:
    assert tabwrite("a\tb\nccc\td", 0, 1, 1) == "a   b\nccc d"
    assert tabwrite("", 10, 1, 3) == ""


def test_widths_count_characters_not_bytes() -> None:
    assert tabulate([["café", "x"], ["ab", "y"]], 0, 1, 1) == "café x\nab   y\n"


def test_tab_padding() -> None:
    # padchar '\t': cells are padded with tabs up to a multiple of tabwidth
    assert tabwrite("a\tb\nabcdefghi\tc\n", 0, 8, 1, "\t") == "a\t\tb\nabcdefghi\tc\n"


def test_form_feed_ends_a_block() -> None:
    assert tabwrite("a\tb\n\fxxxx\ty\n", 0, 1, 1) == "a b\n\nxxxx y\n"
