"""The examples of a Markdown document, what they are expected to print, and the rules that
compare it with what they print (``tests/test_docs.py`` runs them against a real daemon).

**Examples.** A fenced block whose first line starts with ``$ `` is a transcript: each
``$ command`` (with ``\\`` continuations) is one example; the lines up to the next ``$ `` are
its expected stdout and stderr, a last line ``[exit N]`` its exit status (absent: 0). A
```` ```bash ```` block that runs ``curl`` is one example, expected to print the fenced
block right after it (``json`` or plain). A ```` ```bash ```` block without curl and
without a block after it (``PASS=$(...)``) is run before every later one.

**Directives**, an HTML comment right before a block, run what cannot run as it stands:
``<!-- doc-test: skip: REASON -->`` (not run), ``<!-- doc-test: timeout N -->`` (a command
still running after N s gets Ctrl-C, and what it printed is compared),
``<!-- doc-test: timeout N; meanwhile: COMMAND -->`` (COMMAND runs once the first command
has connected to the daemon), ``<!-- doc-test: file NAME... -->`` (the code block is
written to each file NAME before the examples after it run), ``<!-- doc-test: file NAME:
TEXT -->`` (one line written to NAME), ``<!-- doc-test: daemon -->`` (the block shows the
test's own daemon starting: its stdout is compared).

**Normalisation.** Both sides pass through :func:`normalise` before they are compared:
execution ids (32 hex digits) and the cgroup name derived from the database path, ISO-8601
and local times, dates, HTTP dates, durations (``1.71s``, ``3m05s``, ``4h 36min left``),
relative times (``in 3 h``, ``tonight 00:00``), measured numbers (CPU and memory
percentages, CPU seconds, RSS, the gates' CPU readings and dwell, the conditions'
measurements, a sampled history), generated passwords and tokens, the pydantic version in
its error links, and runs of spaces (table columns align on the width of their values)
become placeholders. Before that the port of the test's daemon becomes
``8000`` and its temporary home ``/home/me``. Everything else must match: a changed message,
field, key order, column or exit status fails. JSON (a curl answer, ``--json``) is compared
as data: the same keys in the same order, the same values but the normalised ones. A line
``...`` in the expected text stands for any number of lines. An id the document shows and
the id the daemon printed in its place are paired: a later command naming the document's id
gets the real one, and the pairing must stay one to one (one run, one id, everywhere).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
EXIT = re.compile(r"^\[exit (\d+)\]$")
HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")
DOC_PORT = 8000

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (HEX_ID.pattern, "<id>"),
        (r"\bomnimind-[0-9a-f]{12}\b", "omnimind-<id>"),  # a cgroup, named after the database
        (rf"{_DAY}, \d\d [A-Z][a-z]{{2}} \d{{4}} \d\d:\d\d:\d\d GMT", "<time>"),
        (rf"{_DAY} \d{{4}}-\d\d-\d\d \d\d:\d\d(:\d\d)?( [A-Z]+|[+-]\d+)?", "<time>"),
        (r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d([.,]\d+)?)?(Z|[+-]\d\d:?\d\d)?", "<time>"),
        (r"\d{4}-\d\d-\d\d", "<date>"),
        (r"CPU outside the daemon (no reading|[\d.]+ %)", "CPU outside the daemon <n>"),
        (
            r"\((it has been below for long enough in \d+ s more|CPU is above the threshold"
            r"|no reading yet)\)",
            "(<gate state>)",
        ),
        (rf"\b(in \d+ (s|min|h)|(today|tonight|tomorrow|{_DAY}) \d\d:\d\d)\b", "<when>"),
        (r"\b\d+ (s|min|h) ago\b", "<when>"),
        (r"\b(\d+\.\d+s|\d+m\d\ds|\d+h\d\dm)(?!\w)", "<duration>"),
        (r"\b(\d+ ?(days?|h|min|s) )+left\b", "<duration> left"),
        (r"^((cpu|memory) percent|(cpu|duration) seconds|max rss mb):.*", r"\1: <n>"),
        (r"^( ?(viewer )?pass): \S+$", r"\1: <password>"),
        (r"errors\.pydantic\.dev/[\d.]+/", "errors.pydantic.dev/<version>/"),
    ]
]
MEASURED = {
    "cpu_percent",
    "memory_percent",
    "external_cpu_percent",
    "duration_seconds",
    "last_duration_seconds",
    "cpu_seconds",
    "max_rss_mb",
    "user_idle_seconds",
    "dwell_remaining_seconds",
}
"""JSON keys whose numbers are measurements."""
GENERATED = {"pass", "token"}
"""JSON keys whose strings are generated secrets."""
SAMPLED = {"cpu_history", "holding"}
"""JSON keys of lists whose length and content follow the machine: their first item only."""


def normalise(line: str) -> str:
    """One line of output with what changes from run to run replaced by placeholders."""
    line = re.sub(r"[ \t]+", " ", line.replace("\r", "")).rstrip()
    for pattern, replacement in _RULES:
        line = pattern.sub(replacement, line)
    return line


def normalise_data(value: Any, key: str | None = None) -> Any:
    """A JSON value with its measured, generated and time-dependent parts replaced."""
    if isinstance(value, dict):
        if set(value) == {"value", "source", "detail"}:  # a condition's measurement
            return {name: "<measured>" for name in value}
        return {k: normalise_data(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = value[:1] if key in SAMPLED else value
        return [normalise_data(item) for item in items]
    if key in MEASURED:  # a number, or null while there is no reading
        return "<n>"
    if key in GENERATED and isinstance(value, str):
        return "<password>"
    if isinstance(value, str):
        return "\n".join(normalise(line) for line in value.split("\n"))
    return value


def parse_json(text: str) -> list[Any] | None:
    """The JSON values ``text`` holds one after the other (curl prints answers without a
    newline between them), or None if it is not only JSON."""
    decoder, values, at = json.JSONDecoder(), [], 0
    text = text.strip()
    if not text.startswith(("{", "[")):
        return None
    while at < len(text):
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return None
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


@dataclass
class Example:
    """One command of a document, and what the document says it prints."""

    path: Path
    line: int
    """The command's line in the document, from 1."""
    command: str
    expected: list[str]
    status: int
    span: tuple[int, int]
    """The lines (0-based, end excluded) that hold the expected output, rewritten when the
    document is regenerated."""
    kind: str
    """``transcript`` (output lines, then ``[exit N]``) or ``block`` (a fenced block)."""
    directive: str = ""
    indent: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def shown_at(self) -> str:
        """Where the document shows the output: ``docs/cli.md lines 80-83``."""
        first, end = self.span
        lines = f"line {first + 1}" if end - first <= 1 else f"lines {first + 1}-{end}"
        return f"docs/{self.path.name} {lines}"


