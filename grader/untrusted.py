"""The one safe way to read anything that came out of a run directory.

A job can write or replace files in places the coordinator later reads with its own rights.
Every read here:
  - opens relative to a directory descriptor, with O_NOFOLLOW on every component, so a
    symbolic link (to the database, /etc/shadow, the held-out labels) is refused, never followed;
  - opens with O_NONBLOCK and refuses anything that is not a regular file (FIFOs, devices,
    sockets), so a read never blocks;
  - caps the size before reading, and reads at most the cap;
  - parses with bounds: JSON with limited nesting, integer digits and no NaN; `.npy` headers
    checked for shape, dtype and byte count before an array is built.
Every failure is an `UntrustedFileError` naming the file and the reason, which the caller turns
into a stored outcome ("invalid result: ...") for that one submission.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.errors import ResultError

if TYPE_CHECKING:
    import numpy as np

MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 30
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UntrustedFileError(ResultError):
    """A file from a run directory cannot be read or parsed safely."""


def _parts(name: str) -> list[str]:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UntrustedFileError(f"{name!r} is not a plain relative file name")
    return parts


@contextlib.contextmanager
def _open(directory: Path, name: str) -> Iterator[tuple[int, os.stat_result]]:
    """A descriptor of a regular file `directory/name`, no link followed anywhere below `directory`."""
    parts = _parts(name)
    fds: list[int] = []
    try:
        try:
            fds.append(os.open(directory, _DIR_FLAGS))
            for part in parts[:-1]:
                fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
            fd = os.open(parts[-1], _OPEN_FLAGS, dir_fd=fds[-1])
        except FileNotFoundError:
            raise UntrustedFileError(f"{name} is missing") from None
        except OSError as exc:
            if exc.errno in (40, 20):  # ELOOP (a symlink under O_NOFOLLOW), ENOTDIR (a link where a folder was)
                raise UntrustedFileError(f"{name} is a symbolic link or a path through one; refused") from None
            raise UntrustedFileError(f"{name} cannot be opened: {exc.strerror}") from None
        fds.append(fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedFileError(f"{name} is not a regular file ({_kind(info.st_mode)}); refused")
        yield fd, info
    finally:
        for d in reversed(fds):
            with contextlib.suppress(OSError):
                os.close(d)


def _kind(mode: int) -> str:
    for test, label in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                        (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a link")):
        if test(mode):
            return label
    return "not a file"


def _read_upto(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def exists(directory: Path, name: str) -> bool:
    """Whether a regular file is there (a link or a FIFO counts as absent)."""
    try:
        with _open(directory, name):
            return True
    except UntrustedFileError:
        return False


def read_bytes(directory: Path, name: str, cap: int) -> bytes:
    """All of `directory/name`, refusing links, non-files and anything over `cap` bytes."""
    with _open(directory, name) as (fd, info):
        if info.st_size > cap:
            raise UntrustedFileError(f"{name} is {info.st_size:,} bytes, over its {cap:,}-byte limit")
        data = _read_upto(fd, cap)
    if len(data) > cap:
        raise UntrustedFileError(f"{name} grew past its {cap:,}-byte limit while being read")
    return data


def read_tail(directory: Path, name: str, max_bytes: int = 4000) -> str:
    """The last `max_bytes` of a log as text ('' when it is missing or unsafe): for failure messages."""
    try:
        with _open(directory, name) as (fd, info):
            os.lseek(fd, max(0, info.st_size - max_bytes), os.SEEK_SET)
            data = _read_upto(fd, max_bytes)[:max_bytes]
    except (UntrustedFileError, OSError):
        return ""
    return data.decode("utf-8", "replace")


def read_from(directory: Path, name: str, offset: int, cap: int) -> bytes:
    """Bytes appended to a growing file since `offset` (a progress stream), at most `cap`."""
    with _open(directory, name) as (fd, info):
        if info.st_size <= offset:
            return b""
        os.lseek(fd, offset, os.SEEK_SET)
        return _read_upto(fd, cap)[:cap]


# --- JSON -------------------------------------------------------------------------------------

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays/objects, strings ignored (counted without recursion)."""
    import numpy as np

    bare = np.frombuffer(_STRINGS.sub(b'""', data), dtype=np.uint8)
    if not len(bare):
        return 0
    step = (np.isin(bare, (ord("["), ord("{"))).astype(np.int64) - np.isin(bare, (ord("]"), ord("}"))))
    return int(np.cumsum(step).max(initial=0))


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer with {len(text)} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > 64:
        raise ValueError("a number written with more than 64 characters")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is not finite")
    return value


