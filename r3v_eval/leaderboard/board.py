"""The leaderboard itself: tables per metric (and deltas against a baseline), learning curves
of runs, compute, and the Markdown / CSV / PNG outputs."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from r3v_eval.leaderboard.inputs import load_rows
from r3v_eval.leaderboard.paper import reference_markdown, reference_rows
from r3v_eval.leaderboard.records import (
    LeaderboardError,
    Row,
    family_n,
    normalize_metric,
    order_benchmarks,
    resolve_metric,
)
from r3v_eval.leaderboard.curves import (
    RunCurve,
    iteration_table,
    plot_iterations,
    plot_sweeps,
    read_curve,
    sweep_tables,
)
from r3v_eval.leaderboard.frontier import RunFrontier, frontier_table, plot_frontier, read_frontier
from r3v_eval.metric_names import FAMILIES, SAMPLED_FAMILIES, at, parse_at
from r3v_eval.leaderboard.tables import DASH, Table

FAMILY_TITLES = {"accuracy": "accuracy: each row's own answer",
                 "greedy": "greedy: chain-of-thought, Test@1",
                 "majority": "majority@N: majority vote over N samples",
                 "select": "select@N: test-time selection over N samples",
                 "pass": "pass@N: oracle, any of N samples correct"}


# ------------------------------------------------------------------ tables
def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def build_table(rows: Sequence[Row], metric: str, title: str) -> Table | None:
    kept = [r for r in rows if any(r.value(b, metric) is not None for b in r.cells)]
    if not kept:
        return None
    columns = order_benchmarks(b for r in kept for b in r.cells
                               if r.value(b, metric) is not None)
    table = Table(title, metric, columns, [])
    partial = False
    for r in kept:
        cells = [r.value(b, metric) for b in columns]
        present = [c for c in cells if c is not None]
        avg = _mean(present)
        partial |= len(present) < len(columns)
        table.rows.append((r.label, r.kind, cells, avg, len(present)))
    if partial:
        table.notes.append(f"{DASH} = not evaluated; it is left out of that row's average, so an "
                           "avg marked * covers only the benchmarks the row has.")
    return table


def delta_table(table: Table, baseline: str) -> Table:
    base = next(r for r in table.rows if r[0] == baseline)
    keep = [i for i, b in enumerate(base[2]) if b is not None]  # the baseline's benchmarks
    out = Table(f"Δ vs {baseline}: {table.metric}, percentage points", table.metric,
                [table.columns[i] for i in keep], [], delta=True)
    uneven = False
    apart = []
    for label, kind, cells, _avg, _n in table.rows:
        if label == baseline:
            continue
        deltas = [None if cells[i] is None else cells[i] - base[2][i] for i in keep]
        present = [d for d in deltas if d is not None]
        if not present:
            apart.append(label)
            continue
        uneven |= len(present) < len(table.columns)
        out.rows.append((label, kind, deltas, _mean(present), len(present)))
    out.notes.append("Deltas come from unrounded values; a row's avg delta is the mean of its "
                     "deltas over the benchmarks it shares with the baseline.")
    if uneven:
        out.notes.append(f"{DASH} = the row has no number there; an avg marked * covers only "
                         "the benchmarks it shares with the baseline.")
    if apart:
        out.notes.append(f"No benchmark in common with {baseline} (left out): "
                         + ", ".join(apart) + ".")
    return out


def find_row(rows: Sequence[Row], name: str) -> Row:
    """A row by exact label, else by a unique case-insensitive substring."""
    exact = [r for r in rows if r.label == name]
    if exact:
        return exact[0]
    hits = [r for r in rows if name.lower() in r.label.lower()]
    if len(hits) == 1:
        return hits[0]
    labels = ", ".join(repr(r.label) for r in rows)
    if not hits:
        raise LeaderboardError(f"--baseline {name!r}: no such row; rows: {labels}")
    raise LeaderboardError(f"--baseline {name!r} matches several rows: "
                           f"{', '.join(repr(r.label) for r in hits)}")


# ------------------------------------------------------------- leaderboard
@dataclass
class Leaderboard:
    main: Table
    delta: Table | None
    per_metric: list[Table]
    reference: str
    notes: list[str]
    rows: list[Row]
    curves: list[RunCurve] = field(default_factory=list)
    frontiers: list[RunFrontier] = field(default_factory=list)

    def tables(self) -> list[Table]:
        return [t for t in (self.main, self.delta, *self.per_metric) if t is not None]

    def curve_tables(self) -> list[Table]:
        return [t for t in (iteration_table(self.curves), frontier_table(self.frontiers),
                            *sweep_tables(self.curves))
                if t is not None]

    def markdown(self) -> str:
        parts = ["# R3V leaderboard", ""]
        for t in [*self.tables(), *self.curve_tables()]:
            parts += [f"## {t.title}", "", t.markdown(), ""]
            parts += [f"- {n}" for n in t.notes]
            if t.notes:
                parts.append("")
        ref = reference_markdown(self.reference)
        if ref:
            parts += [ref, ""]
        parts += compute_markdown(self.rows)
        row_notes = [f"{r.label}: {n}" for r in self.rows for n in r.notes]
        if self.notes or row_notes:
            parts += ["## Notes", ""] + [f"- {n}" for n in row_notes + self.notes] + [""]
        parts += ["## Sources", ""]
        for r in self.rows:
            if r.kind != "reference":
                parts.append(f"- {r.label}: " + ", ".join(f"`{s}`" for s in r.sources))
        return "\n".join(parts).rstrip() + "\n"

    def csv(self) -> str:
        """Every table, long and wide at once: one line per (table, row); percent, 2 decimals."""
        columns = order_benchmarks({c for t in self.tables() for c in t.columns})
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["table", "metric", "method", "kind", *columns, "avg", "n_benchmarks"])
        for t in self.tables():
            name = "delta" if t.delta else ("main" if t is self.main else "metric")
            for label, kind, cells, avg, n in t.rows:
                by = dict(zip(t.columns, cells))
                w.writerow([name, t.metric, label, kind,
                            *("" if by.get(c) is None else f"{by[c]:.2f}" for c in columns),
                            "" if avg is None else f"{avg:.2f}", n])
        return buf.getvalue()

    def plot(self, path: str | Path) -> Path:
        """A grouped bar plot of the main table (benchmarks and avg; paper rows hatched)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = self.main
        groups = [*t.columns, "avg"]
        nrows = len(t.rows)
        width = 0.8 / max(nrows, 1)
        fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 1.5 + len(groups) * (0.25 * nrows + 0.5))),
                                        4.8 + 0.22 * nrows))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (label, kind, cells, avg, _n) in enumerate(t.rows):
            values = [*cells, avg]
            xs = [g + (i - (nrows - 1) / 2) * width for g in range(len(groups))]
            heights = [0.0 if v is None else v for v in values]
            bars = ax.bar(xs, heights, width * 0.95, label=label, color=colors[i % len(colors)],
                          hatch="//" if kind == "reference" else None,
                          alpha=0.6 if kind == "reference" else 1.0)
            if nrows * len(groups) <= 40:
                marks = [""] * len(cells) + ["*" if avg is not None and _n < len(cells) else ""]
                for bar, v, mark in zip(bars, values, marks):
                    ax.annotate(DASH if v is None else f"{v:.1f}{mark}",
                                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(f"{t.metric} (%)")
        ax.set_ylim(0, max(100.0, *(v for r in t.rows for v in (*r[2], r[3]) if v is not None)) * 1.05)
        ax.set_title(f"R3V leaderboard: {t.metric}"
                     + (f"  ({DASH} not evaluated; * avg over the row's benchmarks only)"
                        if any(r[4] < len(t.columns) for r in t.rows) else ""), fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08),
                  ncol=min(3, max(1, nrows)), frameon=False)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


