"""The sandbox's pure builders: the job command per namespace mode (golden files) and the scrubbed env.

Run-dir and inputs paths are hostile (spaces, quotes, `;`, `$()`, a newline, non-ASCII): the
command is an argv list, so each path must survive as one intact element. Machine-specific parts
(the interpreter's prefixes, which of /lib64, /etc/ssl... exist) are normalised before comparing;
`pytest tests/test_sandbox.py --update-goldens` rewrites the golden files.
A second group really executes each available command on a hostile run dir (no TensorFlow: the
job stops at the missing job.json and still writes a result.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.outcomes import ErrorKind, Outcome
from grader.results import JobResult
from grader.rundir import RunDir
from grader.sandbox import ENV_KEEP, build_command, build_env, detect_isolation

# Never touched on disk: RunDir resolves paths, so they must not pass through symlinks.
ROOT = Path("/grader-golden")
HOSTILE = 'it\'s "a" run; $(rm -rf ~) `id` 100% ünïcødé\nnewline'
PATHS = {
    "plain": (ROOT / "home/runs/r-0001", ROOT / "home/inputs/mnist/smoke/0123456789abcdef"),
    "hostile": (ROOT / "home with space" / "runs" / HOSTILE, ROOT / "home with space/inputs/it's; here\n"),
}
PYTHON = "/opt/grader venv/bin/python3"
PACKAGE = Path("/opt/grader venv/lib/python3.11/site-packages/grader")
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/ld.so.conf",
          "/etc/ld.so.conf.d", "/etc/localtime", "/etc/ssl", "/etc/alternatives", "/etc/nsswitch.conf")


def python_roots() -> set[str]:
    """What the job's interpreter needs: this interpreter's prefixes and the given python's prefix."""
    return {r for r in (sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(PYTHON).parent.parent)) if r != "/"}


def normalise(cmd: list[str]) -> list[str]:
    """Replace what depends on this machine with stable placeholders, keep the structure."""
    out: list[str] = []
    i = 0
    while i < len(cmd):
        arg = cmd[i]
        if arg in ("--ro-bind", "--symlink") and i + 2 < len(cmd) and cmd[i + 2] in SYSTEM:
            token, i = "<system dirs>", i + 3
        elif arg == "--ro-bind" and cmd[i + 1] == cmd[i + 2] and cmd[i + 1] in python_roots():
            token, i = "<python roots>", i + 3
        else:
            out.append(arg)
            i += 1
            continue
        if out[-1] != token:
            out.append(token)
    return out


def command(mode: str, case: str) -> list[str]:
    run, inputs = PATHS[case]
    return build_command(RunDir(run), inputs, mode, python=PYTHON, package_dir=PACKAGE)


