"""YAML files users write (pipelines, catalogs), read and validated with errors that name the file, the line
and the field, instead of a parser's or pydantic's report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from edgekit.errors import UsageError, validation_message

M = TypeVar("M", bound=BaseModel)
MOST = 4  # problems named per file: enough to fix several at once, short enough to read


def read_yaml(path: Path, what: str) -> tuple[Any, Any]:
    """(data, node tree) of the YAML file at `path`; `what` names it in errors (a pipeline, a catalog file)."""
    try:
        loader = yaml.SafeLoader(path.read_text())
        try:  # one parse: the node tree (for line numbers) and the data built from it
            root = loader.get_single_node()
            return (loader.construct_document(root) if root is not None else None), root
        finally:
            loader.dispose()
    except OSError as e:
        raise UsageError(f"Cannot read {what} {path}: {e.strerror}.") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{what.capitalize()} {path} is not UTF-8 text: {e}.") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{what.capitalize()} {path} is not valid YAML: {e}") from None


def validate(model: type[M], data: Any, path: Path, root: Any, hint: str | None = None) -> M:
    """`data` as `model`; the first problem is an error naming the field and its line in `path`."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = []
        # unknown keys first: a misspelt key is also the cause of the "Field required" that follows it
        errors = sorted(e.errors(), key=lambda error: error["type"] != "extra_forbidden")
        for error in errors[:MOST]:
            loc = [str(part) for part in error["loc"]]
            where = f"{'.'.join(loc)}: " if loc else ""
            problems.append(f"line {line_of(root, loc)}: {where}{validation_message(error)}")
        more = f" (and {e.error_count() - MOST} more)" if e.error_count() > MOST else ""
        raise UsageError(f"{path}, {'; '.join(problems)}{more}.", hint=hint) from None


def node_at(node: Any, loc: list[str]) -> Any:
    """The YAML node at `loc` under `node` (the deepest one of the path that exists)."""
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:
                child = next((k for k, _ in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            child = node.value[int(part)]
        if child is None:
            break
        node = child
    return node


def line_of(node: Any, loc: list[str]) -> int:
    """The 1-based line of the YAML node at `loc` (the deepest one that exists)."""
    found = node_at(node, loc)
    return found.start_mark.line + 1 if found is not None else 1