def _constant(text: str) -> Any:
    raise ValueError(f"{text} is not allowed")


def parse_json(data: bytes, name: str) -> Any:
    """JSON from an untrusted source: UTF-8, bounded nesting, bounded numbers, no NaN/Infinity."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedFileError(f"{name} is not UTF-8 (byte {exc.start})") from None
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise UntrustedFileError(f"{name} nests {depth} levels deep (limit {MAX_JSON_DEPTH})")
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except (ValueError, RecursionError) as exc:
        raise UntrustedFileError(f"{name} is not valid JSON: {str(exc)[:200]}") from None


def read_json(directory: Path, name: str, cap: int) -> Any:
    return parse_json(read_bytes(directory, name, cap), name)


# --- .npy / .npz -------------------------------------------------------------------------------

MAX_NPY_HEADER = 4096


def npy_header(data: bytes, name: str) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, data offset) of a .npy, checked before any array is built."""
    import numpy as np

    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf, max_header_size=MAX_NPY_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf, max_header_size=MAX_NPY_HEADER)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise UntrustedFileError(f"{name} is not a valid .npy array ({str(exc)[:200]})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise UntrustedFileError(f"{name} holds {dtype} values; only plain numbers are accepted")
    if fortran and len(shape) > 1:
        raise UntrustedFileError(f"{name} is in Fortran order; refused")
    if any(not isinstance(n, int) or n < 0 for n in shape) or len(shape) > 8:
        raise UntrustedFileError(f"{name} has an impossible shape {shape!r}")
    return tuple(shape), dtype, buf.tell()


def parse_npy(data: bytes, name: str, *, shape: tuple[int, ...], kinds: str) -> np.ndarray:
    """An array of exactly `shape` whose dtype kind is in `kinds` ('iu' integers, 'f' floats)."""
    import numpy as np

    got_shape, dtype, offset = npy_header(data, name)
    if got_shape != shape or dtype.kind not in kinds or dtype.itemsize > 8:
        raise UntrustedFileError(f"{name} has shape {got_shape} and dtype {dtype}; expected {shape} "
                                 f"{'integers' if kinds == 'iu' else 'numbers'}")
    count = math.prod(shape)
    if len(data) - offset != count * dtype.itemsize:
        raise UntrustedFileError(f"{name} holds {len(data) - offset:,} data bytes; its header promises "
                                 f"{count * dtype.itemsize:,}")
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)


def npz_sizes(data: bytes, name: str, max_members: int = 10_000) -> dict[str, int]:
    """Element count of every array in an uncompressed .npz, from headers only (no data is built)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UntrustedFileError(f"{name} is not a valid .npz archive ({exc})") from None
    if len(members) > max_members:
        raise UntrustedFileError(f"{name} holds {len(members)} arrays (limit {max_members})")
    sizes: dict[str, int] = {}
    with archive:
        for member in members:
            if member.compress_type != zipfile.ZIP_STORED or not member.filename.endswith(".npy"):
                raise UntrustedFileError(f"{name}: {member.filename[:80]!r} is not a stored .npy member")
            try:
                blob = archive.read(member)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise UntrustedFileError(f"{name}: {member.filename[:80]!r} is damaged ({exc})") from None
            shape, dtype, offset = npy_header(blob, f"{name}:{member.filename[:80]}")
            if dtype.kind not in "fiub" or len(blob) - offset != math.prod(shape) * dtype.itemsize:
                raise UntrustedFileError(f"{name}: {member.filename[:80]!r} does not hold the data its header "
                                         "promises")
            sizes[member.filename] = math.prod(shape)
    return sizes