@dataclass
class Fence:
    info: str
    indent: str
    start: int
    end: int
    lines: list[str]
    directive: str = ""


def fences(lines: list[str]) -> Iterator[Fence]:
    """Every fenced block of a Markdown document, with the directive right before it."""
    directive, index = "", 0
    while index < len(lines):
        if found := DIRECTIVE.match(lines[index]):
            directive = found.group(1)
        elif opening := FENCE.match(lines[index]):
            indent, start = opening.group(1), index
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                index += 1
            body = [line.removeprefix(indent) for line in lines[start + 1 : index]]
            yield Fence(opening.group(2), indent, start, index, body, directive)
            directive = ""
        elif lines[index].strip():
            directive = ""
        index += 1


def examples(path: Path) -> Iterator[Example | Fence]:
    """The document's examples in order, and the fences that carry a directive (files to
    write, the daemon's block) where they come."""
    lines = path.read_text().splitlines()
    blocks = list(fences(lines))
    for number, block in enumerate(blocks):
        if block.lines and block.lines[0].startswith("$ "):
            yield from _transcript(path, block)
        elif block.info == "bash" and "curl" in "\n".join(block.lines):
            after = blocks[number + 1] if number + 1 < len(blocks) else None
            if after is None or any(s.strip() for s in lines[block.end + 1 : after.start]):
                raise ValueError(f"{path.name}:{block.start + 1}: no output block after it")
            yield Example(
                path,
                block.start + 2,
                "\n".join(block.lines),
                after.lines,
                0,
                (after.start + 1, after.end),
                "block",
                block.directive or after.directive,
                after.indent,
            )
        elif block.directive or block.info == "bash":
            yield block


def _transcript(path: Path, block: Fence) -> Iterator[Example]:
    body, index = block.lines, 0
    while index < len(body):
        first = index
        command = [body[index][2:]]
        while command[-1].endswith("\\") and index + 1 < len(body):
            index += 1
            command.append(body[index])
        index += 1
        start = index
        while index < len(body) and not body[index].startswith("$ "):
            index += 1
        output, status = body[start:index], 0
        if output and (code := EXIT.match(output[-1])):
            output, status = output[:-1], int(code.group(1))
        offset = block.start + 1
        yield Example(
            path,
            offset + first + 1,
            "\n".join(command),
            output,
            status,
            (offset + start, offset + index),
            "transcript",
            block.directive,
            block.indent,
        )