#: r3v runs' training cost (metrics.json "compute", written by r3v_train/compute.py)
COMPUTE_COLUMNS = {"generated_samples": "generated samples", "generated_tokens": "generated tokens",
                   "optimizer_steps": "optimizer steps"}


def compute_markdown(rows: Sequence[Row]) -> list[str]:
    """A "Training compute" section (one line per run row and benchmark), or nothing."""
    lines = [f"| {r.label} | {bench} | " + " | ".join(
        f"{c.compute[k]:,}" if isinstance(c.compute.get(k), int) else DASH for k in COMPUTE_COLUMNS)
        + " |" for r in rows for bench, c in sorted(r.cells.items()) if c.compute]
    if not lines:
        return []
    return ["## Training compute", "",
            "Replies generated for training (offline pool, the shared iteration-0 samples included, "
            "or on-policy groups), their tokens, and the optimizer steps of the run's own training "
            "stages (a warm-up shared through run.warmup_from is counted once, in its own row); "
            "evaluation not counted.",
            "", "| method | benchmark | " + " | ".join(COMPUTE_COLUMNS.values()) + " |",
            "|:--|:--|" + "--:|" * len(COMPUTE_COLUMNS), *lines, ""]


def build_leaderboard(paths: Sequence[str | Path], *, baseline: str | None = None,
                      reference: str = "none", metric: str = "accuracy") -> Leaderboard:
    rows, notes = load_rows(paths)
    metric = normalize_metric(metric)
    refs = reference_rows(reference)
    family = metric.split("@")[0]
    paper_applies = metric in ("accuracy", "greedy")
    if refs and not paper_applies:
        notes.append(f"the paper rows are Test@1 (greedy) numbers, so they are left out of the "
                     f"{metric} tables")
    main_rows = rows + (refs if paper_applies else [])
    if refs and paper_applies:  # keep the paper rows to the benchmarks the inputs have
        ours = {b for r in rows for b in r.cells if r.value(b, metric) is not None}
        trimmed = []
        for r in refs:
            cells = {b: c for b, c in r.cells.items() if b in ours}
            if cells:
                trimmed.append(Row(r.label, r.kind, cells, r.sources, percent=True))
        if not trimmed:
            notes.append("no input benchmark overlaps the paper's tasks: the paper's numbers are "
                         "only in the paper-reference table")
        main_rows = rows + trimmed
    title = FAMILY_TITLES.get(family, metric)
    if "@" in metric:  # an exact N: "majority@3: majority vote over N samples"
        title = metric + title[title.index(":"):]
    main = build_table(main_rows, at_common_n(rows, metric), f"{title} (%)")
    if main is None:
        available = sorted({k for r in rows for k in r.metric_names()})
        raise LeaderboardError(f"--metric {metric!r}: no input has it; available: "
                               f"{', '.join(available)}")
    if metric == "accuracy":
        used: dict[str, set[str]] = {}
        for r in rows:
            for c in r.cells.values():
                if c.own and "accuracy" in c.metrics:
                    used.setdefault(r.label, set()).add(c.own)
        if len({o for v in used.values() for o in v}) > 1:
            main.notes.append("accuracy is each row's own answer: " + "; ".join(
                f"{label} = {'/'.join(sorted(v))}" for label, v in used.items()))
    _note_n(main, rows, family)
    delta = None
    if baseline is not None:
        base = find_row(main_rows, baseline)
        if base.label not in [r[0] for r in main.rows]:
            raise LeaderboardError(f"--baseline {baseline!r}: row {base.label!r} has no "
                                   f"{metric} numbers")
        if len(main.rows) > 1:
            delta = delta_table(main, base.label)
        else:
            notes.append(f"--baseline {base.label!r} is the only row: no deltas to show")
    families = [f for f in FAMILIES if any(resolve_metric(c.metrics, f) is not None
                                           for r in rows for c in r.cells.values())]
    per_metric = []
    if len(families) > 1:
        for f in families:
            if f == family:
                continue
            t = build_table(rows, at_common_n(rows, f), f"{FAMILY_TITLES[f]} (%)")
            if t is not None:
                _note_n(t, rows, f)
                per_metric.append(t)
    return Leaderboard(main, delta, per_metric, reference, notes, rows + refs, run_curves(rows),
                       run_frontiers(rows))


