"""Plots for feedback, class and instructor pages, drawn with matplotlib and returned as inline SVG strings.

Every function here is pure and deterministic: the same input gives a byte-identical SVG (fixed hash
salt, no dates, fixed sizes), and the result is cached per input. matplotlib is imported on first use
and never through pyplot (no GUI backend, no global figure state). Colours are the Okabe–Ito palette
and a single-hue sequential map, so the plots read the same with colour-vision deficiencies; series
also differ by marker and line style. The SVG is meant to be pasted into HTML: no XML prolog, no
namespace or external URLs, a <title> and <desc> for screen readers, ids unique to each plot.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from grader.errors import GraderError
from grader.results import EpochRecord
from grader.scoring import Breakdown, ClassScore, Metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Okabe & Ito (2008), "Color Universal Design": distinguishable with all common colour-vision deficiencies.
BLUE = "#0072B2"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
GREEN = "#009E73"
SKY = "#56B4E9"
PURPLE = "#CC79A7"
GREY = "#6E6E6E"
HEATMAP = "Blues"  # one hue, luminance rising monotonically: readable in grey and with any colour deficiency

CACHE_SIZE = 128
FONT = "'DejaVu Sans', Verdana, Arial, sans-serif"
_RC: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, readable by screen readers and tests
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # the metrics layout uses; bundled with matplotlib
    "font.size": 13,
    "axes.titlesize": 15,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.8,
    "text.parse_math": False,  # a '$' in a name is a dollar sign, not mathtext
    "svg.image_inline": True,
}

_cache: OrderedDict[str, str] = OrderedDict()
_lock = threading.Lock()  # rcParams are global, so one figure is drawn at a time


class _Drawn(NamedTuple):
    figure: Figure
    title: str
    desc: str
    # extra SVG text as (x, y as figure fractions, text, style): cheaper than n² matplotlib Text artists
    labels: tuple[tuple[float, float, str, str], ...] = ()


class ClassPoint(NamedTuple):
    """One dot of the class picture: a participant's best submission or a reference solution."""

    label: str
    params: int | None
    accuracy: float | None
    is_reference: bool = False


# ------------------------------------------------------------------------------------------------
# plumbing: cache, rendering, SVG clean-up
# ------------------------------------------------------------------------------------------------


