"""Datasets: import from the formats people have, fetch with checksums, samples, inputs without labels.

Import accepts only data whose content digest matches a known full dataset, so the round trips
need the real data: they run when GRADER_DATA_DIR points at the full datasets (CI sets it to
../shared/datasets) and skip otherwise. The refusal paths use the bundled samples.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from grader.datasets import (
    DATASETS,
    IDX_FILES,
    KEYS,
    Arrays,
    dataset_status,
    heldout_labels,
    import_dataset,
    load_arrays,
    perturb,
    prepare_inputs,
    public_mask,
    read_any,
    read_npz,
)
from grader.errors import DataError
from grader.rundir import INPUT_MANIFEST, INPUT_X_HELDOUT, INPUT_X_TRAIN, INPUT_Y_TRAIN
from grader.settings import SAMPLES_DIR, Settings
from grader.specs.catalog import ExerciseCatalog

REPO = Path(__file__).resolve().parents[1]
CATALOG = ExerciseCatalog(REPO)
REFUSED = "does not match any known dataset's checksum"


def _real_data_dir() -> Path | None:
    value = os.environ.get("GRADER_DATA_DIR")
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    return path if all((path / f"{name}.npz").is_file() for name in DATASETS) else None


REAL_DATA = _real_data_dir()
needs_full_data = pytest.mark.skipif(
    REAL_DATA is None,
    reason="needs the full datasets: set GRADER_DATA_DIR to a folder with mnist.npz, fashion_mnist.npz and "
    "sign_mnist.npz (CI uses ../shared/datasets)",
)


@pytest.fixture(autouse=True, scope="module")
def real_data_untouched() -> Iterator[None]:
    """Guard: nothing here may write into the shared real data dir."""
    files = sorted(REAL_DATA.iterdir()) if REAL_DATA else []
    before = [(p.name, p.stat().st_mtime_ns, p.stat().st_mode) for p in files]
    yield
    assert [(p.name, p.stat().st_mtime_ns, p.stat().st_mode) for p in sorted(REAL_DATA.iterdir())] == before \
        if REAL_DATA else True


@functools.cache
def full(name: str) -> Arrays:
    assert REAL_DATA is not None
    return read_npz(REAL_DATA / f"{name}.npz")


def sample(name: str) -> Arrays:
    return read_npz(SAMPLES_DIR / f"{name}.npz")


@pytest.fixture
def data_dir(grader_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data dir of our own, whatever GRADER_DATA_DIR the session was started with.

    Imports write into the data dir, so no test here may run against the real one (as root,
    a read-only mode would not stop the write).
    """
    folder = tmp_path / "data"
    monkeypatch.setenv("GRADER_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Overrides conftest's: built only after GRADER_DATA_DIR points into tmp_path."""
    return Settings()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}  # 127.0.0.1 must be reached directly
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True, env=env,
                          timeout=300)


# --- writing the formats people have ---------------------------------------------------------

def write_npz(arrays: Arrays, path: Path) -> Path:
    np.savez(path, **{k: getattr(arrays, k) for k in KEYS})
    return path


def write_idx(arrays: Arrays, folder: Path) -> Path:
    """The four original IDX files, gzipped, as distributed by LeCun and Zalando."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        arr = np.ascontiguousarray(getattr(arrays, key), dtype=np.uint8)
        header = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
        with gzip.open(folder / f"{stem}.gz", "wb", compresslevel=1) as fh:
            fh.write(header + arr.tobytes())
    return folder


def write_csv(arrays: Arrays, folder: Path) -> Path:
    """Kaggle's sign_mnist_{train,test}.csv: a header row, then label + 784 pixels per row."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
    for split, x, y in (("train", arrays.x_train, arrays.y_train), ("test", arrays.x_test, arrays.y_test)):
        table = np.concatenate([y.astype(np.int64)[:, None], x.reshape(len(x), -1).astype(np.int64)], axis=1)
        np.savetxt(folder / f"sign_mnist_{split}.csv", table, fmt="%d", delimiter=",", header=header, comments="")
    return folder


def assert_same(a: Arrays, b: Arrays) -> None:
    for key in KEYS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)


# --- readers (samples, no full data needed) ---------------------------------------------------

