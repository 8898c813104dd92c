"""PowerShell read by a real grammar (tree-sitter-powershell), for the SSM documents' scripts.

``syntax_errors`` lists every ERROR or MISSING node with its line, so a script the agent would hand to
``powershell.exe`` and see fail to parse fails the test instead. ``commands`` gives each command call
with its named arguments (``-Name ProxyEnable`` -> ``{"Name": "ProxyEnable"}``, quotes removed), which
is how the tests find what a step does to legacy access without matching on text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import tree_sitter_powershell
from tree_sitter import Language, Node, Parser, Tree


@cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_powershell.language()))


def parse(script: str) -> Tree:
    return _parser().parse(script.encode("utf-8"))


def syntax_errors(script: str) -> list[str]:
    """``line N: <text>`` for every node the grammar could not place, or had to invent."""
    found: list[str] = []

    def walk(node: Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            text = node.text.decode("utf-8", "replace") if node.text else ""
            found.append(f"line {node.start_point[0] + 1}: {'missing ' + node.type if node.is_missing else text[:60]!r}")
            return
        for child in node.children:
            walk(child)

    walk(parse(script).root_node)
    return found


def foreach_loops(script: str) -> list[tuple[int, str]]:
    """(character offset, source text) of every ``foreach`` statement."""
    found: list[tuple[int, str]] = []
    data = script.encode("utf-8")

    def walk(node: Node) -> None:
        if node.type == "foreach_statement":
            found.append((len(data[:node.start_byte].decode("utf-8")), (node.text or b"").decode("utf-8")))
        for child in node.children:
            walk(child)

    walk(parse(script).root_node)
    return found


@dataclass(frozen=True)
class Command:
    name: str  # as written: Set-ItemProperty, reg.exe, $action
    named: dict[str, str] = field(default_factory=dict)  # -Name Value pairs (a switch maps to "")
    positional: tuple[str, ...] = ()
    start: int = 0  # character offsets of the call (arguments and script blocks included) in the script
    end: int = 0

    def encloses(self, other: Command) -> bool:
        return self.start <= other.start and other.end <= self.end and self is not other


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def commands(script: str) -> list[Command]:
    """Every command call in ``script``, in source order, nested ones (in script blocks) included."""
    found: list[Command] = []

    def walk(node: Node) -> None:
        if node.type == "command":
            name_node = next((c for c in node.children if c.type in ("command_name", "command_name_expr")), None)
            elements = next((c for c in node.children if c.type == "command_elements"), None)
            named: dict[str, str] = {}
            positional: list[str] = []
            parameter: str | None = None
            for child in elements.children if elements is not None else []:
                if child.type == "command_argument_sep":
                    continue
                text = (child.text or b"").decode("utf-8")
                if child.type == "command_parameter":
                    if parameter is not None:
                        named[parameter] = ""
                    parameter = text.lstrip("-").rstrip(":")
                elif parameter is not None:
                    named[parameter], parameter = _unquote(text), None
                else:
                    positional.append(_unquote(text))
            if parameter is not None:
                named[parameter] = ""
            if name_node is not None and name_node.text:
                data = script.encode("utf-8")
                found.append(Command(name_node.text.decode("utf-8"), named, tuple(positional),
                                     len(data[:node.start_byte].decode("utf-8")),
                                     len(data[:node.end_byte].decode("utf-8"))))
        for child in node.children:
            walk(child)

    walk(parse(script).root_node)
    return found


def foreach_loops(script: str) -> list[tuple[int, str]]:
    """(character offset, source text) of every ``foreach`` statement."""
    found: list[tuple[int, str]] = []
    data = script.encode("utf-8")

    def walk(node: Node) -> None:
        if node.type == "foreach_statement":
            found.append((len(data[:node.start_byte].decode("utf-8")), (node.text or b"").decode("utf-8")))
        for child in node.children:
            walk(child)

    walk(parse(script).root_node)
    return found
