"""Go's text/tabwriter column layout (elastic tabstops), as runc, docker and podman print tables.

Text is cut into lines at "\\n" and into cells at "\\t"; a cell ended by a tab belongs to a column,
the last cell of a line does not and is never padded. A column is a run of consecutive lines that
all have a tab-terminated cell at that index; its width is the widest cell plus ``padding``, at
least ``minwidth``, and narrower cells are filled with ``padchar``. A line with fewer cells ends
the run, so blocks of a table separated by such a line are aligned independently — exactly
tabwriter's recursive ``format``. Widths are counted in code points as Go counts runes (docker's
fork counts East Asian wide characters as two; pass ``width`` to do the same).

Users: ``hull-runtime list`` (runc: minwidth 12, tabwidth 1, padding 3), docker-style tables of the
engine (docker/cli formatter: minwidth 10, tabwidth 1, padding 3).
"""

from __future__ import annotations

from collections.abc import Callable

# (text, tab-terminated)
_Cell = tuple[str, bool]


def tabwrite(
    text: str,
    minwidth: int = 0,
    tabwidth: int = 8,
    padding: int = 1,
    padchar: str = " ",
    width: Callable[[str], int] = len,
) -> str:
    """``text`` written through a tabwriter.Writer(minwidth, tabwidth, padding, padchar, 0) and flushed.

    "\\v" ends a cell without making it a column cell, "\\f" ends a line and the alignment block
    (tabwriter's semantics). With ``padchar`` "\\t", padding is whole tabs of ``tabwidth``.
    """
    lines: list[list[_Cell]] = [[]]
    blocks: list[list[list[_Cell]]] = []
    start = 0
    for i, ch in enumerate(text):
        if ch in "\t\v\n\f":
            lines[-1].append((text[start:i], ch == "\t"))
            start = i + 1
            if ch in "\n\f":
                lines.append([])
                if ch == "\f":
                    blocks.append(lines)
                    lines = [[]]
    if start < len(text):
        lines[-1].append((text[start:], False))
    blocks.append(lines)
    out: list[str] = []
    for block in blocks:
        _format(block, 0, len(block), [], out, minwidth, tabwidth, padding, padchar, width)
    return "".join(out)


def tabulate(
    rows: list[list[str]],
    minwidth: int = 0,
    tabwidth: int = 8,
    padding: int = 1,
    padchar: str = " ",
    width: Callable[[str], int] = len,
) -> str:
    """Rows of cells printed as tab-separated lines through a tabwriter (each line ends in "\\n")."""
    text = "".join("\t".join(row) + "\n" for row in rows)
    return tabwrite(text, minwidth, tabwidth, padding, padchar, width)


def _format(
    lines: list[list[_Cell]],
    line0: int,
    line1: int,
    widths: list[int],
    out: list[str],
    minwidth: int,
    tabwidth: int,
    padding: int,
    padchar: str,
    width: Callable[[str], int],
) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        # A run of lines with a cell in this column starts here: print what precedes it with the
        # widths known so far, then size the column over the run and recurse into the next one.
        _write_lines(lines, line0, this, widths, out, tabwidth, padchar, width)
        line0 = this
        col_width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            col_width = max(col_width, width(lines[this][column][0]) + padding)
            this += 1
        _format(lines, line0, this, [*widths, col_width], out, minwidth, tabwidth, padding, padchar, width)
        line0 = this
    _write_lines(lines, line0, line1, widths, out, tabwidth, padchar, width)


def _write_lines(
    lines: list[list[_Cell]],
    line0: int,
    line1: int,
    widths: list[int],
    out: list[str],
    tabwidth: int,
    padchar: str,
    width: Callable[[str], int],
) -> None:
    for i in range(line0, line1):
        for j, (cell, _htab) in enumerate(lines[i]):
            out.append(cell)
            if j < len(widths):  # the widths never reach a line's last cell
                out.append(_pad(width(cell), widths[j], tabwidth, padchar))
        if i + 1 < len(lines):
            out.append("\n")


def _pad(textw: int, cellw: int, tabwidth: int, padchar: str) -> str:
    if padchar == "\t":
        if tabwidth == 0:
            return ""
        cellw = (cellw + tabwidth - 1) // tabwidth * tabwidth
        return "\t" * ((cellw - textw + tabwidth - 1) // tabwidth)
    return padchar * (cellw - textw)