@dataclass
class Ids:
    """The ids the document shows, paired with the ids the daemon printed in their place."""

    real: dict[str, str] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)

    def pair(self, doc_text: str, actual_text: str) -> list[str]:
        """Pair the ids of two lines that matched; the clashes, in words."""
        doc_ids, actual_ids = HEX_ID.findall(doc_text), HEX_ID.findall(actual_text)
        problems = []
        for doc_id, actual in zip(doc_ids, actual_ids, strict=False):
            if self.real.setdefault(doc_id, actual) != actual:
                problems.append(f"{doc_id} stood for {self.real[doc_id]}, here for {actual}")
            if self.shown.setdefault(actual, doc_id) != doc_id:
                problems.append(f"{actual} is shown as {self.shown[actual]} and as {doc_id}")
        return problems

    def to_real(self, command: str) -> str:
        return HEX_ID.sub(lambda m: self.real.get(m.group(), m.group()), command)

    def to_shown(self, text: str) -> str:
        return HEX_ID.sub(lambda m: self.shown.get(m.group(), m.group()), text)


def compare(expected: list[str], actual: str, ids: Ids, label: str) -> list[str]:
    """The differences between the document's lines (``label`` says where they are) and
    the actual output, as a diff of their normalised forms (empty when they match); pairs
    the ids of the lines that match."""
    wanted, got = parse_json("\n".join(expected)), parse_json(actual)
    if wanted is not None and got is not None:
        return _compare_data(wanted, got, ids, label + ", as data")
    lines = actual.splitlines()
    norm_expected = [normalise(line) for line in expected]
    norm_actual = [normalise(line) for line in lines]
    matcher = difflib.SequenceMatcher(a=norm_expected, b=norm_actual, autojunk=False)
    problems = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            problems += ids.pair(expected[block.a + k], lines[block.b + k])
    if not _matches(norm_expected, norm_actual):
        problems += _diff(norm_expected, norm_actual, label)
    return problems


def _matches(expected: list[str], actual: list[str]) -> bool:
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + "\n" for line in expected
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


def _compare_data(expected: list[Any], actual: list[Any], ids: Ids, label: str) -> list[str]:
    problems: list[str] = []
    _pair_data(expected, actual, ids, problems)
    wanted = [normalise_data(value) for value in expected]
    got = [normalise_data(value) for value in actual]
    if wanted == got and all(_same_order(a, b) for a, b in zip(wanted, got, strict=True)):
        return problems
    dump = [
        [s for v in values for s in json.dumps(v, indent=2).splitlines()]
        for values in (wanted, got)
    ]
    return problems + _diff(dump[0], dump[1], label)


def _same_order(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict) and isinstance(actual, dict):
        return list(expected) == list(actual) and all(
            _same_order(expected[k], actual[k]) for k in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return all(_same_order(a, b) for a, b in zip(expected, actual, strict=False))
    return True


def _pair_data(expected: Any, actual: Any, ids: Ids, problems: list[str]) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected.keys() & actual.keys():
            _pair_data(expected[key], actual[key], ids, problems)
    elif isinstance(expected, list) and isinstance(actual, list):
        for a, b in zip(expected, actual, strict=False):
            _pair_data(a, b, ids, problems)
    elif (
        isinstance(expected, str)
        and isinstance(actual, str)
        and normalise(expected) == normalise(actual)
    ):
        problems += ids.pair(expected, actual)


def _diff(expected: list[str], actual: list[str], label: str) -> list[str]:
    return list(difflib.unified_diff(expected, actual, label, "what it printed", lineterm=""))


def rewritten(example: Example, actual: str, status: int) -> list[str]:
    """The lines that replace the example's expected output when the document is
    regenerated: the output as it came (pretty-printed if the document's was)."""
    lines = actual.splitlines()
    values = parse_json(actual)
    if example.kind == "block" and values is not None and len(example.expected) > 1:
        lines = [line for value in values for line in json.dumps(value, indent=2).splitlines()]
    if example.kind == "transcript" and status:
        lines.append(f"[exit {status}]")
    return [f"{example.indent}{line}".rstrip() if line else "" for line in lines]


def regenerate(path: Path, rewrites: list[tuple[tuple[int, int], list[str]]]) -> None:
    """Replace the given line spans of ``path``, the last first."""
    lines = path.read_text().splitlines()
    for (start, end), new in sorted(rewrites, reverse=True):
        lines[start:end] = new
    path.write_text("\n".join(lines) + "\n")
