"""The one YAML loader of zt-rollout: bounded in time and memory whatever the file holds.

Every YAML file the tool reads (the rollout policy, the rehearsal scenario) goes through
``load_yaml_file`` or ``parse_yaml``. PyYAML's own ``safe_load`` builds aliases as shared objects,
so a 3 KB "billion laughs" of nested anchors loads in no time and then explodes in whatever walks
the result (the key-line map, pydantic, JSON). Here the limits hold before anything walks it:

- the file: at most ``MAX_BYTES`` (512 KiB; a policy is a few KB, 2,000 exclusions about 60 KB);
- nesting: at most ``MAX_DEPTH`` (50) mappings and sequences inside each other, checked while the
  file is parsed, so 100,000 open brackets stop at the 51st;
- a scalar: at most ``MAX_SCALAR`` (10,000) characters; an integer at most ``MAX_INT_DIGITS`` (20)
  digits (Python refuses to read 4,300 and more, and nothing the tool counts needs more than 20);
- values: the document, *with every alias expanded*, holds at most ``MAX_VALUES`` (100,000)
  mappings, sequences and scalars; a recursive alias (``&a [*a]``) is refused. The count is taken
  once over the composed tree, memoised per node, so it costs the file's size, not its expansion.

Every refusal is a ``YamlProblem`` located as ``file:line: key.path: what is wrong`` and ending with
what to do; callers turn it into their own ``ProblemsError`` (exit 2), so nothing is written.
The result is the plain data (as ``yaml.safe_load`` gives it), the line of every key path (for
located validation errors) and any duplicate keys (YAML keeps the last one silently).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from rollout.errors import Problem

MAX_BYTES = 512 * 1024
MAX_DEPTH = 50
MAX_SCALAR = 10_000
MAX_INT_DIGITS = 20
MAX_VALUES = 100_000

KeyPath = tuple[Any, ...]

try:  # libyaml's parser (C) when PyYAML has it: five times faster; the composer stays ours.
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class YamlProblem(Exception):
    """A YAML file refused by a limit or by its syntax; ``problems`` say where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