def _run_sources(rows: Sequence[Row]) -> list[tuple[Path, str]]:
    """The run folders among ``rows`` with their labels (a row's label, plus the folder's
    name when the row has several)."""
    out = []
    for r in rows:
        if r.kind != "run":
            continue
        for src in r.sources:
            out.append((Path(src), r.label if len(r.sources) == 1 else f"{r.label} [{Path(src).name}]"))
    return out


def run_curves(rows: Sequence[Row]) -> list[RunCurve]:
    """The learning curves of the finished runs among ``rows``, labelled as their rows."""
    return [c for src, label in _run_sources(rows) if (c := read_curve(src, label)) is not None]


def run_frontiers(rows: Sequence[Row]) -> list[RunFrontier]:
    """Accuracy per difficulty level of the runs among ``rows`` whose outcomes carry levels."""
    return [f for src, label in _run_sources(rows) if (f := read_frontier(src, label)) is not None]


def at_common_n(rows: Sequence[Row], metric: str) -> str:
    """A family (``majority``) -> ``majority@N`` at the largest N that every row reporting the
    family has (rows evaluated at N = 1, 3, 5 and at N = 3 compare at 3); the family as it is
    when there is no such N (each row then shows its largest N, and a note says so)."""
    if metric not in SAMPLED_FAMILIES:
        return metric
    common: set[int] | None = None
    for r in rows:
        for c in r.cells.values():
            ns = {p[1] for p in map(parse_at, c.metrics) if p and p[0] == metric}
            if ns:
                common = ns if common is None else common & ns
    return at(metric, max(common)) if common else metric


