"""The one safe YAML reader for the files users hand us (pretraining configs, sensor files).

:func:`load_yaml` parses with a :class:`yaml.SafeLoader` subclass (plain YAML types only) and
refuses, each with one line naming the file, before anything large is built:

- a file above :data:`MAX_BYTES` (checked before reading), a FIFO, a device or a folder;
- more than :data:`MAX_ALIASES` aliases (``*name``), a recursive alias, or aliases that expand
  the document to more than :data:`MAX_NODES` values (a "billion laughs" file fails in
  milliseconds instead of expanding);
- a key given twice in one mapping (naming the key and both lines): YAML would silently keep
  the last one;
- syntax errors and nesting too deep to read (naming the line where known).
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from smartiesviz.errors import UserError
from smartiesviz.outputs import check_input_file

#: Largest YAML input read, in bytes (1 MiB: configs and sensor files are a few KiB).
MAX_BYTES = 1 << 20
#: Most aliases (``*name``) in one document.
MAX_ALIASES = 50
#: Most values (nodes) a document may hold once its aliases are expanded.
MAX_NODES = 100_000

_MERGE = "tag:yaml.org,2002:merge"


class SafeLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` that refuses alias bombs, recursive aliases and duplicate keys.

    ``where`` names the input in messages (``"config file 'run.yaml'"``).
    """

    def __init__(self, stream: Any, where: str = "YAML input") -> None:
        super().__init__(stream)
        self.where = where
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                line = self.peek_event().start_mark.line + 1
                raise UserError(
                    f"{self.where}, line {line}: more than {MAX_ALIASES} aliases (*name); "
                    "refused (an alias bomb?): write the values out"
                )
        return super().compose_node(parent, index)

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node, self.where)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise UserError(
                        f"{self.where}: key {key!r} is given twice (lines {seen[key]} and {line}); "
                        "keep one"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep)


def _check_expansion(root: Any, where: str) -> None:
    """Refuse a node graph whose aliases expand to more than MAX_NODES nodes, or that loops."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise UserError(
                f"{where}, line {node.start_mark.line + 1}: recursive alias (an anchor used "
                "inside itself); refused"
            )
        active.add(key)
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = ()
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                raise UserError(
                    f"{where}: its aliases (*name) expand it to more than {MAX_NODES} values; "
                    "refused (an alias bomb?)"
                )
        active.discard(key)
        sizes[key] = total
        return total

    size(root)


def _too_big(where: str, size: int) -> UserError:
    return UserError(
        f"{where} is {size} bytes, more than the {MAX_BYTES} bytes (1 MiB) a YAML file may hold; "
        "is it the right file?"
    )


def load_yaml(source: str | bytes | os.PathLike, what: str = "YAML file") -> Any:
    """Parse one YAML document safely (see the module docstring for what is refused).

    Args:
        source: a path (any ``os.PathLike``, e.g. :class:`pathlib.Path`: the file is read) or the
            YAML text itself (``str`` or ``bytes``).
        what: how messages name the input (``"config file"``, ``"sensors file"``); a file's path
            is appended.

    Returns:
        The document as plain Python values (None for an empty document).

    Raises:
        UserError: the input is refused or is not valid YAML; one line naming it.
    """
    if isinstance(source, os.PathLike):
        path = check_input_file(source, what)
        where = f"{what} {str(path)!r}"
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _too_big(where, size)
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    else:
        where = what
        data = source.encode() if isinstance(source, str) else bytes(source)
    if len(data) > MAX_BYTES:
        raise _too_big(where, len(data))
    loader = SafeLoader(data, where)
    try:
        return loader.get_single_data()
    except yaml.constructor.ConstructorError as err:
        raise UserError(f"{where}{_line(err)}: unsupported YAML: {err.problem}") from None
    except yaml.MarkedYAMLError as err:
        problem = err.problem or str(err).splitlines()[0]
        raise UserError(f"{where}{_line(err)}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{where}: not readable as YAML: {str(err).splitlines()[0]}") from None
    except RecursionError:
        raise UserError(f"{where} is nested too deeply to read") from None
    finally:
        loader.dispose()


def _line(err: yaml.MarkedYAMLError) -> str:
    mark = err.problem_mark or err.context_mark
    return f", line {mark.line + 1}" if mark is not None else ""
