"""grader.untrusted: the one safe way to read a run directory (issue 8: hostile run directories).

Unit tests on crafted files: links to files and folders outside, FIFOs and devices (never block),
size caps checked before reading, JSON with huge numbers, deep nesting or NaN, .npy headers that
promise more than the file holds, object and float dtypes, and .npz archives that lie.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from grader.errors import ResultError
from grader.scoring import check_labels
from grader.specs.catalog import ExerciseCatalog
from grader.untrusted import (
    UntrustedFileError,
    exists,
    npz_sizes,
    parse_json,
    parse_npy,
    read_bytes,
    read_from,
    read_json,
    read_tail,
)

REPO = Path(__file__).resolve().parents[1]
MNIST = ExerciseCatalog(REPO).get("mnist")
ASL = ExerciseCatalog(REPO).get("asl")


@pytest.fixture
def run(tmp_path: Path) -> Path:
    (tmp_path / "run" / "output").mkdir(parents=True)
    return tmp_path / "run"


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


# --- what is opened --------------------------------------------------------------------------------

def test_a_plain_file_is_read(run: Path) -> None:
    (run / "output" / "result.json").write_bytes(b'{"outcome": "ok"}')
    assert read_json(run, "output/result.json", 1000) == {"outcome": "ok"}
    assert exists(run, "output/result.json")


def test_a_symlink_to_a_secret_file_is_refused(run: Path, tmp_path: Path) -> None:
    secret = tmp_path / "grader.db"
    secret.write_text("other participants' grades")
    (run / "stderr.log").symlink_to("../grader.db")
    with pytest.raises(UntrustedFileError, match="symbolic link"):
        read_bytes(run, "stderr.log", 10_000)
    assert read_tail(run, "stderr.log") == ""  # log tails go through the same reader
    assert not exists(run, "stderr.log")


def test_a_symlinked_folder_on_the_way_is_refused(run: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "other-run" / "output"
    elsewhere.mkdir(parents=True)
    (elsewhere / "result.json").write_text('{"outcome": "ok"}')
    (run / "output").rmdir()
    (run / "output").symlink_to(elsewhere)
    with pytest.raises(UntrustedFileError, match="symbolic link"):
        read_bytes(run, "output/result.json", 1000)


def test_the_run_dir_itself_may_not_be_a_link(tmp_path: Path, run: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(run)
    (run / "job.json").write_text("{}")
    with pytest.raises(UntrustedFileError):
        read_bytes(link, "job.json", 100)


def test_a_fifo_never_blocks(run: Path) -> None:
    os.mkfifo(run / "progress.jsonl")
    done = threading.Event()

    def attempt() -> None:
        with pytest.raises(UntrustedFileError, match="FIFO"):
            read_bytes(run, "progress.jsonl", 1000)
        done.set()

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(5)
    assert done.is_set(), "reading a FIFO blocked"
    assert read_tail(run, "progress.jsonl") == ""


def test_a_link_to_a_device_is_refused(run: Path) -> None:
    (run / "output" / "predictions.npy").symlink_to("/dev/zero")
    with pytest.raises(UntrustedFileError, match="symbolic link"):
        read_bytes(run, "output/predictions.npy", 1000)


def test_a_directory_is_not_a_file(run: Path) -> None:
    (run / "supervisor.json").mkdir()
    with pytest.raises(UntrustedFileError, match="not a regular file"):
        read_bytes(run, "supervisor.json", 1000)


@pytest.mark.parametrize("name", ["../job.json", "/etc/passwd", "output/../../x", "", "a//b"])
def test_names_that_climb_are_refused(run: Path, name: str) -> None:
    with pytest.raises(UntrustedFileError, match="plain relative"):
        read_bytes(run, name, 100)


def test_size_is_capped_before_reading(run: Path) -> None:
    (run / "big").write_bytes(b"x" * 5000)
    with pytest.raises(UntrustedFileError, match="over its 4,000-byte limit"):
        read_bytes(run, "big", 4000)
    assert read_tail(run, "big", 100) == "x" * 100


def test_growing_progress_is_read_from_an_offset(run: Path) -> None:
    (run / "progress.jsonl").write_bytes(b'{"a": 1}\n{"b": 2}\n')
    assert read_from(run, "progress.jsonl", 9, 1000) == b'{"b": 2}\n'
    assert read_from(run, "progress.jsonl", 100, 1000) == b""


# --- JSON ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "message"), [
    (b'{"params": ' + b"9" * 4400 + b"}", "integer with 4400 digits"),
    (b"[" * 10_000 + b"]" * 10_000, "nests 10000 levels deep"),
    (b'{"loss": NaN}', "NaN is not allowed"),
    (b'{"loss": Infinity}', "Infinity is not allowed"),
    (b'{"loss": 1e999}', "not finite"),
    (b"\xff\xfe", "not UTF-8"),
    (b'{"a": ', "not valid JSON"),
])
def test_hostile_json_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(UntrustedFileError, match=message):
        parse_json(data, "result.json")


def test_nesting_inside_strings_does_not_count() -> None:
    assert parse_json(b'{"summary": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
                      "x")["summary"].startswith("[[[")


# --- .npy ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint8])
def test_valid_predictions(dtype: type) -> None:
    arr = np.array([0, 1, 9, 3], dtype=dtype)
    got = check_labels(parse_npy(npy(arr), "predictions.npy", shape=(4,), kinds="iu"), MNIST.labels.used,
                       "predictions.npy")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, arr)


def test_a_header_promising_ten_billion_values_allocates_nothing() -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<i8", "fortran_order": False, "shape": (10**10,)})
    forged = buf.getvalue()  # 128 bytes that promise 74.5 GiB
    assert len(forged) == 128
    with pytest.raises(UntrustedFileError):
        parse_npy(forged, "predictions.npy", shape=(500,), kinds="iu")
    with pytest.raises(UntrustedFileError, match="its header promises"):
        parse_npy(forged, "predictions.npy", shape=(10_000_000_000,), kinds="iu")


def test_a_pickled_object_array_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))  # would run if anyone unpickled this

    with pytest.raises(UntrustedFileError, match="only plain numbers"):
        parse_npy(npy(np.array([Boom(), 1, 2, 3], dtype=object), allow_pickle=True), "predictions.npy", shape=(4,),
                  kinds="iu")
    assert not marker.exists()


@pytest.mark.parametrize(("arr", "message"), [
    (np.zeros(5, np.int16), r"has shape \(5,\) and dtype int16; expected \(4,\) integers"),
    (np.zeros((4, 1), np.int16), r"has shape \(4, 1\)"),
    (np.zeros((4, 10), np.float32), r"has shape \(4, 10\)"),  # probabilities instead of labels
    (np.array([0.0, 1.0, 2.0, 3.0]), r"dtype float64; expected \(4,\) integers"),
    (np.array([np.nan, 1.0, 2.0, 3.0]), r"dtype float64"),  # NaN predictions
    (np.array([True, False, True, True]), r"dtype bool"),
    (np.array(["0", "1", "2", "3"]), r"dtype <U1"),
])
def test_malformed_predictions_are_refused(arr: np.ndarray, message: str) -> None:
    with pytest.raises(ResultError, match=message):
        parse_npy(npy(arr), "predictions.npy", shape=(4,), kinds="iu")


@pytest.mark.parametrize("labels", [[0, 1, 2, 10], [0, -1, 2, 3]])
def test_labels_outside_the_label_set_are_refused(labels: list[int]) -> None:
    with pytest.raises(ResultError, match="labels outside the exercise's label set"):
        check_labels(np.array(labels, np.int16), MNIST.labels.used, "predictions.npy")


def test_unused_asl_label_is_refused() -> None:
    with pytest.raises(ResultError, match="outside the exercise's label set"):
        check_labels(np.array([0, 8, 9, 10]), ASL.labels.used, "predictions.npy")
    np.testing.assert_array_equal(check_labels(np.array([0, 8, 24, 10]), ASL.labels.used, "p"), [0, 8, 24, 10])


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY garbage", b"not numpy at all" * 10])
def test_garbage_is_not_an_array(content: bytes) -> None:
    with pytest.raises(UntrustedFileError, match=r"not a valid \.npy array"):
        parse_npy(content, "predictions.npy", shape=(4,), kinds="iu")


def test_truncated_data_is_refused() -> None:
    with pytest.raises(UntrustedFileError, match="its header promises"):
        parse_npy(npy(np.zeros(4, np.int16))[:-2], "predictions.npy", shape=(4,), kinds="iu")


# --- .npz (weights) --------------------------------------------------------------------------------

def test_weights_are_counted_from_headers() -> None:
    buf = io.BytesIO()
    np.savez(buf, w0=np.zeros((784, 64), np.float32), w1=np.zeros(64, np.float32))
    assert sum(npz_sizes(buf.getvalue(), "weights.npz").values()) == 784 * 64 + 64


def test_compressed_members_are_refused() -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, w0=np.zeros(1_000_000, np.float32))  # a zip bomb's first step
    with pytest.raises(UntrustedFileError, match=r"not a stored \.npy member"):
        npz_sizes(buf.getvalue(), "weights.npz")


def test_a_member_whose_header_lies_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("w0.npy", npy(np.zeros(10, np.float32)).replace(b"(10,)", b"(99999,)"))
    with pytest.raises(UntrustedFileError, match="does not hold the data its header promises"):
        npz_sizes(buf.getvalue(), "weights.npz")


def test_not_a_zip() -> None:
    with pytest.raises(UntrustedFileError, match=r"not a valid \.npz"):
        npz_sizes(b"PK\x03\x04 nonsense", "weights.npz")


@pytest.mark.parametrize(("given", "kept"), [("../../etc/passwd.py", "passwd.py"), ("C:\\\\Users\\\\a\\\\m.py", "m.py"),
                                             ("..", "submission.py"), ("", "submission.py"),
                                             ("a\x1b[31m.py", "a[31m.py"), ("x" * 300 + ".py", "x" * 200)])
def test_base_name_keeps_only_a_label(given: str, kept: str) -> None:
    from grader.text import base_name

    assert base_name(given) == kept
