"""`grader login`'s credentials file: the server URL and a token, readable by its owner only (0600)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from grader.errors import GraderError


class Credentials(BaseModel):
    server: str
    token: str
    name: str | None = None


def credentials_path() -> Path:
    explicit = os.environ.get("GRADER_CREDENTIALS")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "grader" / "credentials.json"


def load_credentials() -> Credentials | None:
    path = credentials_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        return Credentials.model_validate_json(text)
    except ValueError:
        raise GraderError(f"{path}: not a grader credentials file", hint="run `grader login URL` again") from None


def save_credentials(creds: Credentials) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(creds.model_dump_json(indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def forget_credentials() -> bool:
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True