@pytest.mark.parametrize("case", sorted(PATHS))
@pytest.mark.parametrize("mode", ["none", "unshare", "bwrap"])
def test_build_command_golden(golden, mode: str, case: str) -> None:
    cmd = command(mode, case)
    golden(f"sandbox/{mode}.{case}.json", json.dumps(normalise(cmd), indent=1, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("case", sorted(PATHS))
@pytest.mark.parametrize("mode", ["none", "unshare", "bwrap"])
def test_hostile_paths_stay_single_arguments(mode: str, case: str) -> None:
    run, inputs = PATHS[case]
    cmd = command(mode, case)
    assert cmd[-4:] == [PYTHON, "-m", "grader.job", str(run)], "the job is always `python -m grader.job RUN_DIR`"
    assert all(isinstance(a, str) for a in cmd)
    if mode == "bwrap":
        assert cmd.count(str(run)) == 3  # --ro-bind SRC DEST, and the job's argument
        assert cmd.count(str(inputs)) == 2
        assert ["--ro-bind", str(inputs), str(inputs)] == cmd[cmd.index(str(inputs)) - 1:cmd.index(str(inputs)) + 2]
        assert ["--ro-bind", str(run), str(run)] == cmd[cmd.index(str(run)) - 1:cmd.index(str(run)) + 2]
        scratch = str(run / "scratch")
        assert cmd[cmd.index("--chdir") + 1] == scratch
        assert cmd[cmd.index(scratch) - 1] == "--tmpfs"
        assert cmd[cmd.index("--setenv") + 1:cmd.index("--setenv") + 3] == ["HOME", scratch]


def test_bwrap_view_is_minimal() -> None:
    run, _ = PATHS["plain"]
    cmd = command("bwrap", "plain")
    for flag in ("--unshare-all", "--die-with-parent", "--new-session"):
        assert flag in cmd
    assert cmd[cmd.index("--cap-drop") + 1] == "ALL"
    job_at = cmd.index("--")
    assert cmd[job_at + 1:] == [PYTHON, "-m", "grader.job", str(run)]
    # the grader package read-only, but its bundled data (held-out labels of the samples!) hidden
    assert cmd[cmd.index(str(PACKAGE)) - 1] == "--ro-bind"
    assert cmd[cmd.index(str(PACKAGE / "data")) - 1] == "--tmpfs"
    assert cmd.index(str(PACKAGE / "data")) > cmd.index(str(PACKAGE))  # the tmpfs is mounted over the bind
    # nothing of the host is writable: the run dir is read-only, the job writes to size-capped tmpfs only
    assert "--bind" not in cmd[:job_at]
    tmpfs = [cmd[i + 1] for i, a in enumerate(cmd[:job_at]) if a == "--tmpfs"]
    assert tmpfs == ["/tmp", str(PACKAGE / "data"), str(run / "scratch")]
    sizes = [int(cmd[i + 1]) for i, a in enumerate(cmd[:job_at]) if a == "--size"]
    assert sizes == [64 * 1024 * 1024, 512 * 1024 * 1024]  # /tmp and the scratch folder: disk quotas
    assert "/" not in [cmd[i + 2] for i, a in enumerate(cmd[:job_at]) if a in ("--ro-bind", "--bind")]
    assert "/home" not in cmd and "/root" not in cmd and "/proc" in cmd


def test_extra_hidden_paths_get_a_tmpfs() -> None:
    run, inputs = PATHS["plain"]
    secret = ROOT / "course; data"
    cmd = build_command(RunDir(run), inputs, "bwrap", python=PYTHON, package_dir=PACKAGE, hide=[secret])
    assert cmd[cmd.index(str(secret)) - 1] == "--tmpfs"


def _mounts(cmd: list[str]) -> dict[str, tuple[str, str]]:
    """Mount target -> (flag, source) for the two-argument bwrap mounts before `--`."""
    end = cmd.index("--")
    return {cmd[i + 2]: (a, cmd[i + 1]) for i, a in enumerate(cmd[:end]) if a in ("--ro-bind", "--bind", "--symlink")}


def test_system_dirs_are_bound_as_they_exist_here() -> None:
    mounts = _mounts(command("bwrap", "plain"))
    for path in SYSTEM:
        if os.path.islink(path) and path in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
            assert mounts[path] == ("--symlink", os.readlink(path))
        elif os.path.exists(path):
            assert mounts[path] == ("--ro-bind", path)
        else:
            assert path not in mounts


def test_python_roots_are_bound_read_only() -> None:
    mounts = _mounts(command("bwrap", "hostile"))
    for root in python_roots():
        assert mounts[root] == ("--ro-bind", root)


# --- build_env ------------------------------------------------------------------------------

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG", "AWS_SECRET": "s3cr3t", "GITHUB_TOKEN": "ghp_x",
    "GRADER_DATA_DIR": "/data/with/labels", "GRADER_DB_URL": "postgresql://u:p@db/grader", "GRADER_HOME": "/srv/g",
    "SSH_AUTH_SOCK": "/tmp/ssh-agent", "PYTHONPATH": "/evil", "LD_PRELOAD": "/evil.so", "HOME": "/root",
    "KERAS_HOME": "/root/.keras", "http_proxy": "http://proxy:3128", "PYTHONSTARTUP": "/evil.py",
}


def test_build_env_scrubs_secrets_and_moves_home() -> None:
    run = RunDir(PATHS["hostile"][0])
    base = {**SECRETS, "PATH": "/usr/local/bin:/usr/bin", "LANG": "C.UTF-8", "CUDA_VISIBLE_DEVICES": "0",
            "SLURM_JOB_ID": "42"}
    env = build_env(run, seed=7, base=base)
    for key in SECRETS:
        if key not in ("HOME", "KERAS_HOME"):
            assert key not in env, key
    assert not [v for v in env.values() if v in SECRETS.values()]
    assert env["HOME"] == str(run.scratch) == str(run.path / "scratch")
    assert env["TMPDIR"] == str(run.scratch)
    assert env["KERAS_HOME"] == str(run.scratch / ".keras")  # no host ~/.keras/datasets cache
    assert env["PYTHONHASHSEED"] == "7"
    assert env["PATH"] == "/usr/local/bin:/usr/bin"
    assert env["LANG"] == "C.UTF-8" and env["CUDA_VISIBLE_DEVICES"] == "0" and env["SLURM_JOB_ID"] == "42"
    assert set(env) - set(ENV_KEEP) == {
        "HOME", "TMPDIR", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "TF_CPP_MIN_LOG_LEVEL",
        "TF_DETERMINISTIC_OPS", "KERAS_HOME", "MPLBACKEND", "MPLCONFIGDIR", "CUDA_CACHE_PATH"}


def test_build_env_golden(golden) -> None:
    run = RunDir(PATHS["hostile"][0])
    env = build_env(run, seed=42, base={**SECRETS, "PATH": "/usr/bin:/bin", "TZ": "UTC"})
    golden("sandbox/env.json", json.dumps(env, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def test_build_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PATH")
    env = build_env(RunDir(PATHS["plain"][0]), seed=1)
    assert not (set(SECRETS) - {"HOME", "KERAS_HOME"}) & set(env)
    assert env["PATH"] == "/usr/bin:/bin"  # a default, never empty
    assert env["HOME"] == str(PATHS["plain"][0] / "scratch")


def test_isolation_can_be_switched_off() -> None:
    iso = detect_isolation("none")
    assert iso.namespaces == "none"
    assert iso.namespaces_detail.startswith("namespace isolation disabled by configuration")


# --- the commands really run on a hostile path ------------------------------------------------

def _available(mode: str) -> str | None:
    if mode == "none":
        return None
    iso = detect_isolation(mode)
    return None if iso.namespaces == mode else f"{mode} namespaces unavailable here: {iso.namespaces_detail}"


@pytest.mark.parametrize("mode", ["none", "unshare", "bwrap"])
def test_command_runs_on_a_hostile_run_dir(tmp_path: Path, mode: str) -> None:
    reason = _available(mode)
    if reason:
        pytest.skip(reason)
    run = RunDir(tmp_path / "runs" / HOSTILE).create()
    run.scratch.mkdir()
    inputs = tmp_path / "inputs; 'ro'"
    inputs.mkdir()
    cmd = build_command(run, inputs, mode)
    proc = subprocess.run(cmd, cwd=run.scratch, env=build_env(run, seed=1), capture_output=True, text=True,
                          timeout=120)
    # no job.json, and no supervisor: the job reports that in output/result.json and stops
    assert proc.returncode == 1, proc.stderr
    if mode == "bwrap":  # the run dir is read-only inside: the result could not even be written
        assert "Read-only file system" in proc.stderr or not run.result_json.exists()
        return
    result = JobResult.model_validate_json(run.result_json.read_text())
    assert result.outcome is Outcome.FAILED
    assert result.error_kind is ErrorKind.INFRASTRUCTURE
    assert "cannot read job.json" in (result.message or "")
    assert [json.loads(line)["event"] for line in run.progress.read_text().splitlines()] == ["end"]
