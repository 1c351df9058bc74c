"""The tokens of a litmus test, and the integers it writes (``-1``, ``ATOMIC_INIT(1)``)."""

from __future__ import annotations

import re

from shmkernel.errors import UsageError

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<num>-?\d+)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>/\\|\\/|==|!=|<=|>=|&&|\|\||[-+*&|^!~<>=;:,(){}\[\]])
""",
    re.VERBOSE,
)


class Lexer:
    def __init__(self, text: str, path: str, line0: int) -> None:
        self.toks: list[tuple[str, str, int]] = []
        pos, line = 0, line0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise UsageError(f"{path}:{line}: unexpected character {text[pos]!r}")
            kind = m.lastgroup
            val = m.group()
            if kind != "ws":
                self.toks.append((kind or "", val, line))
            line += val.count("\n")
            pos = m.end()
        self.i = 0
        self.path = path

    def peek(self, k: int = 0) -> tuple[str, str, int]:
        return (
            self.toks[self.i + k] if self.i + k < len(self.toks) else ("eof", "", self.toks[-1][2] if self.toks else 0)
        )

    def next(self) -> tuple[str, str, int]:
        t = self.peek()
        self.i += 1
        return t

    def expect(self, val: str) -> None:
        t = self.next()
        if t[1] != val:
            raise UsageError(f"{self.path}:{t[2]}: expected {val!r}, found {t[1] or 'end of file'!r}")

    def error(self, msg: str) -> UsageError:
        return UsageError(f"{self.path}:{self.peek()[2]}: {msg}")


def value(lx: Lexer) -> int:
    k, v, ln = lx.next()
    if v == "ATOMIC_INIT":
        lx.expect("(")
        n = value(lx)
        lx.expect(")")
        return n
    if v == "-":
        return -value(lx)
    if k != "num":
        raise UsageError(f"{lx.path}:{ln}: expected an integer, found {v!r}")
    return int(v)
