"""The tokens of a herd7 C litmus test, comments and the header's free text removed.

herd7 reads ``(* ... *)`` and ``/* ... */`` and ``// ...`` comments, a first line
``C NAME`` (NAME may be quoted) and then free text (diy's ``Cycle=``, ``Orig=``
lines, quoted descriptions) up to the ``{`` of the init block. Positions are
kept as line numbers so that every error names its line.
"""

from __future__ import annotations

import re

from shmkernel.errors import UsageError

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n\f]+)
  | (?P<num>0[xX][0-9a-fA-F]+|\d+)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>"[^"\n]*")
  | (?P<op>/\\|\\/|->|==|!=|<=|>=|&&|\|\||<<|>>|[-+*/%&|^!~<>=;:,(){}\[\]?.])
""",
    re.VERBOSE,
)

Token = tuple[str, str, int]  # kind, text, line


def read_litmus_text(path: str) -> str:
    """The file's text; unreadable, binary or non-UTF-8 files are one-line errors."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    if b"\0" in raw:
        raise UsageError(f"{path}: binary file, not a litmus test")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text, not a litmus test") from None


def strip_comments(text: str) -> str:
    """Comments become blanks (their newlines kept). An ``(*`` opens a comment
    only when a blank or a star follows it or it starts a line, so that
    ``READ_ONCE(*x)`` and ``(*(int **)p)`` stay code."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("(*", i) and (i + 2 >= n or text[i + 2] in " \t\r\n*)" or _line_start(text, i)):
            end = text.find("*)", i + 2)
            end = n if end < 0 else end + 2
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
        elif c == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end + 1
            out.append(text[i:end])
            i = end
            continue
        else:
            out.append(c)
            i += 1
            continue
        out.append("".join(ch if ch == "\n" else " " for ch in text[i:end]))
        i = end
    return "".join(out)


def _line_start(text: str, i: int) -> bool:
    j = text.rfind("\n", 0, i)
    return not text[j + 1 : i].strip()


def tokenize(text: str, path: str, line0: int = 1) -> list[Token]:
    toks: list[Token] = []
    pos, line = 0, line0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise UsageError(f"{path}:{line}: unexpected character {text[pos]!r}")
        kind, val = m.lastgroup or "", m.group()
        if kind != "ws":
            toks.append((kind, val, line))
        line += val.count("\n")
        pos = m.end()
    return toks


class Tokens:
    """A cursor over the tokens, with one-line errors that name the file and line."""

    def __init__(self, toks: list[Token], path: str) -> None:
        self.toks, self.i, self.path = toks, 0, path

    def peek(self, k: int = 0) -> Token:
        j = self.i + k
        if j < len(self.toks):
            return self.toks[j]
        return ("eof", "", self.toks[-1][2] if self.toks else 0)

    def next(self) -> Token:
        t = self.peek()
        self.i += 1
        return t

    def at(self, *vals: str) -> bool:
        return self.peek()[1] in vals and self.peek()[0] != "str"

    def take(self, val: str) -> bool:
        if self.at(val):
            self.i += 1
            return True
        return False

    def expect(self, val: str) -> Token:
        t = self.next()
        if t[1] != val or t[0] == "str":
            raise UsageError(f"{self.path}:{t[2]}: expected {val!r}, found {t[1] or 'end of file'!r}")
        return t

    def error(self, msg: str, line: int | None = None) -> UsageError:
        return UsageError(f"{self.path}:{self.peek()[2] if line is None else line}: {msg}")


def split_header(text: str, path: str) -> tuple[str, str, int]:
    """(test name, the text from the init block's ``{`` on, its first line number)."""
    lines = text.split("\n")
    head = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if head is None:
        raise UsageError(f"{path}: empty file")
    first = lines[head].strip().split(None, 1)
    if first[0] != "C":
        raise UsageError(
            f"{path}:{head + 1}: expected 'C NAME' (only the C litmus format is supported; this one is for {first[0]!r})"
        )
    name = first[1].strip() if len(first) > 1 else ""
    if name.startswith('"'):
        name = name.strip('"')
    name = name.split()[0] if name else f"{path.rsplit('/', 1)[-1].removesuffix('.litmus')}"
    rest = "\n".join(lines[head + 1 :])
    # free text (diy's metadata, quoted descriptions) until the init block
    pos = 0
    while True:
        m = re.compile(r'"[^"]*"|\{').search(rest, pos)
        if m is None:
            raise UsageError(f"{path}: no init block '{{ ... }}' after the 'C {name}' line")
        if m.group() == "{":
            break
        pos = m.end()
    line = head + 2 + rest.count("\n", 0, m.start())
    return name, rest[m.start() :], line
