"""Strings the store keeps for people: tags are checked before they are stored, and any stored
text is made printable before it reaches a terminal (no escape sequence, no control character)."""

from __future__ import annotations

import re
from collections.abc import Iterable

TAG_MAX = 64
TAG_CHARS = "letters, digits and . _ - : @ /"
_TAG = re.compile(r"[\w.:@/-]+")  # runs keep their tags comma-separated: no commas, no spaces
# C0 and C1 controls, DEL, and the characters that reorder or break lines when displayed.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_KEEP_IN_LINES = "\n\t"


class TagError(ValueError):
    """A tag that cannot be stored; the message names it and the allowed characters."""


def check_tag(tag: str) -> str:
    """`tag` when it may be stored; TagError naming it and the allowed characters otherwise."""
    if not tag:
        raise TagError(f"empty tag: a tag is 1 to {TAG_MAX} of {TAG_CHARS}")
    if len(tag) > TAG_MAX or not _TAG.fullmatch(tag):
        raise TagError(f"tag {tag!r}: a tag is 1 to {TAG_MAX} of {TAG_CHARS} "
                       "(no commas, spaces, brackets or control characters)")
    return tag


def check_tags(tags: Iterable[str]) -> list[str]:
    """Each tag checked (the first bad one raises TagError), without repeats, in order."""
    return list(dict.fromkeys(check_tag(t) for t in tags))


NAME_MAX = 120


class RunNameError(ValueError):
    """A run name that cannot be stored; the message says what a name may be."""


def check_run_name(name: str) -> str:
    """`name` when it may name a run and its folder (1 to NAME_MAX printable characters, no
    slash, no surrounding spaces); RunNameError otherwise."""
    if not name or len(name) > NAME_MAX or name != name.strip() or printable(name) != name \
            or "/" in name or "\\" in name:
        raise RunNameError(f"run name {name!r}: 1 to {NAME_MAX} characters, no slash, control "
                           "character or surrounding spaces")
    return name


def printable(text: object, *, multiline: bool = False) -> str:
    """`text` with every control character shown visibly: C0 and DEL in caret notation (ESC as
    `^[`), C1 and bidirectional controls as `\\x9b` / `\\u202e`. `multiline` keeps newlines and
    tabs."""
    return _CONTROL.sub(lambda m: _visible(m.group(), multiline), str(text))


def _visible(char: str, multiline: bool) -> str:
    code = ord(char)
    if multiline and char in _KEEP_IN_LINES:
        return char
    if code < 0x20 or code == 0x7F:
        return "^" + chr(code ^ 0x40)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
