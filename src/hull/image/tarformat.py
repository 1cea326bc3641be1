"""The tar header formats layers use: POSIX ustar, pax extended headers, GNU extensions.

image-spec layer.md packages changesets as tar archives "per the GNU Basic Tar
Format and libarchive tar(5)". Python's tarfile builds a TarInfo object and
several dicts per member, which dominates the cost of a layer of 20,000 small
files; this module parses a 512-byte block into a plain tuple and leaves the
stream handling to the caller (layer.py), and writes headers for changeset.py.

Read: ustar (name + prefix), GNU long names/links (typeflag ``L``/``K``),
base-256 numbers (GNU, for sizes >= 8 GiB and large ids), pax ``x`` and ``g``
records (path, linkpath, size, uid, gid, mtime, atime, SCHILY.xattr.*).
GNU sparse files are refused: layer.md says they "SHOULD NOT be used".
Write: ustar, with a pax ``x`` header before it when a value does not fit
(long names, big numbers, xattrs), as Go's archive/tar does for layers.
"""

from __future__ import annotations

import zlib

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)

# Type flags (ustar / GNU), as ints: block[156].
REG = 0x30  # '0'
AREG = 0x00  # '\0', pre-POSIX regular file
LNK = 0x31  # '1' hard link
SYM = 0x32  # '2'
CHR = 0x33  # '3'
BLK = 0x34  # '4'
DIR = 0x35  # '5'
FIFO = 0x36  # '6'
CONT = 0x37  # '7' contiguous file: a regular file everywhere that matters
PAX_X = 0x78  # 'x' pax header for the next member
PAX_G = 0x67  # 'g' pax global header
GNU_LONGNAME = 0x4C  # 'L'
GNU_LONGLINK = 0x4B  # 'K'
GNU_SPARSE = 0x53  # 'S'
GNU_VOLHDR = 0x56  # 'V'

XATTR_PREFIX = b"SCHILY.xattr."


class TarFormatError(ValueError):
    """A header block that is not tar (bad checksum, bad number)."""


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:
        # GNU base-256: big-endian two's complement; hull refuses negatives (0xff lead byte).
        if field[0] == 0xFF:
            raise TarFormatError("negative base-256 number")
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    field = field.split(b"\0", 1)[0].strip(b" ")
    if not field:
        return 0
    try:
        return int(field, 8)
    except ValueError:
        raise TarFormatError(f"bad octal number {field!r}") from None


def checksum_ok(block: bytes) -> bool:
    """The ustar chksum: the unsigned byte sum with the chksum field read as spaces.

    Adler-32's first half is 1 + the byte sum mod 65521; 256 bytes sum to at most
    65280, so two Adler-32s give the exact sum without a Python loop over 512 bytes.
    """
    total = (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2
    total -= (zlib.adler32(block[148:156]) & 0xFFFF) - 1
    total += 8 * 0x20
    try:
        return total == _num(block[148:156])
    except TarFormatError:
        return False


def _num(field: bytes) -> int:
    """Fast path for the usual NUL/space-terminated octal; anything else goes through _number."""
    try:
        return int(field.rstrip(b"\0 "), 8)
    except ValueError:
        return _number(field)


# (name, mode, uid, gid, size, mtime, typeflag, linkname, devmajor, devminor)
Header = tuple[bytes, int, int, int, int, int, int, bytes, int, int]


def parse_header(block: bytes) -> Header:
    """One 512-byte header block; the caller has checked it is not a zero block."""
    if not checksum_ok(block):
        raise TarFormatError("header checksum mismatch (not a tar archive, or corrupt)")
    name = block[:100].split(b"\0", 1)[0]
    magic = block[257:263]
    if magic == b"ustar\x00":  # POSIX ustar: name = prefix "/" name
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    typeflag = block[156]
    device = typeflag in (0x33, 0x34) and magic[:5] == b"ustar"  # devmajor/devminor only mean something here
    return (
        name,
        _num(block[100:108]),
        _num(block[108:116]),
        _num(block[116:124]),
        _num(block[124:136]),
        _num(block[136:148]),
        typeflag,
        block[157:257].split(b"\0", 1)[0] if block[157] else b"",
        _num(block[329:337]) if device else 0,
        _num(block[337:345]) if device else 0,
    )


def parse_pax(data: bytes) -> dict[bytes, bytes]:
    """pax extended header records: ``"%d %s=%s\\n"`` (POSIX pax "extended header")."""
    records: dict[bytes, bytes] = {}
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0:  # padding some writers leave
            break
        space = data.find(b" ", pos)
        if space < 0:
            raise TarFormatError("bad pax record (no length)")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("bad pax record length") from None
        record = data[space + 1 : pos + length]
        if length <= 0 or pos + length > end or not record.endswith(b"\n") or b"=" not in record:
            raise TarFormatError("bad pax record")
        key, _, value = record[:-1].partition(b"=")
        records[key] = value
        pos += length
    return records


def _octal(value: int, width: int) -> bytes | None:
    """``width``-byte NUL-terminated octal, or None if it does not fit (then pax carries it)."""
    text = b"%o" % value
    if value < 0 or len(text) > width - 1:
        return None
    return text.rjust(width - 1, b"0") + b"\0"


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _ustar(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: int, linkname: bytes,
           devmajor: int, devminor: int) -> bytes:  # fmt: skip
    fields = [
        name[:100].ljust(100, b"\0"),
        _octal(mode & 0o7777, 8) or b"0000000\0",
        _octal(uid, 8) or b"0000000\0",
        _octal(gid, 8) or b"0000000\0",
        _octal(size, 12) or b"00000000000\0",
        _octal(mtime, 12) or b"00000000000\0",
        b" " * 8,
        bytes([typeflag]),
        linkname[:100].ljust(100, b"\0"),
        b"ustar\x0000",
        b"\0" * 32,  # uname: reproducible layers carry no names (uid/gid are what layer.md requires)
        b"\0" * 32,  # gname
        _octal(devmajor, 8) or b"0000000\0",
        _octal(devminor, 8) or b"0000000\0",
        b"\0" * 155,
    ]
    block = b"".join(fields).ljust(BLOCK, b"\0")
    chksum = (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2
    return block[:148] + b"%06o\0 " % chksum + block[156:]


def build_header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: int,
                 linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
                 xattrs: dict[bytes, bytes] | None = None) -> bytes:  # fmt: skip
    """The header block(s) for one member: a pax ``x`` header first when something does not fit ustar."""
    pax: list[bytes] = []
    if len(name) > 100 or not name.isascii():
        pax.append(_pax_record(b"path", name))
    if len(linkname) > 100 or not linkname.isascii():
        pax.append(_pax_record(b"linkpath", linkname))
    for key, value, width in ((b"uid", uid, 8), (b"gid", gid, 8), (b"size", size, 12), (b"mtime", mtime, 12)):
        if _octal(value, width) is None:
            pax.append(_pax_record(key, str(value).encode()))
    if xattrs:
        for key in sorted(xattrs):
            pax.append(_pax_record(XATTR_PREFIX + key, xattrs[key]))
    header = _ustar(name, mode, uid, gid, size, mtime, typeflag, linkname, devmajor, devminor)
    if not pax:
        return header
    data = b"".join(pax)
    base = name.rstrip(b"/").rsplit(b"/", 1)
    pax_name = (base[0] + b"/PaxHeaders.0/" + base[1] if len(base) == 2 else b"PaxHeaders.0/" + base[0])[:100]
    pad = -len(data) % BLOCK
    return _ustar(pax_name, 0o644, 0, 0, len(data), 0, PAX_X, b"", 0, 0) + data + b"\0" * pad + header
