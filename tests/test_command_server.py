"""The command server (issue 12): read commands answered by a warm, forked process print exactly what the same
command prints in its own process, with the caller's environment, folder and exit code; a caller that gives up
leaves nothing running; a server that does not match the caller's code or settings is never used; it stops
when idle. Real processes, a real socket and a real database (the CLI suite's graded one)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import GRADER, graded, run  # noqa: F401 - graded is a fixture

from grader.cli import command_client
from grader.cli.command_server import PRELOAD
from grader.cli.launch import served as goes_to_server

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the command server is Linux-only")

# Runs command_client.run as the `grader` script would (argv[0] the script), and says whether the server took it.
CLIENT = """
import sys
from grader.cli.command_client import run
sys.argv = sys.argv[1:]
code = run(sys.argv[1:])
print(f"\\nSERVED {code}", file=sys.stderr)
"""


def served(args: list[str], env: dict[str, str], cwd: Path | None = None, umask: int | None = None) \
        -> subprocess.CompletedProcess[str]:
    """`grader ARGS` through the server only (never in-process); fails the test if no server took it."""
    proc = subprocess.run([sys.executable, "-c", CLIENT, GRADER[-1], *args], env=env, capture_output=True, text=True, timeout=60,
                          cwd=cwd, preexec_fn=None if umask is None else (lambda: os.umask(umask) and None))
    head, _, tail = proc.stderr.rpartition("\nSERVED ")
    assert tail.strip() != "None", f"no server took `grader {' '.join(args)}`: {proc.stderr}"
    proc.returncode, proc.stderr = int(tail), head
    return proc


def socket_of(env: dict[str, str]) -> Path:
    out = subprocess.run([sys.executable, "-c", "from grader.cli.command_client import socket_path; "
                          "print(socket_path())"], env=env, capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def start(env: dict[str, str], timeout_s: float = 60) -> Path:
    """The first served command runs in its own process and starts the server; wait until it listens."""
    path = socket_of(env)
    if not path.exists():
        assert run(["--version"], env).returncode == 0
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"no command server listened on {path} within {timeout_s:.0f} s"
        time.sleep(0.1)
    return path


@pytest.fixture
def env(graded: dict[str, str]) -> Iterator[dict[str, str]]:  # noqa: F811
    """Each test its own runtime folder (so its own server), short enough for a socket's path."""
    runtime = tempfile.mkdtemp(prefix="grader-test-run-")
    yield {**graded, "XDG_RUNTIME_DIR": runtime}
    command_client.stop_servers(runtime)
    shutil.rmtree(runtime, ignore_errors=True)


def test_served_commands_print_and_exit_as_in_process(env: dict[str, str], tmp_path: Path) -> None:
    start(env)
    alone = {**env, "GRADER_COMMAND_SERVER": "0"}
    for args in (["status", "--all"], ["show", env["TEST_ALICE_ID"]], ["leaderboard", "-e", "mnist"],
                 ["history"], ["exercises", "list"], ["exercises", "show", "asl"], ["--help"], ["status", "--help"],
                 ["status", "--json"], ["show", "999999"], ["leaderboard", "-e", "nonesuch"], ["status", "--bogus"]):
        expected, got = run(args, alone), served(args, env)
        assert (got.returncode, got.stdout, got.stderr) == (expected.returncode, expected.stdout, expected.stderr), args
    assert served(["show", "999999"], env).returncode == 7  # not found, as documented in docs/cli.md


