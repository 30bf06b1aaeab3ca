"""Landlock: an unprivileged filesystem view (and TCP/signal fences) that a process sets on itself.

The job calls `confine(job_view(...))` as its first act, before it imports TensorFlow or the
submission, so everything the participant's code does runs inside the view: read-only access to
the system, the Python environment, the grader package without its bundled data, the prepared
inputs and its own run directory; write access to its scratch folder only. No path to the
database, the held-out labels, other run directories or the data folder exists in the view.

Landlock needs Linux 5.13+ and no privileges, so it works where bubblewrap's namespaces do not
(a container, a cluster node without user namespaces); inside bubblewrap it is a second layer.
Stdlib only: the job imports this module.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same numbers on x86_64 and arm64
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ = EXECUTE | READ_FILE | READ_DIR
READ_WRITE = (READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SYM | MAKE_FIFO | MAKE_SOCK
              | REFER | TRUNCATE)
DEVICE_RW = READ_FILE | WRITE_FILE | IOCTL_DEV

SYSTEM_READ = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/proc", "/sys", "/etc/ld.so.cache",
               "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/ssl", "/etc/alternatives",
               "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/os-release",
               "/etc/mime.types", "/etc/fonts")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


class LandlockUnavailable(OSError):
    """The kernel has no Landlock (older than 5.13, or it is not enabled)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """Landlock ABI of the running kernel; 0 when there is none."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    value = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return int(value) if value > 0 else 0


@dataclass
class View:
    """What a confined process may reach: paths with their rights, minus holes (bundled labels)."""

    read: list[Path] = field(default_factory=list)
    write: list[Path] = field(default_factory=list)
    devices: list[Path] = field(default_factory=list)
    holes: list[Path] = field(default_factory=list)
    deny_tcp: bool = True
    scope: bool = True


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def punch(roots: list[Path], holes: list[Path]) -> list[Path]:
    """Replace each root that contains a hole by its other children, level by level down to the hole.

    Landlock only grants, it cannot deny below a grant, so `/venv` minus `/venv/.../grader/data`
    becomes every sibling along the way: /venv/bin, /venv/lib/python3.11/site-packages/numpy, ...
    """
    out = [r for r in roots if not any(_within(r, h) for h in holes)]
    for hole in holes:
        expanded: list[Path] = []
        for root in out:
            if not (hole != root and root in hole.parents):
                expanded.append(root)
                continue
            current = root
            for part in hole.relative_to(root).parts:
                try:
                    children = sorted(current.iterdir())
                except OSError:
                    break
                expanded.extend(c for c in children if c.name != part)
                current = current / part
        out = expanded
    return out


def job_view(*, run_dir: Path, scratch: Path, inputs_dir: Path, package_dir: Path, python_roots: list[Path],
             private_tmp: bool) -> View:
    """The job's view: everything it legitimately needs and nothing else."""
    data_hole = package_dir / "data"
    read = [Path(p) for p in SYSTEM_READ] + [Path(r) for r in python_roots] + [package_dir, inputs_dir, run_dir]
    write = [scratch] + ([Path("/tmp"), Path("/dev/shm")] if private_tmp else [])
    devices = [Path(d) for d in DEVICES] + sorted(Path("/dev").glob("nvidia*")) + sorted(Path("/dev").glob("dri/*"))
    return View(read=read, write=write, devices=devices, holes=[data_hole])


def _handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: execute .. make_sym
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def confine(view: View) -> int:
    """Restrict this process (and every process it starts) to `view`; returns the ABI used.

    Raises:
        LandlockUnavailable: the kernel cannot do it (the caller decides whether to go on).
        OSError: a rule could not be added or enforced.
    """
    abi = abi_version()
    if abi < 1:
        raise LandlockUnavailable("this kernel has no Landlock (Linux 5.13+ with landlock enabled)")
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    handled = _handled_fs(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if (view.deny_tcp and abi >= 4) else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if (view.scope and abi >= 6) else 0
    attr = struct.pack("=QQQ", handled, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    buf = ctypes.create_string_buffer(attr[:size], size)
    ruleset = int(libc.syscall(_SYS_CREATE_RULESET, buf, ctypes.c_size_t(size), ctypes.c_uint32(0)))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        rules = [(p, READ) for p in punch([p for p in view.read if os.path.lexists(p)], view.holes)]
        rules += [(p, READ_WRITE) for p in view.write if os.path.lexists(p)]
        rules += [(p, DEVICE_RW) for p in view.devices if os.path.exists(p)]
        for path, rights in rules:
            _add_rule(libc, ruleset, path, rights & handled)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return abi


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: Path, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # vanished or unreadable: nothing to grant
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            rights &= FILE_RIGHTS
        attr = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd), 12)
        if libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), attr,
                        ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_add_rule({path}): {os.strerror(err)}")
    finally:
        os.close(fd)
