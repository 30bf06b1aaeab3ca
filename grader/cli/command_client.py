"""Hand a read command to this user's warm command server (grader/cli/command_server.py) and relay its exit code.

Standard library only, and little of it: this module is what a `grader status` pays for before its answer
when a server is warm. The server is found by a socket path that names everything its preloaded state depends
on (the interpreter, grader's files, the installed packages, the variables read at import), so a server never
answers for code or settings it did not load. Any doubt (no safe folder, no server, a refused socket, a slow
answer) means None: the caller runs the command in its own process, and nothing runs twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import struct
import sys

TYPE_CHECKING = False  # not typing's: importing typing would cost a served command about 6 ms
if TYPE_CHECKING:
    from typing import Any

# Variables read while the server imports its libraries (interpreter, locale, Typer, pydantic): part of its key.
IMPORT_TIME_PREFIXES = ("PYTHON", "LANG", "LC_", "TYPER_", "_TYPER_", "PYDANTIC_")
STARTED_TIMEOUT_S = 5.0  # a warm server forks within milliseconds; a stuck one is bypassed, not waited on
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HEADER = struct.Struct("!I")
MAX_SOCKET_PATH = 108  # sun_path, with its terminating NUL


def runtime_dir() -> str | None:
    """The user's private folder for the socket, or None when it is not safely private."""
    base = os.path.abspath(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")
    path = os.path.join(base, f"grader-{os.getuid()}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return path


PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def server_key(package: str = PACKAGE) -> str:
    """A digest of what the server's preloaded modules depend on; a change to any of it means another server."""
    import hashlib

    parts = [sys.prefix, sys.version, package, repr(sys.flags)]  # sys.prefix: the same venv by any of its names
    # sys.path[0] is the script's folder or the working one (the server runs with -P, without it); pip
    # install/uninstall changes a site-packages folder's mtime.
    for folder in sys.path if sys.flags.safe_path else sys.path[1:]:
        try:
            parts.append(f"{folder}:{os.stat(folder).st_mtime_ns}")
        except OSError:
            parts.append(folder)
    newest, count = 0, 0
    stack = [package]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append(entry.path)
                elif entry.name.endswith(".py"):
                    count += 1
                    newest = max(newest, entry.stat().st_mtime_ns)
    parts.append(f"{count}:{newest}")
    # grader.cli.app.main and the server both default PYDANTIC_DISABLE_PLUGINS to __all__: unset is the same
    # (and a command running in its own process, `grader doctor`, has set it by the time it asks).
    parts += sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith(IMPORT_TIME_PREFIXES)
                    and (k, v) != ("PYDANTIC_DISABLE_PLUGINS", "__all__"))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def socket_path() -> str | None:
    """None where the runtime folder is not private, or so deep that a socket's name would not fit (108 bytes)."""
    folder = runtime_dir()
    path = None if folder is None else os.path.join(folder, f"cmd-{server_key()}.sock")
    return None if path is None or len(os.fsencode(path)) >= MAX_SOCKET_PATH else path


def describe() -> str:
    """One line for `grader doctor`: where this user's server listens, or why none is used."""
    folder = runtime_dir()
    if folder is None:
        return "not used: the runtime folder ($XDG_RUNTIME_DIR or /tmp)/grader-UID is not private to this user"
    path = socket_path()
    if path is None:
        return "not used: the runtime folder's path is too long for a socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return f"not running (the next read command starts one at {path})"
    return f"listening at {path} (GRADER_COMMAND_SERVER=0 turns it off)"


def stop_servers(base: str) -> int:
    """Stop this user's command servers under the runtime folder `base` (their lock files name them): the
    test suite and the benchmarks start their own and stop them when done. How many were asked to stop."""
    folder = os.path.join(base, f"grader-{os.getuid()}")
    stopped = 0
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        if name.startswith("cmd-") and name.endswith(".lock"):
            try:
                with open(os.path.join(folder, name)) as fh:
                    os.kill(int(fh.read().split()[0]), signal.SIGTERM)
                stopped += 1
            except (OSError, ValueError, IndexError):
                pass  # gone already, or a lock file still being written
    return stopped


def start_server(path: str) -> None:
    """Start a server for the next command, detached (its own session, no terminal); what it prints if it
    fails goes to the log file beside its socket."""
    import subprocess

    from grader.entrypoints import command_server_argv

    try:
        with open(path.removesuffix(".sock") + ".log", "ab") as log:
            subprocess.Popen(command_server_argv(path),
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
    except OSError:
        pass  # no server: every command simply runs in its own process


def _request(argv: list[str]) -> bytes:
    import json

    umask = os.umask(0o022)
    os.umask(umask)
    return json.dumps({"argv0": sys.argv[0], "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                       "umask": umask}).encode()


def _read_line(sock: socket.socket, buffer: bytearray) -> str | None:
    while b"\n" not in buffer:
        chunk = sock.recv(256)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


def run(argv: list[str]) -> int | None:
    """The exit code of `grader ARGV` as run by the warm server, or None when the caller must run it itself
    (and a server is then started for the next command, if none is listening)."""
    path = socket_path()
    if path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(STARTED_TIMEOUT_S)
    try:
        try:
            sock.connect(path)
        except OSError:
            start_server(path)
            return None
        try:
            body = _request(argv)
            socket.send_fds(sock, [HEADER.pack(len(body))], [0, 1, 2])
            sock.sendall(body)
            buffer = bytearray()
            started = _read_line(sock, buffer)
            if started is None or not started.startswith("pid "):
                return None  # refused or gone before forking: nothing ran
            pid = int(started.removeprefix("pid "))
        except OSError:
            return None
        previous = _forward_signals_to(pid)  # before the go: from here on, Ctrl-C is the command's
        try:
            sock.sendall(b"go\n")  # only now does the command start: a timeout above leaves nothing running
        except OSError:
            for signum, handler in previous.items():  # nothing started: this process runs the command
                signal.signal(signum, handler)
            return None
        sock.settimeout(None)
        try:
            line = _read_line(sock, buffer)  # a forwarded signal does not interrupt the wait (PEP 475)
        except OSError:
            line = None
    finally:
        sock.close()
    if line is None or not line.startswith("exit "):
        print("grader: the command ended without an exit status", file=sys.stderr)
        return 1
    return int(line.removeprefix("exit "))


def _forward_signals_to(pid: int) -> dict[int, Any]:
    """Pass on the signals a terminal sends to this process only (the command runs in the server's session);
    the handlers they had."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    return {signum: signal.signal(signum, forward) for signum in FORWARDED}
