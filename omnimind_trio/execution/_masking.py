"""Masking a task's secrets: each value is replaced by ``***`` wherever it appears verbatim.

A :class:`Masker` holds one run's secret values. It masks text (a result's strings, a
reason) and, through :meth:`Masker.stream`, output as it comes in chunks: a value split
across two chunks is masked all the same. The stream holds back only what may be the start
of a secret (the longest end of the output so far that begins one, so less than the
longest value), and lets it go at the next chunk or at the end of the stream. Output that
is not the start of a secret is never held: a ``print`` shows in the live output at once.

The streaming result is the same as masking the whole stream at once: at each position the
longest value that matches is masked (values are tried longest first), left to right.

What is not covered: a value the task transforms before printing it (encoded, escaped by
``repr``, split by other output, printed one character at a time with other output
between them) does not appear verbatim and is not masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

MASK: Final = "***"


def _longest_first(values: Iterable[str]) -> list[str]:
    # At a position where two values match, the longer one is masked.
    return sorted(values, key=len, reverse=True)


class Masker:
    """Masks the given secret values (empty values are ignored)."""

    def __init__(self, values: Iterable[str]) -> None:
        texts = _longest_first({v for v in values if v})
        self.values = tuple(texts)
        encoded = [v.encode("utf-8", "surrogatepass") for v in texts]
        self._encoded = tuple(encoded)
        self._text = re.compile("|".join(map(re.escape, texts))) if texts else None
        self._bytes = re.compile(b"|".join(map(re.escape, encoded))) if encoded else None

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, value: str) -> str:
        return value if self._text is None else self._text.sub(MASK, value)

    def json(self, value: Any) -> Any:
        """``value`` (a JSON value) with every string masked, dictionary keys included.
        Without recursion: a result nested a thousand deep is masked too."""
        if self._text is None:
            return value
        root = [value]
        todo: list[tuple[Any, Any]] = [(root, 0)]
        while todo:
            container, key = todo.pop()
            item = container[key]
            if isinstance(item, str):
                container[key] = self.text(item)
            elif isinstance(item, list):
                container[key] = copy = list(item)
                todo.extend((copy, index) for index in range(len(copy)))
            elif isinstance(item, dict):
                container[key] = masked = {self.text(k): v for k, v in item.items()}
                todo.extend((masked, k) for k in masked)
        return root[0]

    def stream(self) -> StreamMasker:
        """A masker for one output stream, fed chunk by chunk."""
        return StreamMasker(self)

    def _held_from(self, data: bytes, start: int) -> int:
        """Where the end of ``data`` that may begin a secret starts (at or after
        ``start``), or ``len(data)``: the smallest position whose rest is a proper prefix
        of a value."""
        size = len(data)
        held = size
        for value in self._encoded:
            # Where ``value`` could begin and not end within ``data``: its first byte's
            # occurrences (found in C) among the last len(value) - 1 positions.
            first = value[:1]
            position = data.find(first, max(start, size - len(value) + 1))
            while position != -1 and position < held:
                if data.startswith(value[: size - position], position):
                    held = position
                    break
                position = data.find(first, position + 1)
        return held


class StreamMasker:
    """Masks one stream of output chunks (see the module's docstring)."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        """The masked output that is certain now; what may begin a secret is held."""
        pattern = self._masker._bytes
        if pattern is None:
            return data
        raw = self._held + data
        held = self._masker._held_from(raw, 0)
        if not any(value in raw for value in self._masker._encoded):
            # Nearly every chunk: no secret in it, so no regex over it (a substring search
            # per value is about 20x cheaper than the alternation at 100 values).
            self._held = raw[held:]
            return raw[:held]
        out = bytearray()
        position = 0
        for match in pattern.finditer(raw):
            if match.start() >= held:
                break
            out += raw[position : match.start()]
            out += MASK.encode()
            position = match.end()
            if position > held:  # the held part began inside this value: look again
                held = self._masker._held_from(raw, position)
        held = max(held, position)
        out += raw[position:held]
        self._held = raw[held:]
        return bytes(out)

    def flush(self) -> bytes:
        """The end of the stream: what was held, masked."""
        pattern, held = self._masker._bytes, self._held
        self._held = b""
        return held if pattern is None else pattern.sub(MASK.encode(), held)