@pytest.mark.parametrize("name", list(DATASETS))
def test_every_format_reads_back_the_same_arrays(tmp_path: Path, name: str) -> None:
    s = sample(name)
    assert_same(read_any(write_npz(s, tmp_path / "x.npz")), s)
    assert_same(read_any(write_idx(s, tmp_path / "idx")), s)
    assert_same(read_any(write_csv(s, tmp_path / "csv")), s)
    # a file inside the folder selects the folder, as users often point at one of the files
    assert_same(read_any(tmp_path / "idx" / "t10k-images-idx3-ubyte.gz"), s)
    assert read_any(tmp_path / "csv").digest() == s.digest()


@pytest.mark.parametrize(("fmt", "name"), [("npz", "mnist"), ("idx", "fashion_mnist"), ("csv", "sign_mnist")])
def test_import_refuses_partial_data(settings: Settings, data_dir: Path, tmp_path: Path, fmt: str, name: str) -> None:
    s = sample(name)
    src = {"npz": lambda: write_npz(s, tmp_path / "sample.npz"), "idx": lambda: write_idx(s, tmp_path / "idx"),
           "csv": lambda: write_csv(s, tmp_path / "csv")}[fmt]()
    with pytest.raises(DataError) as info:
        import_dataset(src, settings)
    msg = str(info.value)
    assert REFUSED in msg
    assert f"({len(s.x_train)} train / {len(s.x_test)} test)" in msg
    assert "Partial or modified copies are refused" in msg
    assert not data_dir.exists() or not any(data_dir.iterdir())


def test_import_cli_refusal_is_one_clear_line(data_dir: Path, tmp_path: Path) -> None:
    src = write_idx(sample("mnist"), tmp_path / "idx")
    proc = cli("data", "import", str(src))
    assert proc.returncode == DataError.exit_code == 3
    assert REFUSED in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("damage", "message"), [
    ("truncate", "truncated IDX file"),
    ("missing", "missing t10k-labels-idx1-ubyte.gz"),
    ("not_idx", "not an IDX file"),
])
def test_broken_idx_folders(tmp_path: Path, damage: str, message: str) -> None:
    folder = write_idx(sample("mnist"), tmp_path / "idx")
    target = folder / "t10k-labels-idx1-ubyte.gz"
    if damage == "truncate":
        target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:-7]))
    elif damage == "missing":
        target.unlink()
    else:
        target.write_bytes(gzip.compress(b"PK\x03\x04 not idx at all"))
    with pytest.raises(DataError, match=message):
        read_any(folder)


def test_unknown_formats_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unknown dataset format"):
        read_any(tmp_path / "notes.txt")
    np.savez(tmp_path / "other.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="missing x_train, y_train, x_test, y_test"):
        read_any(tmp_path / "other.npz")
    with pytest.raises(DataError, match="no such file"):
        read_any(tmp_path / "absent.npz")
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "sign_mnist_train.csv").write_text("label,pixel1\n3,4\n")
    with pytest.raises(DataError, match=r"expected 785 columns \(label \+ 784 pixels\)"):
        read_any(tmp_path / "csv")
    (tmp_path / "csv" / "sign_mnist_train.csv").write_text("label," + ",".join(["0"] * 784) + "\n" + "1," * 784 + "1\n")
    with pytest.raises(DataError, match=r"missing sign_mnist_test\.csv"):
        read_any(tmp_path / "csv")


def test_pickled_npz_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, x_train=np.array([object()], dtype=object), y_train=np.zeros(1), x_test=np.zeros(1),
             y_test=np.zeros(1))
    with pytest.raises(DataError, match=r"cannot read as \.npz"):
        read_npz(path)


# --- round trips with the full data ----------------------------------------------------------

@needs_full_data
def test_import_round_trip_from_keras_npz(settings: Settings, data_dir: Path, tmp_path: Path) -> None:
    src = write_npz(full("mnist"), tmp_path / "mnist_keras.npz")
    info, stored = import_dataset(src, settings)
    assert info.name == "mnist"
    assert stored == data_dir.resolve() / "mnist.npz"
    assert_same(read_npz(stored), full("mnist"))


@needs_full_data
def test_import_round_trip_from_idx_gz_folder_via_cli(data_dir: Path, tmp_path: Path) -> None:
    src = write_idx(full("fashion_mnist"), tmp_path / "fashion idx")
    proc = cli("data", "import", str(src))
    assert proc.returncode == 0, proc.stderr
    assert "imported Fashion-MNIST (60,000 train / 10,000 test)" in proc.stdout
    assert read_npz(data_dir / "fashion_mnist.npz").digest() == DATASETS["fashion_mnist"].digest