@pytest.mark.parametrize("server", ["1", "0"])
def test_a_closed_pipe_ends_a_read_command_quietly_with_0(env: dict[str, str], server: str) -> None:
    """`grader leaderboard | head`: the reader is gone before the table is written; served or in-process."""
    if server == "1":
        start(env)
    proc = subprocess.Popen([*GRADER, "leaderboard", "-e", "mnist"], env={**env, "GRADER_COMMAND_SERVER": server},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the process has imported enough to print
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""


def test_each_command_gets_the_callers_environment_folder_and_umask(env: dict[str, str], tmp_path: Path) -> None:
    start(env)
    wide, narrow = served(["status", "--all"], {**env, "COLUMNS": "200"}), served(["status", "--all"], env)
    assert max(map(len, narrow.stdout.splitlines())) <= 80 < max(map(len, wide.stdout.splitlines()))
    empty = served(["status"], {**env, "GRADER_HOME": str(tmp_path / "other-home")})
    assert empty.returncode == 0 and "no submissions yet" in empty.stdout
    as_bob = served(["history", "--json"], {**env, "LOGNAME": "bob", "USER": "bob", "GRADER_INSTRUCTORS": "prof"})
    assert {row["participant"] for row in json.loads(as_bob.stdout)} == {"bob"}, as_bob.stdout
    here = tmp_path / "here"
    here.mkdir()
    assert served(["leaderboard", "-e", "mnist", "--html", "board.html"], env, cwd=here, umask=0o077).returncode == 0
    page = here / "board.html"
    assert page.exists() and (page.stat().st_mode & 0o777) == 0o600


def test_a_caller_that_gives_up_before_the_start_leaves_nothing_running(env: dict[str, str], tmp_path: Path) -> None:
    path = start(env)
    out = tmp_path / "never.html"
    body = json.dumps({"argv0": "grader", "argv": ["leaderboard", "-e", "mnist", "--html", str(out)],
                       "cwd": str(tmp_path), "env": env, "umask": 0o022}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        socket.send_fds(sock, [command_client.HEADER.pack(len(body))], [0, 1, 2])
        sock.sendall(body)
        assert sock.recv(64).startswith(b"pid ")  # forked, waiting for the go it will not get
    time.sleep(2)
    assert not out.exists()
    assert served(["status"], env).returncode == 0  # and the server still answers


def test_a_server_for_other_code_or_settings_is_never_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    module = package / "sub" / "m.py"
    module.write_text("x = 1\n")
    key = command_client.server_key(str(package))
    assert command_client.server_key(str(package)) == key
    os.utime(module, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert command_client.server_key(str(package)) != key  # an edited or upgraded grader
    changed = command_client.server_key(str(package))
    monkeypatch.setenv("GRADER_HOME", "/elsewhere")  # read by each command, not by the server
    monkeypatch.setenv("COLUMNS", "33")
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "__all__")  # what grader.cli.app.main sets when unset
    assert command_client.server_key(str(package)) == changed
    monkeypatch.setenv("LANG", "C")  # read when the server started
    monkeypatch.setenv("PYTHONIOENCODING", "latin-1")
    assert command_client.server_key(str(package)) != changed


def test_no_server_where_the_runtime_folder_is_not_private(env: dict[str, str]) -> None:
    shared = Path(env["XDG_RUNTIME_DIR"]) / "shared"
    (shared / f"grader-{os.getuid()}").mkdir(parents=True, mode=0o755)
    (shared / f"grader-{os.getuid()}").chmod(0o755)
    open_env = {**env, "XDG_RUNTIME_DIR": str(shared)}
    assert run(["status", "--all"], open_env).returncode == 0  # the command runs in its own process
    time.sleep(1)
    assert list((shared / f"grader-{os.getuid()}").iterdir()) == []  # and no server was started there


def test_the_server_stops_when_idle_and_takes_its_socket_along(env: dict[str, str]) -> None:
    path = start({**env, "GRADER_COMMAND_SERVER_IDLE": "2"})
    deadline = time.monotonic() + 30
    while path.exists():
        assert time.monotonic() < deadline, "the idle server did not stop"
        time.sleep(0.2)


def test_preloading_builds_no_console_and_loads_no_heavy_library() -> None:
    """Consoles read COLUMNS, NO_COLOR and the terminal when built, typer.rich_utils FORCE_COLOR and
    TERMINAL_WIDTH when imported: preloaded, they would be the server's."""
    code = ("import sys; from grader.cli.command_server import preload; preload(); "
            "print(sorted(m for m in ('grader.cli.render', 'grader.cli.feedback', 'typer.rich_utils', 'sqlalchemy', "
            "'numpy', 'tensorflow', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    assert "grader.cli.app" in PRELOAD


def test_the_caller_passes_on_ctrl_c_to_the_command() -> None:
    """The caller forwards the signals a terminal sends to its process group to the served command."""
    code = """
import os, signal, socket, subprocess, threading, time
from grader.cli.command_client import _forward_signals_to, _read_line
ours, theirs = socket.socketpair()
child = subprocess.Popen(["sleep", "60"])
_forward_signals_to(child.pid)
def later():
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)
    child.wait(timeout=10)
    theirs.sendall(f"exit {130 if child.returncode == -signal.SIGINT else 99}\\n".encode())
threading.Thread(target=later).start()
print(_read_line(ours, bytearray()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "exit 130", out.stdout + out.stderr


def test_only_read_commands_go_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for argv in (["status"], ["--home", "/h", "show", "3"], ["leaderboard", "-e", "mnist"], ["exercises", "list"],
                 ["history"], [], ["--help"], ["--version"]):
        assert goes_to_server(argv), argv
    for argv in (["submit", "m.py", "-e", "mnist"], ["run", "m.py"], ["cancel", "3"], ["login"], ["serve"],
                 ["--install-completion"], ["--home", "/h"], ["wait", "3"]):
        assert not goes_to_server(argv), argv
    monkeypatch.setenv("GRADER_COMMAND_SERVER", "off")
    assert not goes_to_server(["status"])
    monkeypatch.setenv("GRADER_COMMAND_SERVER", "1")
    monkeypatch.setenv("_GRADER_COMPLETE", "complete_bash")
    assert not goes_to_server(["status"])


def test_stopping_a_server_removes_its_socket(env: dict[str, str]) -> None:
    path = start(env)
    assert command_client.stop_servers(env["XDG_RUNTIME_DIR"]) == 1
    deadline = time.monotonic() + 15
    while path.exists():
        assert time.monotonic() < deadline, "SIGTERM did not stop the server"
        time.sleep(0.1)


def test_a_new_server_clears_away_dead_servers_files_only(env: dict[str, str]) -> None:
    import fcntl

    folder = Path(env["XDG_RUNTIME_DIR"]) / f"grader-{os.getuid()}"
    folder.mkdir(mode=0o700)
    dead = [folder / f"cmd-0000dead.{suffix}" for suffix in ("lock", "sock", "log")]
    alive = [folder / f"cmd-0000a11e.{suffix}" for suffix in ("lock", "sock")]
    for path in dead + alive:
        path.write_text("1\n")
    with open(alive[0], "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a server of another key, still running
        start(env)
        assert not any(path.exists() for path in dead)
        assert all(path.exists() for path in alive)


def test_doctor_says_whether_a_server_answers_and_how_to_turn_it_off(env: dict[str, str]) -> None:
    def line(run_env: dict[str, str]) -> str:
        proc = run(["doctor", "--json"], run_env)
        assert proc.returncode in (0, 1), proc.stderr  # 1: no filesystem view for jobs on this machine
        return str(json.loads(proc.stdout)["command_server"])

    assert line(env).startswith("not running")
    path = start(env)
    assert line(env) == f"listening at {path} (GRADER_COMMAND_SERVER=0 turns it off)"
    assert line({**env, "GRADER_COMMAND_SERVER": "0"}) == "off (GRADER_COMMAND_SERVER)"