@dataclass(frozen=True)
class YamlDocument:
    """What a YAML file holds: its data, the 1-based line of each key path, its duplicate keys."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: tuple[tuple[KeyPath, int, int], ...] = ()  # (key path, line, line of the first)


class _Limit(Exception):
    def __init__(self, line: int, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


_INT_DIGITS = re.compile(r"[0-9a-fA-F]")


class _BoundedLoader(Composer, SafeConstructor, Resolver, _Parser):
    """libyaml's (or PyYAML's) parser, PyYAML's composer with a depth and scalar limit, and the
    safe constructor with integers bounded and bad dates located. The composer comes first: the C
    parser has a composer of its own, which knows no limits."""

    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.path: list[Any] = []
        self.node_paths: dict[int, KeyPath] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if parent is not None:
            self.path.append(index.value if isinstance(index, yaml.ScalarNode) else
                             (index if isinstance(index, int) else "(key)"))
        try:
            event = self.peek_event()
            line = event.start_mark.line + 1 if event is not None and event.start_mark is not None else 0
            if len(self.path) > MAX_DEPTH:
                raise _Limit(line, tuple(self.path[:-1]),
                             f"nested more than {MAX_DEPTH} levels deep; flatten the structure")
            if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_SCALAR:
                raise _Limit(line, tuple(self.path),
                             f"a value of {len(event.value):,} characters is longer than the {MAX_SCALAR:,} "
                             "allowed; shorten it")
            node = super().compose_node(parent, index)
            assert node is not None  # an event was there: compose_node always makes a node of it
            self.node_paths.setdefault(id(node), tuple(self.path))
            return node
        finally:
            if parent is not None:
                self.path.pop()

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(_INT_DIGITS.findall(str(node.value))) > MAX_INT_DIGITS:
            raise _Limit(node.start_mark.line + 1, self.node_paths.get(id(node), ()),
                         f"a number of more than {MAX_INT_DIGITS} digits is larger than anything this file "
                         "can hold; use a smaller number")
        return int(super().construct_yaml_int(node))

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as err:  # a date such as 2027-02-30, a base-60 overflow
            what = repr(node.value[:60]) if isinstance(node, yaml.ScalarNode) else "this value"
            raise _Limit(node.start_mark.line + 1, self.node_paths.get(id(node), ()),
                         f"{what} cannot be read: {err}; correct it") from None


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)  # type: ignore[type-var]


def load_yaml_file(path: str | Path, *, max_bytes: int = MAX_BYTES) -> YamlDocument:
    """Read ``path`` (UTF-8, at most ``max_bytes``) and ``parse_yaml`` it; errors name the file."""
    path = Path(path)
    source = path.name
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as err:
        raise YamlProblem([Problem(str(path), "", f"cannot read: {err.strerror}; check the path")]) from None
    if len(raw) > max_bytes:
        raise YamlProblem([Problem(source, "", f"larger than {max_bytes // 1024:,} KiB, the most a YAML file "
                                               "may be; split or shorten it")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise YamlProblem([Problem(f"{source}:{line}", "", f"not UTF-8 (byte offset {err.start}); "
                                                          "save the file as UTF-8")]) from None
    return parse_yaml(text, source=source)


def parse_yaml(text: str, *, source: str) -> YamlDocument:
    """The document in ``text`` within the limits above, or YamlProblem naming ``source`` and the line."""
    if len(text) > MAX_BYTES:
        raise YamlProblem([Problem(source, "", f"larger than {MAX_BYTES // 1024:,} KiB, the most a YAML file "
                                               "may be; split or shorten it")])
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return YamlDocument(None)
        lines, duplicates = _walk(root, loader.node_paths)
        data = loader.construct_document(root)
    except _Limit as limit:
        raise YamlProblem([_located(source, limit.line, limit.path, limit.message)]) from None
    except yaml.YAMLError as err:
        raise YamlProblem([_syntax_problem(source, text, err)]) from None
    finally:
        loader.dispose()
    return YamlDocument(data, lines, tuple(duplicates))


def _located(source: str, line: int, path: KeyPath, message: str) -> Problem:
    return Problem(f"{source}:{line}", format_key_path(path), message)


def _syntax_problem(source: str, text: str, err: yaml.YAMLError) -> Problem:
    mark = getattr(err, "problem_mark", None)
    if mark is not None:
        line: int | None = mark.line + 1
    elif isinstance(getattr(err, "position", None), int):  # a ReaderError: a character YAML forbids
        line = text.count("\n", 0, err.position) + 1  # type: ignore[attr-defined]
    else:
        line = None
    problem = getattr(err, "problem", None) or getattr(err, "reason", None) or str(err)
    where = f"{source}:{line}" if line else source
    return Problem(where, "", f"not valid YAML: {problem}; fix the syntax at that line")


def _walk(root: yaml.Node, paths: dict[int, KeyPath]) -> tuple[dict[KeyPath, int], list[tuple[KeyPath, int, int]]]:
    """Lines of every key path and the duplicate keys, after checking the expanded size.

    The size of each node (itself plus everything under it, aliases expanded) is computed once per
    node, so a bomb is measured in the time of its text and refused before anything expands it.
    """
    _expanded_size(root, {}, paths)
    lines: dict[KeyPath, int] = {}
    duplicates: list[tuple[KeyPath, int, int]] = []
    checked: set[int] = set()
    stack: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "(key)"
                line = key.start_mark.line + 1
                if id(node) not in checked and name in seen:
                    duplicates.append((path + (name,), line, seen[name]))
                seen.setdefault(name, line)
                lines[path + (name,)] = line
                stack.append((value, path + (name,)))
            checked.add(id(node))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + (i,)) for i, item in enumerate(node.value))
    return lines, sorted(duplicates, key=lambda d: d[1])


def _expanded_size(node: yaml.Node, sizes: dict[int, tuple[int, int]], paths: dict[int, KeyPath],
                   depth: int = 0) -> tuple[int, int]:
    """(values, height) under ``node`` with aliases expanded, memoised per node; raise _Limit when
    the values pass MAX_VALUES, the expanded nesting passes MAX_DEPTH, or an alias is recursive.

    The recursion follows the expanded nesting, so it is never deeper than MAX_DEPTH + 1."""
    known = sizes.get(id(node))
    if known is not None:
        if known[0] < 0:
            raise _Limit(node.start_mark.line + 1, paths.get(id(node), ()), "an alias refers to the mapping or list that contains "
                                                       "it; remove the alias")
        if depth + known[1] > MAX_DEPTH + 1:
            raise _Limit(node.start_mark.line + 1, paths.get(id(node), ()), f"with its aliases expanded the file nests more than "
                                                       f"{MAX_DEPTH} levels deep; use fewer aliases")
        return known
    if depth > MAX_DEPTH:
        raise _Limit(node.start_mark.line + 1, paths.get(id(node), ()), f"with its aliases expanded the file nests more than "
                                                   f"{MAX_DEPTH} levels deep; use fewer aliases")
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    sizes[id(node)] = (-1, 0)  # open: meeting it again below is a cycle
    total, height = 1, 0
    for child in children:
        size, child_height = _expanded_size(child, sizes, paths, depth + 1)
        total, height = total + size, max(height, child_height)
        if total > MAX_VALUES:
            raise _Limit(node.start_mark.line + 1, paths.get(id(node), ()), f"with its aliases expanded the file holds more than "
                                                       f"{MAX_VALUES:,} values; write the values out or use "
                                                       "fewer aliases")
    sizes[id(node)] = (total, height + 1)
    return total, height + 1


def format_key_path(loc: KeyPath) -> str:
    """``('waves', 2, 'size')`` -> ``waves[2].size``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def line_of(lines: Mapping[KeyPath, int], loc: KeyPath) -> int | None:
    """The line of ``loc``, or of its nearest ancestor that has one."""
    return next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)


def located(source: str, lines: Mapping[KeyPath, int], loc: KeyPath, message: str) -> Problem:
    """``source:line: key.path: message`` for a problem at key path ``loc``."""
    line = line_of(lines, loc)
    where = f"{source}:{line}" if line else source
    return Problem(where, format_key_path(loc), message.removeprefix("Value error, "))


_UNION_TAG = re.compile(r"^(int|str|float|bool|none|function-\w+\[.*\]|\w+\[.*\])$")


def clean_loc(loc: KeyPath) -> KeyPath:
    """Drop the branch names pydantic puts in the path of a union's errors (``dict[str,int]``, ``int``)."""
    return tuple(p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p)))


def validation_problems(source: str, lines: Mapping[KeyPath, int], err: ValidationError,
                        *, limit: int = 100) -> list[Problem]:
    """One problem per key path, at most ``limit`` of them; of a union's alternatives, the deepest
    path is the useful one."""
    found = [(clean_loc(tuple(e["loc"])), e["msg"]) for e in err.errors()]
    kept = [
        (loc, msg) for loc, msg in found
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other, _ in found)
    ]
    problems = [located(source, lines, loc, msg) for loc, msg in dict(kept).items()]
    return capped(problems, source, limit)


def capped(problems: list[Problem], source: str, limit: int = 100) -> list[Problem]:
    """The first ``limit`` problems, and one line saying how many more there are."""
    if len(problems) <= limit:
        return problems
    return problems[:limit] + [Problem(source, "", f"... and {len(problems) - limit:,} more problems like "
                                                   "these; fix these first")]

