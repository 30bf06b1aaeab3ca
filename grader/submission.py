"""Static submission checks, the content-hash store, and the notebook → module filter.

Nothing here imports or runs the submission: the CLI process only parses it (ast), so a
file that cannot be graded is refused at once and nothing is queued for it.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from pydantic import BaseModel, Field

from grader.errors import GraderError, SubmissionError
from grader.rundir import atomic_write_bytes
from grader.specs.exercise import ExerciseSpec
from grader.specs.keras2 import KERAS2_RENAMES, rename_hint
from grader.untrusted import parse_json

MAX_SOURCE_BYTES = 256_000
MAX_NOTEBOOK_BYTES = 20_000_000
BUILD_PARAMS = {"input_shape", "num_classes"}
TRAINING_KEYS = {"epochs", "batch_size"}


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
    except (RecursionError, MemoryError):
        raise _fail(filename, "an expression is nested too deeply for Python to read",
                    hint="split the expression into several lines") from None
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
                if kw.arg in KERAS2_RENAMES:
                    raise _fail(filename, f"`{kw.arg}=` is a Keras 2 argument name; Keras 3 calls it "
                                f"{rename_hint(kw.arg)}", node.lineno,
                                "write e.g. keras.optimizers.Adam(learning_rate=...)")


# --- notebooks ------------------------------------------------------------------------------

def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _constant(node: ast.expr) -> bool:
    """A literal, or arithmetic on literals (`10 / 360`): no name is looked up, nothing is called."""
    if isinstance(node, ast.UnaryOp | ast.BinOp):
        return all(_constant(n) for n in ast.iter_child_nodes(node) if isinstance(n, ast.expr))
    return _literal(node)


def _layer_object(node: ast.expr) -> bool:
    """`layers.RandomRotation(0.1, seed=1)` or `keras.layers.X(...)` with constant settings only.

    Kept so that `augment` can use random layers built once at module level; building a layer
    from constants loads no data and trains nothing.
    """
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    chain: list[str] = []
    while isinstance(func, ast.Attribute):
        chain.insert(0, func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return False
    chain.insert(0, func.id)
    if len(chain) < 2 or chain[-2] != "layers" or chain[0] not in {"layers", "keras", "tf"}:
        return False
    return all(_constant(a) for a in node.args) and all(k.arg is not None and _constant(k.value)
                                                        for k in node.keywords)


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return True
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Name) for t in node.targets) and (_literal(node.value)
                                                                       or _layer_object(node.value))
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
    """Keep only imports, defs, classes, literal assignments and layer objects: importing the result never trains.

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
        except (RecursionError, MemoryError):
            warnings.append(f"code cell {i} skipped: an expression is nested too deeply for Python to read")
            continue
        for node in tree.body:
            if not _keep(node):
                continue
            try:
                text = ast.unparse(node)
            except (RecursionError, MemoryError):
                warnings.append(f"code cell {i}: a definition nested too deeply was skipped")
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                # an import of a plotting/data library the grading environment lacks must not
                # sink the whole submission; if build_model needs it, the job reports it there
                kept.append(f"try:\n    {text}\nexcept ImportError:\n    pass")
            else:
                kept.append(text)
    return "\n\n".join(kept) + "\n", warnings


def notebook_to_module(data: bytes, filename: str) -> tuple[str, list[str]]:
    """Read an .ipynb (nbformat 4 JSON, parsed with bounds and without nbformat to keep the CLI light)."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise _fail(filename, f"notebook is {len(data)} bytes; the limit is {MAX_NOTEBOOK_BYTES} (clear outputs?)")
    try:
        nb = parse_json(data, filename)
    except GraderError as exc:
        raise _fail(filename, f"not a readable Jupyter notebook: {exc}") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise _fail(filename, "not a Jupyter notebook: it has no list of cells",
                    hint="save it from Jupyter as .ipynb, or submit a .py file")
    sources = []
    for i, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            raise _fail(filename, f"cell {i} is not a notebook cell (found {type(cell).__name__})")
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list) and all(isinstance(line, str) for line in src):
            src = "".join(src)
        if not isinstance(src, str):
            raise _fail(filename, f"cell {i} has a source that is not text")
        sources.append(src)
    return cells_to_module(sources)


def safe_filename(name: str) -> str:
    """The file's own name only (no folders, no control characters), as shown and stored."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())[:200]
    return base or "submission.py"


