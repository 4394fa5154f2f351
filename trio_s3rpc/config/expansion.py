"""``${VAR}`` expansion as RoadRunner does it, over a YAML subtree."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from trio_s3rpc.config.scalars import _Context

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expand_vars(text: str, env: Mapping[str, str], unset: list[str] | None = None) -> str:
    """Expand ``${NAME}`` and ``${NAME:-default}`` as RoadRunner does.

    An unset name expands to "" (and is appended to ``unset``); the default is
    used when the variable is unset or empty, and may itself hold references.
    Any other ``$`` is kept as is: RoadRunner also expands a bare ``$NAME``,
    but that would silently cut a literal password such as ``pa$word``.
    """
    out: list[str] = []
    position = 0
    while (dollar := text.find("$", position)) >= 0:
        out.append(text[position:dollar])
        value, position = _expand_reference(text, dollar, env, unset)
        out.append(value)
    out.append(text[position:])
    return "".join(out)


def _expand_reference(
    text: str, dollar: int, env: Mapping[str, str], unset: list[str] | None
) -> tuple[str, int]:
    """The expansion of the reference at ``dollar`` and the index after it."""
    name = _NAME.match(text, dollar + 2) if text.startswith("{", dollar + 1) else None
    if name is None:
        return "$", dollar + 1
    after = name.end()
    if text.startswith("}", after):
        return _lookup(name.group(), env, unset), after + 1
    if text.startswith(":-", after):
        close = _closing_brace(text, after + 2)
        if close is not None:
            value = env.get(name.group(), "")
            if not value:
                value = expand_vars(text[after + 2 : close], env, unset)
            return value, close + 1
    return "$", dollar + 1


def _lookup(name: str, env: Mapping[str, str], unset: list[str] | None) -> str:
    if name not in env and unset is not None:
        unset.append(name)
    return env.get(name, "")


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the ``}`` closing a default that begins at ``start``; nested ``${`` count."""
    depth = 0
    index = start
    while index < len(text):
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return None


def _expand_tree(value: Any, path: str, context: _Context) -> Any:
    """A copy of a YAML subtree with every string expanded; notes unset variables by path."""
    if isinstance(value, str):
        unset: list[str] = []
        expanded = expand_vars(value, context.env, unset)
        if unset:
            context.unset[path] = unset
            names = ", ".join(f"${{{name}}}" for name in unset)
            context.warnings.append(f"{path}: {names} not set; expanded to an empty string")
        return expanded
    if isinstance(value, Mapping):
        return {key: _expand_tree(item, f"{path}.{key}", context) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_tree(item, f"{path}[{index}]", context) for index, item in enumerate(value)]
    return value