def _key(kind: str, payload: Any) -> str:
    raw = json.dumps([kind, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def _cached(kind: str, payload: Any, draw: Callable[[Any], _Drawn]) -> str:
    """The SVG for (kind, payload), drawn by `draw(payload)` on a miss."""
    plot_id = f"{kind}-{_key(kind, payload)}"
    with _lock:
        hit = _cache.get(plot_id)
        if hit is not None:
            _cache.move_to_end(plot_id)
            return hit
        mpl = _matplotlib()
        with mpl.rc_context({**_RC, "svg.hashsalt": plot_id}):
            svg = _svg(draw(payload), plot_id)
        _cache[plot_id] = svg
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return svg


def cache_clear() -> None:
    with _lock:
        _cache.clear()


def cache_size() -> int:
    return len(_cache)


def _matplotlib() -> Any:
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import matplotlib
    except ImportError:
        raise GraderError("plots need matplotlib", hint="pip install 'keras-grader[server]'") from None
    return matplotlib


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=96, layout="constrained")


_HEAD = re.compile(r"\A.*?<svg\b[^>]*?\bviewBox=\"([^\"]+)\"[^>]*>", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_STYLE = re.compile(r"\s*<style type=\"text/css\">.*?</style>", re.S)
_REFERENCED = re.compile(r"(?:href=\"#|url\(#)([^\")]+)")
_ID = re.compile(r" id=\"([^\"]+)\"")
_FONT = re.compile(r"; font-family: [^;\"]*")


def _svg(drawn: _Drawn, plot_id: str) -> str:
    import io

    buf = io.StringIO()
    drawn.figure.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    raw = buf.getvalue()
    head = _HEAD.match(raw)
    if head is None:  # pragma: no cover - matplotlib always writes a viewBox
        raise GraderError("matplotlib wrote an SVG without a viewBox")
    body = raw[head.end():]
    body = _METADATA.sub("", body)
    body = _STYLE.sub("", body)
    body = body.replace("xlink:href=", "href=")  # SVG 2: no xlink namespace needed inline
    referenced = set(_REFERENCED.findall(body))
    # matplotlib's generic ids (figure_1, axes_1, text_3 ...) would repeat across plots on one page
    body = _ID.sub(lambda m: m.group(0) if m.group(1) in referenced or m.group(1).startswith(plot_id) else "", body)
    body = _FONT.sub("", body)
    body = re.sub(r"[ \t]*\n[ \t]*", "\n", body).replace(" \n", " ").replace("\nL", " L").replace("\nz", " z")
    esc = html.escape
    width, height = (float(v) for v in head.group(1).split()[2:])
    if drawn.labels:
        texts = "".join(f'<text x="{fx * width:.2f}" y="{(1 - fy) * height:.2f}" style="{style}">{esc(text)}</text>\n'
                        for fx, fy, text, style in drawn.labels)
        body = body.replace("</svg>", f'<g text-anchor="middle" dominant-baseline="central">\n{texts}</g>\n</svg>')
    title, desc = drawn.title, drawn.desc
    kind = plot_id.rsplit("-", 1)[0]
    return (f'<svg class="plot plot-{kind}" id="{plot_id}" viewBox="{head.group(1)}" role="img" '
            f'aria-labelledby="{plot_id}-title {plot_id}-desc" style="font-family: {FONT}; '
            'stroke-linejoin: round; stroke-linecap: butt">\n'
            f'<title id="{plot_id}-title">{esc(title)}</title>\n<desc id="{plot_id}-desc">{esc(desc)}</desc>\n'
            f"{body.strip()}\n")


def _percent_axis(axis: Any) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def _count(x: float, _pos: Any = None) -> str:
    """1500 → 1.5k, 2000000 → 2M: parameter counts as people say them."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color=GREY, fontsize=14)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


# ------------------------------------------------------------------------------------------------
# learning curves
# ------------------------------------------------------------------------------------------------

_SERIES = (("loss", "training", BLUE, "-", "o"), ("val_loss", "validation", ORANGE, "--", "s"),
           ("accuracy", "training", BLUE, "-", "o"), ("val_accuracy", "validation", ORANGE, "--", "s"))


def learning_curves(history: Sequence[EpochRecord | Mapping[str, Any]], *, title: str = "Learning curves") -> str:
    """Loss (left) and accuracy (right) per epoch, training solid with circles, validation dashed with squares.

    Each line is an SVG group with id `<plot id>-<field>` (e.g. `…-val_loss`) holding one marker per epoch.

    Raises:
        ValueError: no epoch has a loss or an accuracy.
    """
    rows = _curve_rows(history)
    if not any(v is not None for r in rows for v in r[1:]):
        raise ValueError("no epoch with a loss or an accuracy to plot")
    return _cached("curves", {"rows": rows, "title": title}, _draw_curves)


def has_curves(history: Sequence[EpochRecord | Mapping[str, Any]]) -> bool:
    """Whether learning_curves has anything to draw."""
    return any(v is not None for r in _curve_rows(history) for v in r[1:])


def _curve_rows(history: Sequence[EpochRecord | Mapping[str, Any]]) -> list[list[Any]]:
    return sorted(([int(_field(r, "epoch")), *(_num(_field(r, f)) for f, *_ in _SERIES)] for r in history),
                  key=lambda r: int(r[0]))


def _num(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), 6)


def _draw_curves(p: dict[str, Any]) -> _Drawn:
    from matplotlib.ticker import MaxNLocator

    rows = p["rows"]
    plot_id = _matplotlib().rcParams["svg.hashsalt"]
    fig = _figure(10, 4.2)
    loss_ax, acc_ax = fig.subplots(1, 2)
    final: dict[str, float] = {}
    for col, (field, label, colour, style, marker) in enumerate(_SERIES, start=1):
        points = [(r[0], r[col]) for r in rows if r[col] is not None]
        if not points:
            continue
        ax = loss_ax if "loss" in field else acc_ax
        (line,) = ax.plot([x for x, _ in points], [y for _, y in points], linestyle=style, marker=marker,
                          color=colour, label=label, linewidth=2.2, markersize=6)
        line.set_gid(f"{plot_id}-{field}")
        final[field] = points[-1][1]
    epochs = [r[0] for r in rows]
    for ax, name in ((loss_ax, "Loss"), (acc_ax, "Accuracy")):
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if len(epochs) <= 15:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        if ax.lines:
            ax.legend(frameon=False)
        else:
            _empty(ax, f"no {name.lower()} recorded")
    accs = [v for r in rows for v in (r[3], r[4]) if v is not None]
    if accs:
        _percent_axis(acc_ax.yaxis)
        acc_ax.set_ylim(max(0.0, min(accs) - 0.05), min(1.0, max(accs) + 0.03) + 0.005)
    if any(r[1] is not None or r[2] is not None for r in rows):
        loss_ax.set_ylim(bottom=0)
    parts = [f"{len(rows)} epoch{'s' if len(rows) != 1 else ''}."]
    for field, words in (("loss", "training loss"), ("val_loss", "validation loss")):
        if field in final:
            parts.append(f"Final {words} {final[field]:.3f}.")
    for field, words in (("accuracy", "training accuracy"), ("val_accuracy", "validation accuracy")):
        if field in final:
            parts.append(f"Final {words} {_pct(final[field])}.")
    return _Drawn(fig, p["title"], " ".join(parts))


# ------------------------------------------------------------------------------------------------
# confusion matrix and per-class accuracy
# ------------------------------------------------------------------------------------------------


def _names(metrics: Metrics | Breakdown) -> list[str]:
    by_label = {c.label: c.name for c in metrics.per_class}
    return [by_label.get(label, str(label)) for label in metrics.labels]


def confusion_matrix(metrics: Metrics | Breakdown, *, title: str = "Confusion matrix") -> str:
    """Heat map of the confusion matrix (rows: true class, columns: predicted), the count written in each cell.

    The colour is the share of the true class (row-normalised), so small classes show as clearly as big ones.

    Raises:
        ValueError: the matrix is empty or not square over `labels`.
    """
    conf = [[int(v) for v in row] for row in metrics.confusion]
    n = len(metrics.labels)
    if not conf or len(conf) != n or any(len(row) != n for row in conf):
        raise ValueError("the confusion matrix is empty or does not match its labels")
    return _cached("confusion", {"names": _names(metrics), "conf": conf, "title": title}, _draw_confusion)


def _draw_confusion(p: dict[str, Any]) -> _Drawn:
    import numpy as np

    names, conf = p["names"], np.array(p["conf"], dtype=np.int64)
    n = len(names)
    rows = conf.sum(axis=1, keepdims=True)
    rates = np.divide(conf, rows, out=np.zeros(conf.shape, dtype=float), where=rows > 0)
    side = min(9.5, max(5.5, 0.3 * n + 2.8))
    fig = _figure(side + 1.0, side)
    ax = fig.subplots()
    image = ax.imshow(rates, cmap=HEATMAP, vmin=0.0, vmax=1.0, interpolation="none", aspect="equal")
    ax.set_xticks(range(n), names, rotation=0 if max(map(len, names)) <= 2 else 45,
                  ha="center" if max(map(len, names)) <= 2 else "right", rotation_mode="anchor")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(p["title"])
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    bar = fig.colorbar(image, ax=ax, shrink=0.75, label="share of the true class")
    _percent_axis(bar.ax.yaxis)
    # the counts are SVG text placed after layout: n² matplotlib Text artists take seconds to draw (ASL: 576)
    fig.draw_without_rendering()
    fig.set_layout_engine(None)  # laid out: savefig need not measure everything again
    to_figure = ax.transData + fig.transFigure.inverted()
    size = 13 if n <= 10 else 11 if n <= 16 else 9.5
    labels = []
    for i in range(n):
        for j in range(n):
            count = int(conf[i, j])
            colour = "#ffffff" if rates[i, j] > 0.55 else ("#000000" if count else GREY)
            weight = "; font-weight: bold" if i == j and count else ""
            fx, fy = (float(v) for v in to_figure.transform((j, i)))
            labels.append((fx, fy, str(count), f"font-size: {size}px; fill: {colour}{weight}"))
    total, correct = int(conf.sum()), int(np.trace(conf))
    off = conf.copy()
    np.fill_diagonal(off, 0)
    desc = f"Rows are the true class, columns the predicted class; {total} images, {correct} on the diagonal (correct)."
    if off.any():
        i, j = divmod(int(np.argmax(off)), n)
        desc += f" Most frequent mistake: {names[i]} predicted as {names[j]} ({int(off[i, j])} images)."
    return _Drawn(fig, p["title"], desc, tuple(labels))


def per_class_accuracy(scores: Metrics | Breakdown | Sequence[ClassScore], *,
                       title: str = "Accuracy per class") -> str:
    """Horizontal bars of accuracy per class with the support; the three weakest classes hatched in vermillion.

    Raises:
        ValueError: no classes.
    """
    per_class = scores.per_class if isinstance(scores, Metrics | Breakdown) else list(scores)
    if not per_class:
        raise ValueError("no per-class accuracy to plot")
    rows = [[c.name, round(float(c.accuracy), 6), int(c.support)] for c in per_class]
    return _cached("perclass", {"rows": rows, "title": title}, _draw_per_class)


def _draw_per_class(p: dict[str, Any]) -> _Drawn:
    rows = p["rows"]
    n = len(rows)
    # short names (ASL letters, digits) read best as columns; long ones (Fashion-MNIST) as rows
    upright = max(len(r[0]) for r in rows) <= 3
    fig = _figure(10, 4.6) if upright else _figure(10, min(9.0, 0.42 * n + 1.6))
    ax = fig.subplots()
    order = sorted((i for i, r in enumerate(rows) if r[2]), key=lambda i: (rows[i][1], i))
    weakest = set(order[:3])
    xs = list(range(n))
    accs = [r[1] for r in rows]
    colours = [VERMILLION if i in weakest else BLUE for i in xs]
    bars = (ax.bar if upright else ax.barh)(xs, accs, 0.72, color=colours)
    for i, patch in enumerate(bars):
        if i in weakest:
            patch.set_hatch("//")
            patch.set_edgecolor("#ffffff")
    font = 12 if n <= 12 else 10
    value_axis = ax.yaxis if upright else ax.xaxis
    for i, (_name, acc, support) in enumerate(rows):
        if upright:
            ax.text(i, acc + 0.015, f"{acc:.0%}" if support else "–", ha="center", va="bottom", fontsize=font,
                    rotation=90 if n > 12 else 0, color="#222222")
        else:
            ax.text(acc + 0.01, i, f"{acc:.0%}  (n={support})" if support else "no images", va="center", ha="left",
                    fontsize=font, color="#222222")
    names = [r[0] for r in rows]
    if upright:
        ax.set_xticks(xs, names, fontsize=font + 1)
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_ylim(0, 1.16)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.grid(axis="x", visible=False)
    else:
        ax.set_yticks(xs, names, fontsize=font + 1)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.24)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.grid(axis="y", visible=False)
    _percent_axis(value_axis)
    total = sum(r[2] for r in rows)
    overall = sum(r[1] * r[2] for r in rows) / total if total else None
    if overall is not None:
        (ax.axhline if upright else ax.axvline)(overall, color=GREY, linestyle=":", linewidth=1.8,
                                                label=f"overall {overall:.1%}")
    handles = [*ax.get_lines(), *([bars[order[0]]] if order else [])]
    labels = [*(str(ln.get_label()) for ln in ax.get_lines()), *(["weakest classes"] if order else [])]
    fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False, fontsize=font + 1)
    ax.set_title(p["title"])
    weak = [rows[i] for i in order[:3]]
    desc = f"{n} classes, overall {_pct(overall)}."
    if weak:
        desc += " Weakest: " + ", ".join(f"{r[0]} {r[1]:.0%}" for r in weak) + "."
    return _Drawn(fig, p["title"], desc)


# ------------------------------------------------------------------------------------------------
# the class picture and the score distribution
# ------------------------------------------------------------------------------------------------


def class_picture(points: Sequence[ClassPoint | tuple[str, int | None, float | None, bool]], *,
                  highlight: str | None = None, title: str = "Accuracy vs parameters") -> str:
    """Accuracy against parameter count (log scale): one dot per participant's best, references labelled.

    Points without a positive parameter count or an accuracy are left out. `highlight` marks one
    participant's point (their own page). Participants are not named on the picture, so it can be projected.
    """
    clean = sorted({(str(p.label), int(p.params), round(float(p.accuracy), 6), bool(p.is_reference))
                    for p in (ClassPoint(*pt) for pt in points)
                    if p.params is not None and p.params > 0 and p.accuracy is not None and math.isfinite(p.accuracy)})
    mine = highlight if highlight is not None and any(not p[3] and p[0] == highlight for p in clean) else None
    return _cached("class", {"points": [list(p) for p in clean], "highlight": mine, "title": title}, _draw_class)


def _draw_class(p: dict[str, Any]) -> _Drawn:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = p["points"]
    fig = _figure(10, 5.6)
    ax = fig.subplots()
    ax.set_title(p["title"])
    people = [q for q in points if not q[3] and q[0] != p["highlight"]]
    refs = [q for q in points if q[3]]
    mine = [q for q in points if not q[3] and q[0] == p["highlight"]]
    if not points:
        _empty(ax, "no graded submissions yet")
        return _Drawn(fig, p["title"], "No graded submissions yet.")
    if people:
        ax.scatter([q[1] for q in people], [q[2] for q in people], s=70, color=BLUE, alpha=0.75, marker="o",
                   edgecolors="#ffffff", linewidths=0.8, label=f"participants' best ({len(people) + len(mine)})")
    if mine:
        ax.scatter([q[1] for q in mine], [q[2] for q in mine], s=260, color=ORANGE, marker="*", edgecolors="#000000",
                   linewidths=1.0, label="you", zorder=4)
    if refs:
        ax.scatter([q[1] for q in refs], [q[2] for q in refs], s=110, color=VERMILLION, marker="D",
                   edgecolors="#000000", linewidths=1.0, label="references", zorder=3)
        for k, (name, params, acc, _) in enumerate(refs):
            ax.annotate(name, (params, acc), xytext=(9, 9 if k % 2 == 0 else -16), textcoords="offset points",
                        fontsize=12, fontweight="bold", color="#000000")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_major_formatter(FuncFormatter(_count))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("accuracy")
    accs = [q[2] for q in points]
    ax.set_ylim(max(0.0, min(accs) - 0.04), min(1.0, max(accs) + 0.03) + 0.005)
    params = [q[1] for q in points]
    ax.set_xlim(min(params) / 2.0, max(params) * 2.0)
    _percent_axis(ax.yaxis)
    fig.legend(loc="outside lower center", ncols=3, frameon=False)
    best = max(points, key=lambda q: (q[2], -q[1]))
    desc = (f"{len(people) + len(mine)} participants and {len(refs)} references. Highest accuracy {_pct(best[2])} "
            f"with {best[1]:,} parameters.")
    if refs:
        desc += " References: " + ", ".join(f"{q[0]} {_pct(q[2])} with {q[1]:,} parameters" for q in refs) + "."
    return _Drawn(fig, p["title"], desc)


def score_histogram(scores: Sequence[float], max_score: float, *, bins: int | None = None,
                    title: str = "Score distribution") -> str:
    """Histogram of scores from 0 to `max_score` with the count on each bar and the median marked."""
    values = sorted(round(min(max(float(s), 0.0), float(max_score)), 6) for s in scores if math.isfinite(float(s)))
    if bins is None:
        whole = float(max_score).is_integer() and max_score <= 20
        bins = int(max_score) if whole and max_score >= 4 else 10
    return _cached("scores", {"values": values, "max": float(max_score), "bins": max(1, int(bins)), "title": title},
                   _draw_scores)


def _draw_scores(p: dict[str, Any]) -> _Drawn:
    import statistics

    from matplotlib.ticker import MaxNLocator

    values, top, bins = p["values"], p["max"], p["bins"]
    fig = _figure(10, 4.4)
    ax = fig.subplots()
    ax.set_title(p["title"])
    if not values or top <= 0:
        _empty(ax, "no scores yet")
        return _Drawn(fig, p["title"], "No scores yet.")
    edges = [top * i / bins for i in range(bins + 1)]
    raw_counts, _, _ = ax.hist(values, bins=edges, color=BLUE, edgecolor="#ffffff", linewidth=1.2)
    counts = [int(c) for c in raw_counts]
    for i, count in enumerate(counts):
        if count:
            ax.text((edges[i] + edges[i + 1]) / 2, count, str(count), ha="center", va="bottom", fontsize=12)
    median = statistics.median(values)
    ax.axvline(median, color=VERMILLION, linestyle="--", linewidth=2.2)
    ax.set_ylim(0, max(counts) * 1.22)
    ax.text(median, max(counts) * 1.2, f" median {median:.3g}", color=VERMILLION, ha="left", va="top", fontsize=13,
            fontweight="bold")
    ax.set_xlim(0, top)
    ax.set_xlabel(f"score (out of {top:g})")
    ax.set_ylabel("participants")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", visible=False)
    mean = sum(values) / len(values)
    desc = (f"{len(values)} scores out of {top:g}: median {median:.3g}, mean {mean:.3g}, lowest {values[0]:.3g}, "
            f"highest {values[-1]:.3g}.")
    return _Drawn(fig, p["title"], desc)
