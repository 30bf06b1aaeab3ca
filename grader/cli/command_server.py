"""A per-user command server that keeps the CLI's libraries imported, so that read commands answer at once.

Importing Typer, pydantic and rich takes about 0.3 s on a slow machine, longer than a read command's whole
budget; the command itself takes milliseconds. As Mercurial's chg does, this process imports them once and
forks a child per command: the child takes over the caller's terminal descriptors, working folder, umask,
environment and arguments, runs `grader.cli.app.main` exactly as the caller would have, and reports the exit
code. Each command starts from the same clean, freshly imported state; the server itself never runs one.

Only modules whose import reads nothing from the environment, the working folder or the terminal are preloaded
(rich's consoles in grader.cli.render are built from COLUMNS and NO_COLOR, so that module is not); variables
read at import (locale, PYTHON*, TYPER_*, PYDANTIC_*) are part of the socket's name (command_client.server_key).
The socket lives in a folder only its user can enter, and the server also checks each caller's uid. It exits
after GRADER_COMMAND_SERVER_IDLE seconds (default 900) without a command.

    python -P -m grader.cli.command_server SOCKET_PATH    # started by command_client.start_server
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import io
import json
import os
import signal
import socket
import struct
import sys
import time
import types
from pathlib import Path
from typing import Any

from grader.cli.command_client import HEADER  # the request's length prefix, as the client writes it

DEFAULT_IDLE_S = 900.0
GO_TIMEOUT_S = 5.0
MAX_REQUEST = 4 * 1024 * 1024
# What the served read commands import before their first line of output (with what these import: Typer,
# pydantic, its schema machinery through the models these modules define, rich, sqlite3), except grader.cli.render
# and the modules that import it at their top (grader.cli.feedback): tests/test_command_server.py checks that.
PRELOAD = ("typer._adapters", "rich.console", "rich.table", "grader.cli.app", "grader.client.local",
           "grader.client.remote", "grader.service.submissions", "grader.service.board", "grader.service.detail",
           "grader.service.exercises", "grader.specs.catalog")


def idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get("GRADER_COMMAND_SERVER_IDLE", DEFAULT_IDLE_S)))
    except ValueError:
        return DEFAULT_IDLE_S


def preload() -> None:
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")  # as grader.cli.app.main sets it
    for name in PRELOAD:
        importlib.import_module(name)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
    if len(header) != HEADER.size or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError("not a command request")
    (size,) = HEADER.unpack(header)
    if size > MAX_REQUEST:
        raise ValueError("request too large")
    body = bytearray()
    while len(body) < size:
        chunk = conn.recv(min(65536, size - len(body)))
        if not chunk:
            raise ValueError("request cut short")
        body += chunk
    return json.loads(body), fds


_ORIGINAL_STREAMS: tuple[Any, ...] = (sys.__stdin__, sys.__stdout__, sys.__stderr__)


def _std_stream(fd: int, like: io.TextIOWrapper) -> io.TextIOWrapper:
    """A text stream over the caller's descriptor, buffered as Python buffers its own (line-wise on a terminal)."""
    raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
    buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
    return io.TextIOWrapper(buffered, encoding=like.encoding, errors=like.errors,
                            line_buffering=fd != 0 and (raw.isatty() or like.line_buffering),
                            write_through=like.write_through)


def _become_caller(request: dict[str, Any], fds: list[int]) -> None:
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.argv = [request["argv0"], *request["argv"]]
    script = types.ModuleType("__main__")  # as a console script's: click names the program from it
    script.__package__ = None
    sys.modules["__main__"] = script
    sys.stdin, sys.stdout, sys.stderr = (_std_stream(fd, like) for fd, like in enumerate(_ORIGINAL_STREAMS))
    # What Python's own start-up would have set (faulthandler and a few libraries use the originals).
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr  # type: ignore[misc]


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _child(server_files: tuple[Any, ...], conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """Run one command as the caller; never returns. `server_files` (the listener, the lock) are closed first,
    so that a child never keeps the server's socket or lock."""
    code = 1
    try:
        for held in server_files:
            held.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        conn.settimeout(GO_TIMEOUT_S)
        go = b""
        while len(go) < 3 and (chunk := conn.recv(3 - len(go))):
            go += chunk
        if go != b"go\n":
            os._exit(1)  # the caller gave up before the start: it runs the command itself
        conn.settimeout(None)
        _become_caller(request, fds)
        from grader.cli.app import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
    except BaseException:  # whatever happens, the caller gets a code and the child ends here
        import traceback

        traceback.print_exc()
    finally:
        import atexit

        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # what the interpreter's own exit would run; os._exit below does not
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {code}\n".encode())
        os._exit(code & 0xFF)


def _serve_one(server_files: tuple[Any, ...], conn: socket.socket) -> None:
    if _peer_uid(conn) != os.getuid():
        return
    conn.settimeout(GO_TIMEOUT_S)
    request, fds = _receive(conn)
    pid = os.fork()
    if pid == 0:
        _child(server_files, conn, request, fds)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"pid {pid}\n".encode())


def _remove_dead_servers(folder: Path, keep: str) -> None:
    """Remove the files of servers for other keys (older code or settings) that are no longer running: a lock
    nobody holds. A server that is still running keeps its lock, so its files stay."""
    for other in folder.glob("cmd-*.lock"):
        if other.stem == keep:
            continue
        with contextlib.suppress(OSError), open(other, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for suffix in (".sock", ".log", ".lock"):
                with contextlib.suppress(FileNotFoundError):
                    other.with_suffix(suffix).unlink()


def serve(path: Path) -> None:
    """Listen on `path` until idle; a second server for the same path finds the lock held and leaves."""
    lock = open(path.with_suffix(".lock"), "a+")  # noqa: SIM115 - held for the server's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another server holds it: its pid stays readable in the file
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    _remove_dead_servers(path.parent, keep=path.stem)
    preload()
    os.chdir("/")  # hold no caller's folder (each command changes to its own)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a server that was killed
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    listener.settimeout(idle_seconds())
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave through `finally`: the socket is removed
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                break
            with conn, contextlib.suppress(OSError, ValueError):
                _serve_one((listener, lock), conn)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        listener.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
