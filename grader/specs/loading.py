"""Load TOML files into pydantic models; every failure names the file and the field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from grader.errors import SpecError

M = TypeVar("M", bound=BaseModel)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(path: Path | str, err: ValidationError) -> str:
    lines = [f"{path}: {_location(e['loc'])}: {e['msg']}" for e in err.errors()]
    return "\n".join(lines)


def load_toml(path: Path, model: type[M], **extra: object) -> M:
    """Parse `path` and validate it as `model`.

    Raises:
        SpecError: the file is missing, is not valid TOML, or does not match the model; the
            message lists each offending field as `file: field.path: reason`.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    try:
        return model.model_validate({**raw, **extra})
    except ValidationError as exc:
        raise SpecError(format_validation_error(path, exc)) from None
