"""Damaged and crafted .npz files: a corrupt compressed member, a pickle that would run code."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path


def damage_member(path: Path, member: str) -> None:
    """Overwrite the start of one member's compressed stream: the archive still opens and only
    reading that array fails (zlib.error)."""
    raw = bytearray(path.read_bytes())
    offset = zipfile.ZipFile(path).getinfo(member).header_offset
    name_len, extra_len = struct.unpack("<HH", raw[offset + 26:offset + 30])
    start = offset + 30 + name_len + extra_len
    raw[start:start + 16] = b"\xff" * 16
    path.write_bytes(bytes(raw))


class Touch:
    """Unpickling this creates `path`: proof that a loader ran code from a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))
