"""Static submission checks, the content-hash store, and the notebook → module filter.

Nothing here imports or runs the submission: the CLI process only parses it (ast), so a
file that cannot be graded is refused at once and nothing is queued for it.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, Field

from grader.errors import SubmissionError
from grader.rundir import atomic_write_bytes
from grader.specs.exercise import ExerciseSpec

MAX_SOURCE_BYTES = 256_000
MAX_NOTEBOOK_BYTES = 20_000_000
BUILD_PARAMS = {"input_shape", "num_classes"}
TRAINING_KEYS = {"epochs", "batch_size"}
KERAS2_ARGS = {"lr": "learning_rate", "nb_epoch": "epochs", "init": "kernel_initializer", "W_regularizer": "kernel_regularizer"}


class SubmissionInfo(BaseModel):
    """What static analysis learned; stored with the submission."""

    sha256: str
    size: int
    kind: str = Field(description="'py' or 'ipynb'")
    build_params: list[str]
    training: dict[str, int] = Field(default_factory=dict)
    has_augment: bool = False
    warnings: list[str] = Field(default_factory=list)


def _fail(filename: str, message: str, line: int | None = None, hint: str | None = None) -> SubmissionError:
    where = f"{filename}:{line}" if line else filename
    return SubmissionError(f"{where}: {message}", hint=hint)


def check_source(source: str, filename: str, spec: ExerciseSpec | None = None, kind: str = "py") -> SubmissionInfo:
    """Refuse what cannot be graded with a message naming the line; return what was learned.

    Raises:
        SubmissionError: syntax error, missing build_model, unexpected parameters, a TRAINING
            dict that is not a literal or breaks the exercise's limits, Keras 2 argument names.
    """
    data = source.encode("utf-8")
    if len(data) > MAX_SOURCE_BYTES:
        raise _fail(filename, f"file is {len(data)} bytes; the limit is {MAX_SOURCE_BYTES}")
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise _fail(filename, f"syntax error: {exc.msg}", exc.lineno, "fix the line shown and submit again") from None
    warnings: list[str] = []
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    build = funcs.get("build_model")
    if build is None:
        raise _fail(filename, "no top-level function `build_model` found",
                    hint="define `def build_model(input_shape, num_classes):` returning a keras.Model")
    args = build.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    n_defaults = len(args.defaults) + sum(d is not None for d in args.kw_defaults)
    required = [n for n in names[: len(names) - n_defaults]]
    unknown = [n for n in required if n not in BUILD_PARAMS]
    if unknown:
        raise _fail(filename, f"build_model has parameters {unknown} that grader cannot fill", build.lineno,
                    "build_model may take only `input_shape` and/or `num_classes`")
    training = _training(tree, filename, spec)
    augment = funcs.get("augment")
    if augment is not None and len(augment.args.args) != 2:
        raise _fail(filename, "augment must take exactly two arguments (image, label)", augment.lineno)
    _keras2_names(tree, filename)
    return SubmissionInfo(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind=kind,
        build_params=[n for n in names if n in BUILD_PARAMS], training=training,
        has_augment=augment is not None, warnings=warnings,
    )


def _training(tree: ast.Module, filename: str, spec: ExerciseSpec | None) -> dict[str, int]:
    node = next((n for n in tree.body if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "TRAINING" for t in n.targets)), None)
    if node is None:
        return {}
    try:
        value = ast.literal_eval(node.value)
    except ValueError:
        raise _fail(filename, "TRAINING must be a literal dict like {\"epochs\": 10, \"batch_size\": 64}",
                    node.lineno) from None
    if not isinstance(value, dict):
        raise _fail(filename, "TRAINING must be a dict", node.lineno)
    extra = set(value) - TRAINING_KEYS
    if extra:
        raise _fail(filename, f"TRAINING has unknown keys {sorted(extra)}; allowed: {sorted(TRAINING_KEYS)}",
                    node.lineno)
    for key, val in value.items():
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise _fail(filename, f"TRAINING[{key!r}] must be a positive integer, got {val!r}", node.lineno)
    if spec is not None:
        lim = spec.limits
        if value.get("epochs", 1) > lim.max_epochs:
            raise _fail(filename, f"TRAINING['epochs'] = {value['epochs']} exceeds this exercise's limit of "
                        f"{lim.max_epochs}", node.lineno)
        bs = value.get("batch_size")
        if bs is not None and not lim.min_batch_size <= bs <= lim.max_batch_size:
            raise _fail(filename, f"TRAINING['batch_size'] = {bs} is outside the allowed range "
                        f"{lim.min_batch_size}..{lim.max_batch_size}", node.lineno)
    return value


def _keras2_names(tree: ast.Module, filename: str) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in KERAS2_ARGS:
                    raise _fail(filename, f"`{kw.arg}=` is a Keras 2 argument name; Keras 3 calls it "
                                f"`{KERAS2_ARGS[kw.arg]}=`", node.lineno,
                                f"write e.g. keras.optimizers.Adam({KERAS2_ARGS[kw.arg]}=...)")


# --- notebooks ------------------------------------------------------------------------------

def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return True
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Name) for t in node.targets) and _literal(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.value is not None and _literal(node.value)
    return False


def _strip_ipython(src: str) -> str:
    """Blank out magics and shell escapes (not Python), keeping line numbers."""
    lines = src.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return ""
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)


def cells_to_module(cells: list[str]) -> tuple[str, list[str]]:
    """Keep only imports, defs, classes and literal assignments: importing the result never trains.

    Returns the module source and warnings for cells that could not be parsed.
    """
    kept: list[str] = ["# Extracted by grader from a notebook: imports, definitions and literal settings only."]
    warnings: list[str] = []
    for i, cell in enumerate(cells, start=1):
        src = _strip_ipython(cell)
        try:
            tree = ast.parse(src)
        except SyntaxError as exc:
            warnings.append(f"code cell {i} skipped: syntax error ({exc.msg}, line {exc.lineno})")
            continue
        for node in tree.body:
            if not _keep(node):
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                # an import of a plotting/data library the grading environment lacks must not
                # sink the whole submission; if build_model needs it, the job reports it there
                kept.append(f"try:\n    {ast.unparse(node)}\nexcept ImportError:\n    pass")
            else:
                kept.append(ast.unparse(node))
    return "\n\n".join(kept) + "\n", warnings


def notebook_to_module(path: Path) -> tuple[str, list[str]]:
    """Read an .ipynb (nbformat 4 JSON, parsed without nbformat to keep the CLI light)."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise _fail(path.name, f"notebook is {size} bytes; the limit is {MAX_NOTEBOOK_BYTES} (clear outputs?)")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = [c for c in nb["cells"] if c.get("cell_type") == "code"]
        sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise _fail(path.name, f"not a readable Jupyter notebook ({exc})") from None
    return cells_to_module(sources)


def read_submission(path: Path, spec: ExerciseSpec | None = None) -> tuple[str, SubmissionInfo]:
    """Load a .py or .ipynb file as module source and check it statically."""
    path = path.expanduser()
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    if path.suffix == ".ipynb":
        source, warnings = notebook_to_module(path)
        info = check_source(source, path.name, spec, kind="ipynb")
        return source, info.model_copy(update={"warnings": warnings + info.warnings})
    if path.suffix != ".py":
        raise SubmissionError(f"{path}: expected a .py file or a .ipynb notebook")
    size = path.stat().st_size
    if size > MAX_SOURCE_BYTES:
        raise _fail(path.name, f"file is {size} bytes; the limit is {MAX_SOURCE_BYTES}")
    try:
        source = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(path.name, f"not UTF-8 text (byte {exc.start})", hint="save the file as UTF-8") from None
    return source, check_source(source, path.name, spec)


def store_source(source: str, store_dir: Path) -> Path:
    """Content-addressed copy: identical submissions share one file."""
    data = source.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    target = store_dir / digest[:2] / f"{digest}.py"
    if not target.exists():
        atomic_write_bytes(target, data)
    return target