def _note_n(table: Table, rows: Sequence[Row], family: str) -> None:
    if family not in SAMPLED_FAMILIES:
        return
    if "@" in table.metric:  # one N for every row
        table.notes.append(f"N = {table.metric.split('@')[1]} samples per question.")
        return
    ns = {}
    for r in rows:
        for c in r.cells.values():
            n = family_n(c.metrics, family)
            if n is not None and r.label in [x[0] for x in table.rows]:
                ns.setdefault(r.label, set()).add(n)
    if len({n for v in ns.values() for n in v}) > 1:
        table.notes.append("N differs between rows: " + "; ".join(
            f"{label}: N={'/'.join(map(str, sorted(v)))}" for label, v in ns.items()))
    elif ns:
        table.notes.append(f"N = {next(iter(next(iter(ns.values()))))} samples per question.")


def write_outputs(board: Leaderboard, out: str | Path | None) -> list[Path]:
    """Markdown to ``out`` (or stdout when None) plus ``out``.csv and ``out``.png, and for run
    folders ``out``_per_iteration.png and ``out``_select_vs_majority.png."""
    text = board.markdown()
    if out is None:
        print(text, end="")
        return []
    out = Path(out)
    if out.suffix.lower() in (".csv", ".png"):
        raise LeaderboardError(f"--out {out}: give the Markdown file (e.g. {out.with_suffix('.md')}); "
                               "the .csv and .png are written next to it")
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    csv_path = out.with_suffix(".csv")
    csv_path.write_text(board.csv(), encoding="utf-8")
    written = [out, csv_path, board.plot(out.with_suffix(".png"))]
    if iteration_table(board.curves) is not None:
        written.append(plot_iterations(board.curves, out.with_name(out.stem + "_per_iteration.png")))
    if frontier_table(board.frontiers) is not None:
        written.append(plot_frontier(board.frontiers, out.with_name(out.stem + "_frontier.png")))
    if sweep_tables(board.curves):
        written.append(plot_sweeps(board.curves, out.with_name(out.stem + "_select_vs_majority.png")))
    return written


def run_leaderboard(paths: Sequence[str | Path], *, out: str | Path | None = None,
                    baseline: str | None = None, reference: str = "none",
                    metric: str = "accuracy") -> Leaderboard:
    board = build_leaderboard(paths, baseline=baseline, reference=reference, metric=metric)
    written = write_outputs(board, out)
    for p in written:
        print(f"wrote {p}")
    return board
