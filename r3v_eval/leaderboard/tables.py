"""Markdown tables of accuracies: one row per method (or run), one column per benchmark (or
iteration, or N), percent with one decimal; what leaderboards and learning curves print."""

from __future__ import annotations

from dataclasses import dataclass, field

DASH = "–"  # a cell with no number


@dataclass
class Table:
    title: str
    metric: str
    columns: list[str]  # benchmarks (without "avg"), iterations or N
    rows: list[tuple[str, str, list[float | None], float | None, int]]  # label, kind, cells, avg, n
    notes: list[str] = field(default_factory=list)
    delta: bool = False
    with_avg: bool = True      # an "avg" column (benchmarks); off for curves
    row_header: str = "method"

    def fmt(self, v: float | None) -> str:
        if v is None:
            return DASH
        if self.delta:
            r = round(v, 1)
            return f"{0.0:+.1f}" if r == 0 else f"{r:+.1f}"
        return f"{v:.1f}"

    def markdown(self) -> str:
        header = [self.row_header, *self.columns, *(["avg"] if self.with_avg else [])]
        body = []
        ncols = len(self.columns)
        for label, _kind, cells, avg, n in self.rows:
            partial = avg is not None and n < ncols
            tail = [self.fmt(avg) + ("*" if partial else "")] if self.with_avg else []
            body.append([label.replace("|", "\\|"), *(self.fmt(c) for c in cells), *tail])
        widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
                  for i, h in enumerate(header)]
        lines = ["| " + " | ".join(h.ljust(w) if i == 0 else h.rjust(w)
                                   for i, (h, w) in enumerate(zip(header, widths))) + " |",
                 "|" + "|".join(":" + "-" * (w + 1) if i == 0 else "-" * (w + 1) + ":"
                                for i, w in enumerate(widths)) + "|"]
        for r in body:
            lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                           for i, (c, w) in enumerate(zip(r, widths))) + " |")
        return "\n".join(lines)