@needs_full_data
def test_import_round_trip_from_kaggle_csv_folder(settings: Settings, data_dir: Path, tmp_path: Path) -> None:
    src = write_csv(full("sign_mnist"), tmp_path / "kaggle")
    info, stored = import_dataset(src / "sign_mnist_test.csv", settings)
    assert info.name == "sign_mnist"
    assert_same(read_npz(stored), full("sign_mnist"))
    (row,) = [r for r in dataset_status(settings, verify=True) if r.name == "sign_mnist"]
    assert row.present and row.verified and row.detail == "checksum ok"


@needs_full_data
def test_modified_full_data_is_refused(settings: Settings, data_dir: Path, tmp_path: Path) -> None:
    a = full("mnist")
    y = a.y_test.copy()
    y[0] = (y[0] + 1) % 10  # one flipped label would silently change every grade
    with pytest.raises(DataError, match=REFUSED):
        import_dataset(write_npz(Arrays(a.x_train, a.y_train, a.x_test, y), tmp_path / "m.npz"), settings)


@needs_full_data
@pytest.mark.parametrize("name", list(DATASETS))
def test_samples_are_exact_subsets_of_the_full_data(name: str) -> None:
    f = full(name)
    info = DATASETS[name]
    assert (len(f.x_train), len(f.x_test)) == (info.train, info.test)
    with np.load(SAMPLES_DIR / f"{name}.npz", allow_pickle=False) as s:
        tr, te = s["train_index"], s["test_index"]
        assert len(np.unique(tr)) == len(tr) and len(np.unique(te)) == len(te)
        np.testing.assert_array_equal(s["x_train"], f.x_train[tr])
        np.testing.assert_array_equal(s["y_train"], f.y_train[tr])
        np.testing.assert_array_equal(s["x_test"], f.x_test[te])
        np.testing.assert_array_equal(s["y_test"], f.y_test[te])