def parse_submission(data: bytes, filename: str, spec: ExerciseSpec | None = None) -> tuple[str, SubmissionInfo]:
    """Check an uploaded or read file (bytes and its name) as a .py or .ipynb submission."""
    name = safe_filename(filename)
    if not data.strip():
        raise _fail(name, "the file is empty", hint="write build_model() in it, or start from `grader init`")
    if name.endswith(".ipynb"):
        source, warnings = notebook_to_module(data, name)
        info = check_source(source, name, spec, kind="ipynb")
        return source, info.model_copy(update={"warnings": warnings + info.warnings})
    if not name.endswith(".py"):
        raise SubmissionError(f"{name}: expected a .py file or a .ipynb notebook")
    if len(data) > MAX_SOURCE_BYTES:
        raise _fail(name, f"file is {len(data)} bytes; the limit is {MAX_SOURCE_BYTES}")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(name, f"not UTF-8 text (byte {exc.start})", hint="save the file as UTF-8") from None
    return source, check_source(source, name, spec)


def read_submission(path: Path, spec: ExerciseSpec | None = None) -> tuple[str, SubmissionInfo]:
    """Load a .py or .ipynb file as module source and check it statically."""
    path = path.expanduser()
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    if path.suffix not in (".py", ".ipynb"):
        raise SubmissionError(f"{path}: expected a .py file or a .ipynb notebook")
    size = path.stat().st_size
    if path.suffix == ".ipynb" and size > MAX_NOTEBOOK_BYTES:
        raise _fail(path.name, f"notebook is {size} bytes; the limit is {MAX_NOTEBOOK_BYTES} (clear outputs?)")
    if path.suffix == ".py" and size > MAX_SOURCE_BYTES:
        raise _fail(path.name, f"file is {size} bytes; the limit is {MAX_SOURCE_BYTES}")
    return parse_submission(path.read_bytes(), path.name, spec)


class _Canonical(ast.NodeTransformer):
    """Local names renamed in order of appearance, docstrings dropped: renaming variables changes nothing."""

    def __init__(self, imported: dict[str, str]) -> None:
        self.names: dict[str, str] = {}
        self.imported = imported  # `from keras import layers as L`: L means keras.layers, whatever its alias

    def _name(self, name: str) -> str:
        if name in self.imported:
            return self.imported[name]
        if name in _KEEP_NAMES:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id=self._name(node.id), ctx=node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._name(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._name(node.name)
        node.returns = None
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None),
                                                                          ast.Constant):
            node.body = node.body[1:] or [ast.Pass()]
        self.generic_visit(node)
        return node

    def visit_Import(self, node: ast.Import) -> ast.AST | None:
        return None  # imports are style, not substance

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        return None


_KEEP_NAMES = {"build_model", "augment", "TRAINING", "input_shape", "num_classes", "True", "False", "None", "range",
               "len", "print"}


def _imports(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module or ''}.{alias.name}"
    return names


def code_fingerprint(source: str) -> str | None:
    """A hash of the code with names, comments, docstrings and imports normalised away (for near-duplicates)."""
    try:
        tree = ast.parse(source)
        if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant):
            tree.body = tree.body[1:]
        canonical = _Canonical(_imports(tree)).visit(tree)
        return hashlib.sha256(ast.dump(canonical, annotate_fields=False).encode()).hexdigest()
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None


def store_source(source: str, store_dir: Path) -> Path:
    """Content-addressed copy: identical submissions share one file."""
    data = source.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    target = store_dir / digest[:2] / f"{digest}.py"
    if not target.exists():
        atomic_write_bytes(target, data)
    return target

