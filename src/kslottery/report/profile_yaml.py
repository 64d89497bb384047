"""A profile file read as data and nothing else.

Every value of a profile is written by papermill into the notebook's parameters cell as Python source, and
papermill quotes only what it knows (str, int, float, bool, None, list, dict): anything else is written as
``"<str(value)>"`` unescaped, so a YAML ``!!binary`` element became ``b'...'`` text that closed the quote and
ran code in the kernel. So the loader builds only those types (every other tag is refused by name), refuses
aliases (a 426-byte file of nested aliases expands into a 12 MB cell), and :func:`check_data` walks the
result all the way down (floats must be finite: papermill writes ``nan`` and ``inf`` as undefined names).
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from ..method.errors import KSLError

PLAIN = "strings, numbers, booleans, null, lists and mappings"
# The tags a plain scalar, list or mapping resolves to; every other tag (explicit or implicit) is refused.
_ALLOWED = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}


class _Refused(Exception):
    def __init__(self, problem: str, fix: str, mark=None):
        super().__init__(problem)
        self.problem, self.fix, self.mark = problem, fix, mark


def _short(tag: str | None) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag and tag.startswith("tag:yaml.org,2002:") else str(tag)


class _DataLoader(yaml.SafeLoader):
    """safe_load's loader, less everything that is not plain data."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(f"uses the YAML alias *{event.anchor}, which profiles do not accept (aliases can expand a "
                           "small file into an enormous parameters cell)", f"write the value out instead of *{event.anchor}",
                           event.start_mark)
        return super().compose_node(parent, index)

    def construct_object(self, node, deep=False):
        if node.tag not in _ALLOWED:
            tag = _short(node.tag)
            raise _Refused(f"has the YAML tag {tag}, which profiles refuse (a profile is data: {PLAIN}; a tagged value "
                           "can reach the notebook's code as something other than data)",
                           f"remove {tag} and write the value as a plain string, number or list", node.start_mark)
        return super().construct_object(node, deep)

    def flatten_mapping(self, node):   # "<<" merge keys merge what an alias names: refused like the alias
        if any(k.tag == "tag:yaml.org,2002:merge" for k, _ in node.value):
            raise _Refused("uses a YAML merge key (<<), which profiles do not accept", "write the keys out",
                           node.start_mark)
        super().flatten_mapping(node)


def load_yaml(path: Path):
    """The file's YAML as plain data, or one KSLError naming the line and what was refused."""
    try:
        return yaml.load(path.read_text(), Loader=_DataLoader)   # noqa: S506 - _DataLoader is SafeLoader, narrowed
    except _Refused as e:
        where = f" line {e.mark.line + 1}" if e.mark is not None else ""
        raise KSLError(f"profile {path}{where} {e.problem}", e.fix) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise KSLError(f"profile {path} is not valid YAML{where}", "fix the YAML syntax") from None


def check_data(value, path: Path, where: str = ""):
    """``value``, once every element down to the leaves is one papermill writes as a literal."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise KSLError(f"profile {path}: key {key!r} under {where or 'the top level'} is not a string",
                               "write every key as a name")
            check_data(item, path, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_data(item, path, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise KSLError(f"profile {path}: {where} is {value}, not a finite number", f"give {where} a finite number")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise KSLError(f"profile {path}: {where} is a {type(value).__name__}, not plain data ({PLAIN})",
                       f"write {where} as a plain string, number or list")
    return value