@needs_full_data
def test_verify_passes_on_the_real_data_dir(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_DATA_DIR", str(REAL_DATA))
    proc = cli("data", "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("checksum ok") == 3


# --- samples (always) ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(DATASETS))
def test_samples_are_small_and_stratified(name: str) -> None:
    s = sample(name)
    for y in (s.y_train, s.y_test):
        _, counts = np.unique(y, return_counts=True)
        assert counts.min() == counts.max(), "every class equally often"
    if name == "sign_mnist":
        assert 9 not in s.y_train and 9 not in s.y_test  # J needs motion: never in the data
        assert set(np.unique(s.y_test)) == set(range(25)) - {9}


def test_samples_stay_well_under_ten_megabytes() -> None:
    """The wheel carries them; about 10 MB is the budget for a smoke profile that ranks truthfully."""
    total = sum((SAMPLES_DIR / f"{name}.npz").stat().st_size for name in DATASETS)
    assert total < 5_000_000, f"the bundled samples take {total:,} bytes; keep them well under 10 MB"


# --- list / verify ---------------------------------------------------------------------------

def test_list_and_verify_cli(data_dir: Path) -> None:
    empty = cli("data", "list")
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.count("missing") >= 3

    data_dir.mkdir(parents=True)
    write_npz(sample("mnist"), data_dir / "mnist.npz")  # present but not the real thing
    listed = cli("data", "list")
    assert listed.returncode == 0
    assert "present" in listed.stdout
    verified = cli("data", "verify")
    assert verified.returncode == DataError.exit_code
    assert "checksum MISMATCH" in verified.stdout


def test_full_profile_without_data_says_how_to_get_it(settings: Settings, data_dir: Path) -> None:
    with pytest.raises(DataError) as info:
        load_arrays(CATALOG.get("mnist"), "full", settings)
    assert "is not in" in info.value.message
    assert "GRADER_DATA_DIR" in str(info.value.hint)
    assert "smoke profile works without it" in str(info.value.hint)


def test_full_profile_with_corrupt_data_is_refused(settings: Settings, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    write_npz(sample("fashion_mnist"), data_dir / "fashion_mnist.npz")
    with pytest.raises(DataError, match="checksum mismatch"):
        load_arrays(CATALOG.get("fashion_mnist"), "full", settings)


# --- fetch -----------------------------------------------------------------------------------

@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """A real HTTP mirror on 127.0.0.1 serving `folder`."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_refuses_wrong_content(data_dir: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_npz(sample("mnist"), mirror / "mnist.npz")  # right name, wrong content
    with serve(mirror) as url:
        proc = cli("data", "fetch", "mnist", "--mirror", url, "--timeout", "20")
    assert proc.returncode == DataError.exit_code, proc.stdout + proc.stderr
    assert "does not match its checksum; refusing to store it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (data_dir / "mnist.npz").exists()


def test_fetch_idx_refuses_wrong_content(settings: Settings, data_dir: Path, tmp_path: Path) -> None:
    from grader.datasets import fetch_dataset

    with serve(write_idx(sample("fashion_mnist"), tmp_path / "mirror")) as url, \
            pytest.raises(DataError, match="does not match its checksum"):
        fetch_dataset("fashion_mnist", settings, mirror=url, timeout=20)
    assert not (data_dir / "fashion_mnist.npz").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_offline_is_a_clear_message(data_dir: Path) -> None:
    proc = cli("data", "fetch", "mnist", "--mirror", f"http://127.0.0.1:{_closed_port()}", "--timeout", "10")
    assert proc.returncode == DataError.exit_code, proc.stdout + proc.stderr
    assert "this machine seems offline or the address is blocked" in proc.stderr
    assert "grader data import PATH" in proc.stderr  # the hint: what to do instead
    assert "Traceback" not in proc.stderr
    assert not (data_dir / "mnist.npz").exists()


def test_fetch_without_anonymous_download(data_dir: Path) -> None:
    proc = cli("data", "fetch", "sign_mnist")
    assert proc.returncode == DataError.exit_code
    assert "no anonymous download" in proc.stderr and "sign_mnist_train.csv" in proc.stderr
    unknown = cli("data", "fetch", "cifar10")
    assert unknown.returncode == DataError.exit_code
    assert "unknown dataset 'cifar10'" in unknown.stderr


# --- job inputs: never the held-out labels ----------------------------------------------------

def _inputs_hold_no_labels(folder: Path, labels: np.ndarray) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [INPUT_MANIFEST, INPUT_X_HELDOUT, INPUT_X_TRAIN, INPUT_Y_TRAIN])
    needles = {labels.astype(dt).tobytes() for dt in (np.uint8, np.int16, np.int32, np.int64)}
    for path in folder.iterdir():
        blob = path.read_bytes()
        assert not any(n in blob for n in needles), f"{path.name} contains the held-out labels"
        assert path.stat().st_mode & 0o222 == 0, f"{path.name} is writable"
    manifest = json.loads((folder / INPUT_MANIFEST).read_text())
    assert set(manifest) == {"exercise", "profile", "dataset", "train", "heldout"}
    x = np.load(folder / INPUT_X_HELDOUT, allow_pickle=False)
    assert x.dtype == np.uint8 and x.shape == (len(labels), 28, 28)


@pytest.mark.parametrize("exercise", ["mnist", "asl"])
def test_prepare_inputs_never_writes_heldout_labels(settings: Settings, exercise: str) -> None:
    spec = CATALOG.get(exercise)
    folder = prepare_inputs(spec, "smoke", settings)
    key = heldout_labels(spec, "smoke", settings)
    _inputs_hold_no_labels(folder, key.labels)
    arrays = load_arrays(spec, "smoke", settings)
    np.testing.assert_array_equal(np.load(folder / INPUT_X_HELDOUT), arrays.x_test)
    np.testing.assert_array_equal(np.load(folder / INPUT_Y_TRAIN), arrays.y_train)
    assert prepare_inputs(spec, "smoke", settings) == folder  # prepared once, then reused
    assert folder.is_relative_to(settings.inputs_dir)


@needs_full_data
def test_prepare_inputs_full_profile_has_no_labels(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_DATA_DIR", str(REAL_DATA))  # read only: prepare_inputs writes under GRADER_HOME
    settings = Settings()
    spec = CATALOG.get("mnist")
    folder = prepare_inputs(spec, "full", settings)
    _inputs_hold_no_labels(folder, heldout_labels(spec, "full", settings).labels)


def test_smoke_training_order_is_a_seeded_shuffle(settings: Settings) -> None:
    spec = CATALOG.get("mnist")
    a, b = load_arrays(spec, "smoke", settings), load_arrays(spec, "smoke", settings)
    assert_same(a, b)
    s = sample("mnist")
    assert not np.array_equal(a.y_train, s.y_train)  # shuffled, so the first K are a fair sample for the gap
    assert sorted(a.y_train.tolist()) == sorted(s.y_train.tolist())
    np.testing.assert_array_equal(a.y_test, s.y_test)  # held-out order is the canonical one


# --- the public/private split ------------------------------------------------------------------

@pytest.mark.parametrize("exercise", ["mnist", "fashion_mnist", "asl"])
def test_public_private_split_is_deterministic_and_half(settings: Settings, exercise: str) -> None:
    spec = CATALOG.get(exercise)
    for n in (360, 500, 7172, 10000):
        mask = public_mask(n, spec)
        assert mask.dtype == bool and mask.shape == (n,)
        assert mask.sum() == round(n * spec.heldout.public_fraction)
        np.testing.assert_array_equal(mask, public_mask(n, spec))
    key = heldout_labels(spec, "smoke", settings)
    np.testing.assert_array_equal(key.public, public_mask(len(key.labels), spec))
    # both halves see every class, in roughly equal shares
    for half in (key.public, ~key.public):
        counts = np.bincount(key.labels[half], minlength=spec.labels.num_outputs)[spec.labels.used]
        assert counts.min() > 0
        assert abs(int(half.sum()) - len(key.labels) / 2) <= 1


def test_public_split_is_fixed_across_processes() -> None:
    code = ("from pathlib import Path; from grader.datasets import public_mask; "
            "from grader.specs.catalog import ExerciseCatalog; "
            f"print(public_mask(500, ExerciseCatalog(Path({str(REPO)!r})).get('mnist')).nonzero()[0].tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == public_mask(500, CATALOG.get("mnist")).nonzero()[0].tolist()
    assert json.loads(out)[:5] != list(range(5))  # a permutation, not the first half


def test_split_seed_changes_the_split() -> None:
    spec = CATALOG.get("mnist")
    other = spec.model_copy(update={"heldout": spec.heldout.model_copy(update={"split_seed": 1})})
    assert not np.array_equal(public_mask(500, spec), public_mask(500, other))


def test_perturbation_changes_every_heldout_image_and_follows_the_secret() -> None:
    with np.load(SAMPLES_DIR / "mnist.npz") as f:
        images = f["x_test"][:300]
    images[0] = 0  # a blank image: noise rounds away on most pixels, yet it must change too
    noisy = perturb(images, b"secret-1")
    assert noisy.dtype == images.dtype and noisy.shape == images.shape
    assert not (noisy == images).reshape(len(images), -1).all(axis=1).any()  # no image equals its original
    assert np.abs(noisy.astype(int) - images).mean() < 4  # light: a few grey levels
    assert np.array_equal(noisy, perturb(images, b"secret-1"))  # the same secret, the same images
    assert not np.array_equal(noisy, perturb(images, b"secret-2"))
    shifted = perturb(images, b"secret-1", shift=True)
    moved = [i for i in range(1, 50) if np.abs(shifted[i].astype(int) - images[i]).mean() > 8]
    assert len(moved) > 40  # a one-pixel move shows on (almost) every digit


def test_perturbed_inputs_keep_the_answer_key(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", course_dir=Path(__file__).resolve().parents[1])
    spec = ExerciseCatalog(settings.resolved_course_dir).get("mnist")
    guarded = spec.model_copy(update={"integrity": spec.integrity.model_copy(update={"perturb_heldout": True})})
    plain_dir, guarded_dir = prepare_inputs(spec, "smoke", settings), prepare_inputs(guarded, "smoke", settings)
    plain, perturbed = np.load(plain_dir / INPUT_X_HELDOUT), np.load(guarded_dir / INPUT_X_HELDOUT)
    assert plain.shape == perturbed.shape and not np.array_equal(plain, perturbed)
    assert np.array_equal(heldout_labels(spec, "smoke", settings).labels,
                          heldout_labels(guarded, "smoke", settings).labels)
    assert guarded.spec_hash() != spec.spec_hash()  # turning the guard on re-measures the references
