"""The paper's reported numbers (second-hand, from R3V.md) as leaderboard rows and a table."""

from __future__ import annotations

from r3v_eval.leaderboard.records import BENCHMARK_ORDER, Cell, LeaderboardError, Row
from r3v_eval.leaderboard.tables import DASH

SECOND_HAND = "(paper, 2nd-hand)"
# ------------------------------------------------------------------ the paper
#: Reported numbers (R3V.md, "Reported results"; marked there as secondary-source numbers).
PAPER = {
    "qwen-vl": {
        "backbone": "Qwen-VL",
        "per_task": {
            "GPT-distill": {"tabmwp": 62.30, "chartqa": 46.72, "clevr_math": 51.83,
                            "miniwob": 51.11, "geoqa": 31.43, "m3cot": 47.41},
            "R3V": {"tabmwp": 83.27, "chartqa": 57.36, "clevr_math": 68.81,
                    "miniwob": 82.89, "geoqa": 39.25, "m3cot": 54.66},
        },
        "avg6": {"zero-shot QA": 26.36, "zero-shot CoT": 25.80, "GPT-distill": 48.47,
                 "STaR": 59.28, "R3V": 64.37},
    },
    "llava": {
        "backbone": "LLaVA-1.5",
        "per_task": {},
        "avg6": {"zero-shot QA": 22.66, "zero-shot CoT": 19.37, "GPT-distill": 45.24,
                 "STaR": 55.81, "R3V": 59.03},
    },
}
REFERENCES = ("none", *PAPER)


def reference_rows(reference: str) -> list[Row]:
    """The paper's per-task numbers (percent) as rows, labelled as second-hand."""
    if reference in ("none", "", None):
        return []
    if reference not in PAPER:
        raise LeaderboardError(f"--reference {reference!r}: choose one of {', '.join(REFERENCES)}")
    ref = PAPER[reference]
    rows = []
    for method, per_task in ref["per_task"].items():
        cells = {b: Cell({"accuracy": v, "greedy": v}, "R3V.md") for b, v in per_task.items()}
        rows.append(Row(f"{method}, {ref['backbone']} {SECOND_HAND}", "reference", cells,
                        ["R3V.md"], percent=True))
    return rows


def reference_markdown(reference: str) -> str:
    if reference in ("none", "", None):
        return ""
    ref = PAPER[reference]
    lines = [f"## Paper reference: {ref['backbone']} {SECOND_HAND}", "",
             ("Reported numbers (Test@1, %) as R3V.md gives them; they come from secondary notes "
              "on the paper and were not checked against its tables."), ""]
    tasks = [b for b in BENCHMARK_ORDER if any(b in v for v in ref["per_task"].values())]
    header = ["method", *tasks, "six-task avg"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|:--|" + "--:|" * (len(header) - 1))
    for method, avg in ref["avg6"].items():
        per = ref["per_task"].get(method, {})
        cells = [f"{per[b]:.2f}" if b in per else DASH for b in tasks]
        lines.append("| " + " | ".join([method, *cells, f"{avg:.2f}"]) + " |")
    if not ref["per_task"]:
        lines += ["", (f"R3V.md gives no per-task numbers for {ref['backbone']}: only six-task "
                       "averages, so no paper row joins the tables above.")]
    return "\n".join(lines)
