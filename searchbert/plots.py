"""Pictures of evaluation results (matplotlib, behind the `plot` extra): what each search mode buys on a collection,
recall@k from 1 to 100 beside nDCG@10, on one chart."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidArgument, MissingExtra

if TYPE_CHECKING:
    from .evaluation import EvalResult

#: the formats a chart is written in, by the file's suffix
FORMATS = (".png", ".svg")


def plot_modes(compared: list[tuple[str, EvalResult, list[float]]], path: str | Path) -> Path:
    """Draw `evaluation.compare`'s results to `path` (.png or .svg): recall@k per mode on the left, nDCG@10 per
    mode on the right."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise InvalidArgument(f"a chart is written as {' or '.join(FORMATS)}, not {path.suffix or 'no suffix'!r}")
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as exc:
        raise MissingExtra("--plot needs matplotlib: pip install 'searchbert[plot]'") from exc

    first = compared[0][1]
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # an SVG's words stay text: searchable, readable
        figure, (curves, bars) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
        for label, _, recall in compared:
            curves.plot(range(1, len(recall) + 1), [100 * r for r in recall], label=label, linewidth=1.8)
        curves.set_xscale("log")
        curves.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())  # 1, 10, 100 rather than powers
        curves.set_xlabel("k (documents read)")
        curves.set_ylabel("recall@k (%)")
        curves.set_ylim(0, 100)
        curves.grid(True, which="both", alpha=0.3)
        curves.legend(loc="lower right")
        labels = [label for label, _, _ in compared]
        values = [100 * result.metrics["nDCG@10"] for _, result, _ in compared]
        drawn = bars.bar(range(len(values)), values, color=[f"C{i}" for i in range(len(values))])
        bars.bar_label(drawn, fmt="%.1f")
        bars.set_xticks(range(len(values)), labels, rotation=15)
        bars.set_ylabel("nDCG@10 (%)")
        bars.set_ylim(0, max(100.0, *values))
        figure.suptitle(f"{first.dataset} ({first.split}, {first.queries} queries), {first.model}")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)
        plt.close(figure)
    return path
