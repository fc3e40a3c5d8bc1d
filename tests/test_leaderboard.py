"""``r3v leaderboard``: lmms-eval result files, r3v run folders (train and demo) -> Markdown /
CSV / PNG tables. Hand-written inputs copy the structure of real files (a real lmms-eval run
on ``r3v_shapes`` is checked once, in the slow test at the end)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from r3v_eval.leaderboard import (
    DASH,
    LeaderboardError,
    adapter_name,
    build_leaderboard,
    normalize_metric,
    parse_model_args,
    write_outputs,
)
from r3v_train.cli import main as cli_main

from helpers import run_folder

VENV_BIN = Path(sys.executable).parent


# ------------------------------------------------------------------ inputs
def lmms_result(out: Path, model: str, model_args: str, scores: dict[str, dict[str, float]],
                date: str = "20261122_053527", limit: int | None = None) -> Path:
    """A results file shaped like lmms-eval 0.7.3's (see the slow test for the real one):
    ``<output_path>/<model_name_sanitized>/<date>_results.json``."""
    results, configs, n_samples, hib = {}, {}, {}, {}
    for task, metrics in scores.items():
        res = {"alias": task}
        for name, value in metrics.items():
            res[f"{name},none"] = value
            res[f"{name}_stderr,none"] = 0.01
            res[f"{name}_stderr_clt,none"] = 0.01
            res[f"{name}_stderr_clustered,none"] = "N/A"
        results[task] = res
        configs[task] = {"task": task, "output_type": "generate_until",
                         "generation_kwargs": {"until": ["<|im_end|>"]}}
        n_samples[task] = {"original": 500, "effective": limit or 500}
        hib[task] = {name: True for name in metrics}
    pretrained = parse_model_args(model_args).get("pretrained", "m")
    data = {
        "results": results, "group_subtasks": {t: [] for t in scores}, "configs": configs,
        "versions": {t: 1.0 for t in scores}, "n-shot": {t: 0 for t in scores},
        "higher_is_better": hib, "n-samples": n_samples,
        "config": {"model": model, "model_args": model_args,
                   "model_backend": "r3v_eval.lmms.models.X (simple)", "batch_size": "2",
                   "batch_sizes": [], "device": None, "limit": None if limit is None else float(limit),
                   "gen_kwargs": "", "random_seed": 0},
        "git_hash": "6484f78", "date": date, "model_source": model, "model_name": pretrained,
        "model_name_sanitized": pretrained.strip("/").replace("/", "__"),
        "total_evaluation_time_seconds": "3.4",
    }
    folder = out / data["model_name_sanitized"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{date}_results.json"
    assert not path.exists(), f"test data clash: {path}"
    path.write_text(json.dumps(data, indent=2))
    return path


def table_lines(markdown: str, title_start: str) -> dict[str, list[str]]:
    """The table under the '## <title_start>...' heading: {row label: [cells]} plus 'method'."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## " + title_start))
    start = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if set(cells[0]) <= set(":-|"):
            continue
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def two_models(tmp_path):
    out = tmp_path / "lmms"
    lmms_result(out, "r3v_cot", "pretrained=/m/qwen2vl,max_new_tokens=384,device=cuda",
                {"r3v_chartqa": {"accuracy": 0.4683}, "r3v_tabmwp": {"accuracy": 0.61}})
    lmms_result(out, "r3v_select", "pretrained=/m/qwen2vl,n=3,device=cuda",
                {"r3v_chartqa": {"accuracy": 0.5, "select_at_n": 0.5, "majority_at_n": 0.48,
                                 "pass_at_n": 0.7}},
                date="20261122_060000")
    return out


# ------------------------------------------------------------------ helpers
def test_parse_model_args_and_adapter_names():
    assert parse_model_args("pretrained=/a/b,n=3, adapter = x ") == \
        {"pretrained": "/a/b", "n": "3", "adapter": "x"}
    assert parse_model_args({"n": 3}) == {"n": "3"}
    assert adapter_name("runs/chartqa_r3v/iter_4/model") == "chartqa_r3v/iter_4"
    assert adapter_name("runs/chartqa_star/iter_2/dpo_model") == "chartqa_star/iter_2/dpo_model"
    assert adapter_name("/out/checkpoint-50/") == "out/checkpoint-50"
    assert adapter_name("my-lora") == "my-lora"
    assert normalize_metric("majority_at_n") == "majority"
    assert normalize_metric("Select@5") == "select@5"
    assert normalize_metric("Test@1") == "greedy"
    assert normalize_metric("relaxed_overall") == "relaxed_overall"


# ------------------------------------------------------------- lmms results
def test_lmms_rows_columns_and_cells(two_models):
    board = build_leaderboard([two_models])
    md = board.markdown()
    main = table_lines(md, "accuracy:")
    assert main["method"] == ["tabmwp", "chartqa", "avg"]  # the paper's column order, r3v_ gone
    assert main["r3v_cot"] == ["61.0", "46.8", "53.9"]  # (61 + 46.83) / 2 = 53.915
    assert main["r3v_select(n=3)"] == [DASH, "50.0", "50.0*"]
    assert "left out of that row's average" in md and "avg marked *" in md
    assert "r3v_cot = greedy" in md and "r3v_select(n=3) = select@3" in md
    # several metrics: one table each (greedy / majority@N / select@N / pass@N)
    assert table_lines(md, "greedy:")["r3v_cot"] == ["61.0", "46.8", "53.9"]
    assert table_lines(md, "majority@N:")["r3v_select(n=3)"] == ["48.0", "48.0"]
    assert table_lines(md, "pass@N")["r3v_select(n=3)"] == ["70.0", "70.0"]
    assert "r3v_cot" not in table_lines(md, "pass@N")
    assert "N = 3 samples per question." in md


def test_one_row_across_files_newest_duplicate_wins(tmp_path):
    out = tmp_path / "lmms"
    lmms_result(out / "a", "r3v_cot", "pretrained=/m/q,device=cuda:0", {"r3v_chartqa": {"accuracy": 0.1}},
                date="20260101_000000")
    lmms_result(out / "b", "r3v_cot", "pretrained=/m/q,device=cpu,batch_size=8",
                {"r3v_geoqa": {"accuracy": 0.2}}, date="20260102_000000")
    lmms_result(out / "c", "r3v_cot", "pretrained=/m/q", {"r3v_chartqa": {"accuracy": 0.3}},
                date="20260103_000000", limit=50)
    md = build_leaderboard([out]).markdown()
    main = table_lines(md, "accuracy:")
    assert main["method"] == ["chartqa", "geoqa", "avg"]
    assert main["r3v_cot"] == ["30.0", "20.0", "25.0"]  # the newer chartqa (0.3) replaced 0.1
    assert "chartqa found in" in md and "used the newer (20260103_000000)" in md
    assert "chartqa: 50 of 500 documents (--limit)" in md


def test_labels_name_what_differs(tmp_path):
    out = tmp_path / "lmms"
    lmms_result(out, "r3v_cot", "pretrained=/hub/Qwen2-VL-2B", {"r3v_geoqa": {"accuracy": 0.2}})
    lmms_result(out, "r3v_cot", "pretrained=/hub/Qwen2-VL-7B", {"r3v_geoqa": {"accuracy": 0.3}})
    lmms_result(out, "r3v_cot", "pretrained=/hub/Qwen2-VL-7B,adapter=/runs/geo_r3v/iter_3/model",
                {"r3v_geoqa": {"accuracy": 0.5}}, date="20261122_070000")
    lmms_result(out, "r3v_majority", "pretrained=/hub/Qwen2-VL-7B,n=6",
                {"r3v_geoqa": {"accuracy": 0.6, "majority_at_n": 0.6, "pass_at_n": 0.8}},
                date="20261122_080000")
    # n=3 is the default: given or not, the same model (one row)
    lmms_result(out, "r3v_select", "pretrained=/hub/Qwen2-VL-7B", {"r3v_geoqa": {"accuracy": 0.4}},
                date="20261122_090000")
    lmms_result(out, "r3v_select", "pretrained=/hub/Qwen2-VL-7B,n=3",
                {"r3v_chartqa": {"accuracy": 0.7}}, date="20261122_100000")
    main = table_lines(build_leaderboard([out]).markdown(), "accuracy:")
    assert set(main) == {"method", "r3v_cot(Qwen2-VL-2B)", "r3v_cot(Qwen2-VL-7B)",
                         "r3v_cot(geo_r3v/iter_3)", "r3v_majority(n=6)", "r3v_select(n=3)"}
    assert main["r3v_select(n=3)"] == ["70.0", "40.0", "55.0"]
    assert main["r3v_cot(geo_r3v/iter_3)"] == [DASH, "50.0", "50.0*"]


# ------------------------------------------------------------------- deltas
def test_deltas_against_a_baseline(two_models, tmp_path):
    board = build_leaderboard([two_models], baseline="r3v_cot")
    md = board.markdown()
    delta = table_lines(md, "Δ vs r3v_cot")
    assert "r3v_cot" not in delta
    # 50.0 - 46.83 = +3.17 -> "+3.2"; tabmwp missing for r3v_select; avg over shared = +3.2
    assert delta["r3v_select(n=3)"] == [DASH, "+3.2", "+3.2*"]
    # a unique part of a label works too; the other way round the signs flip, and the delta
    # table keeps to the baseline's benchmarks
    md = build_leaderboard([two_models], baseline="select").markdown()
    delta = table_lines(md, "Δ vs r3v_select(n=3)")
    assert delta["method"] == ["chartqa", "avg"] and delta["r3v_cot"] == ["-3.2", "-3.2"]


def test_delta_arithmetic_from_unrounded_values(tmp_path):
    out = tmp_path / "lmms"
    lmms_result(out, "r3v_cot", "pretrained=/m/base",
                {"r3v_chartqa": {"accuracy": 0.10049}, "r3v_geoqa": {"accuracy": 0.2}})
    lmms_result(out, "r3v_cot", "pretrained=/m/tuned",
                {"r3v_chartqa": {"accuracy": 0.10101}, "r3v_geoqa": {"accuracy": 0.15}})
    md = build_leaderboard([out], baseline="r3v_cot(base)").markdown()
    main = table_lines(md, "accuracy:")
    assert main["r3v_cot(base)"][0] == "10.0" and main["r3v_cot(tuned)"][0] == "10.1"
    # 10.101 - 10.049 = +0.052 -> "+0.1" (not 10.1 - 10.0 done on rounded cells, nor "-0.0")
    assert table_lines(md, "Δ")["r3v_cot(tuned)"] == ["+0.1", "-5.0", "-2.5"]


# ------------------------------------------------------------------ r3v runs
def test_runs_merge_by_method_and_split_on_clash(tmp_path):
    runs = tmp_path / "runs"
    final = {"greedy": 0.5, "majority@3": 0.55, "pass@3": 0.9, "select@3": 0.6}
    run_folder(runs, "chartqa_r3v", "r3v", "chartqa", final)
    run_folder(runs, "geoqa_r3v", "r3v", "geoqa", {**final, "greedy": 0.3})
    run_folder(runs, "chartqa_star", "star", "chartqa", {**final, "greedy": 0.4})
    md = build_leaderboard([runs], baseline="star").markdown()
    main = table_lines(md, "accuracy:")
    assert main["method"] == ["chartqa", "geoqa", "avg"]
    assert main["r3v"] == ["50.0", "30.0", "40.0"]  # accuracy of a run = greedy (Test@1)
    assert main["star"] == ["40.0", DASH, "40.0*"]
    assert table_lines(md, "Δ")["r3v"] == ["+10.0", "+10.0"]  # star has chartqa only
    apart = build_leaderboard([runs / "geoqa_r3v", runs / "chartqa_star"], baseline="star").markdown()
    assert "r3v" not in table_lines(apart, "Δ")
    assert "No benchmark in common with star (left out): r3v." in apart
    assert table_lines(md, "select@N:")["r3v"] == ["60.0", "60.0", "60.0"]
    # a second r3v run on chartqa: runs of r3v are named by their folders
    run_folder(runs, "chartqa_r3v_seed1", "r3v", "chartqa", {**final, "greedy": 0.45})
    main = table_lines(build_leaderboard([runs]).markdown(), "accuracy")
    assert {"chartqa_r3v", "chartqa_r3v_seed1", "geoqa_r3v", "star"} <= set(main)
    assert main["chartqa_r3v_seed1"] == ["45.0", DASH, "45.0*"]


def test_runs_show_their_training_compute(tmp_path):
    """metrics.json "compute" (r3v_train/compute.py) becomes a Training compute table."""
    runs = tmp_path / "runs"
    r3v = run_folder(runs, "r3v", "r3v", "shapes", {"greedy": 0.3})
    grpo = run_folder(runs, "grpo", "grpo", "shapes", {"greedy": 0.2})
    for d, figures in ((r3v, (1800, 61234, 90)), (grpo, (6400, 210000, 200))):
        data = json.loads((d / "metrics.json").read_text())
        data["compute"] = dict(zip(("generated_samples", "generated_tokens", "optimizer_steps"), figures))
        (d / "metrics.json").write_text(json.dumps(data))
    rows = table_lines(build_leaderboard([runs]).markdown(), "Training compute")
    assert rows["method"] == ["benchmark", "generated samples", "generated tokens", "optimizer steps"]
    assert rows["r3v"] == ["shapes", "1,800", "61,234", "90"]
    assert rows["grpo"] == ["shapes", "6,400", "210,000", "200"]
    assert "Training compute" not in build_leaderboard([run_folder(tmp_path, "old", "star", "shapes",
                                                                   {"greedy": 0.1})]).markdown()


def test_run_given_as_metrics_file_and_unfinished_run(tmp_path):
    d = run_folder(tmp_path, "done", "star_dpo", "tabmwp", {"greedy": 0.25})
    live = tmp_path / "live"
    (live / "iter_0").mkdir(parents=True)
    (live / "iter_2").mkdir()
    (live / "config.yaml").write_text("run:\n  method: r3v\ndata:\n  benchmark: tabmwp\n")
    (live / "iter_0" / "eval.json").write_text(json.dumps({"metrics": {"greedy": 0.1}}))
    (live / "iter_2" / "eval.json").write_text(json.dumps({"metrics": {"greedy": 0.3}}))
    md = build_leaderboard([d / "metrics.json", live]).markdown()
    main = table_lines(md, "accuracy:")
    assert main["star_dpo"] == ["25.0", "25.0"] and main["r3v"] == ["30.0", "30.0"]
    assert "unfinished run: latest evaluated iter_2" in md


def test_run_folders_add_their_learning_curves(tmp_path):
    """Runs named by run.name; greedy per iteration for every run, and majority / select /
    pass as N grows for a run evaluated at several N; plots of both next to the tables."""
    warm = run_folder(tmp_path, "warmup", "r3v", "shapes", {"greedy": 0.2, "majority@3": 0.25})
    r3v = run_folder(tmp_path, "r3v", "r3v", "shapes",
                     {"greedy": 0.4, "majority@1": 0.3, "select@1": 0.3, "pass@1": 0.3,
                      "majority@3": 0.35, "select@3": 0.45, "pass@3": 0.6})
    for folder, name, history in [
            (warm, "warmup", [(0, 0.2)]),
            (r3v, None, [(0, 0.2), (1, 0.3), (2, 0.4)])]:
        data = json.loads((folder / "metrics.json").read_text())
        data["name"] = name
        data["history"] = [{"iteration": t, "metrics": {"greedy": g}} for t, g in history]
        (folder / "metrics.json").write_text(json.dumps(data))
    board = build_leaderboard([warm, r3v])
    md = board.markdown()
    assert table_lines(md, "accuracy:")["warmup"] == ["20.0", "20.0"]  # its name, not its method
    curve = table_lines(md, "greedy accuracy per iteration")
    assert curve["run"] == ["iter 0", "iter 1", "iter 2"]
    assert curve["warmup"] == ["20.0", "–", "–"] and curve["r3v"] == ["20.0", "30.0", "40.0"]
    sweep = table_lines(md, "r3v: majority / select / pass as N grows")
    assert sweep["select@N"] == ["30.0", "45.0"] and sweep["pass@N"] == ["30.0", "60.0"]
    assert "warmup: majority" not in md  # one N only: no sweep
    written = write_outputs(board, tmp_path / "board" / "leaderboard.md")
    names = sorted(p.name for p in written)
    assert names == ["leaderboard.csv", "leaderboard.md", "leaderboard.png",
                     "leaderboard_per_iteration.png", "leaderboard_select_vs_majority.png"]
    for png in written[2:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------- paper reference
def test_reference_row_qwen_vl(two_models):
    md = build_leaderboard([two_models], reference="qwen-vl", baseline="r3v_cot").markdown()
    main = table_lines(md, "accuracy:")
    r3v, distill = "R3V, Qwen-VL (paper, 2nd-hand)", "GPT-distill, Qwen-VL (paper, 2nd-hand)"
    # kept to the benchmarks the inputs have (tabmwp, chartqa)
    assert main[r3v] == ["83.3", "57.4", "70.3"]  # (83.27 + 57.36) / 2 = 70.315
    assert main[distill] == ["62.3", "46.7", "54.5"]
    assert table_lines(md, "Δ")[r3v] == ["+22.3", "+10.5", "+16.4"]
    ref = table_lines(md, "Paper reference")
    assert ref["method"] == ["tabmwp", "chartqa", "clevr_math", "miniwob", "geoqa", "m3cot",
                             "six-task avg"]
    assert ref["R3V"] == ["83.27", "57.36", "68.81", "82.89", "39.25", "54.66", "64.37"]
    assert ref["GPT-distill"] == ["62.30", "46.72", "51.83", "51.11", "31.43", "47.41", "48.47"]
    assert ref["STaR"][-1] == "59.28"
    assert "secondary notes" in md
    # the paper's numbers are Test@1: not in a pass@N table
    md = build_leaderboard([two_models], reference="qwen-vl", metric="pass").markdown()
    assert r3v not in table_lines(md, "pass@N")
    assert "left out of the pass tables" in md


def test_reference_llava_and_none(two_models):
    md = build_leaderboard([two_models], reference="llava").markdown()
    assert "(paper, 2nd-hand)" not in "".join(table_lines(md, "accuracy:"))
    ref = table_lines(md, "Paper reference: LLaVA-1.5")
    assert ref["R3V"][-1] == "59.03" and ref["zero-shot CoT"][-1] == "19.37"
    assert "no per-task numbers" in md
    assert "Paper reference" not in build_leaderboard([two_models]).markdown()


# ------------------------------------------------------------------ metrics
def test_metric_choice(two_models):
    md = build_leaderboard([two_models], metric="select_at_n").markdown()
    assert md.count("## ") >= 2
    main = table_lines(md, "select@N")
    assert set(main) == {"method", "r3v_select(n=3)"} and main["r3v_select(n=3)"] == ["50.0", "50.0"]
    md = build_leaderboard([two_models], metric="majority@3").markdown()
    assert table_lines(md, "majority@3")["r3v_select(n=3)"] == ["48.0", "48.0"]
    with pytest.raises(LeaderboardError, match="no input has it; available: .*pass_at_n"):
        build_leaderboard([two_models], metric="relaxed_overall")


# ---------------------------------------------------------------- CLI files
def test_cli_writes_markdown_csv_png(two_models, tmp_path, capsys):
    out = tmp_path / "report" / "board.md"
    assert cli_main(["leaderboard", str(two_models), "--out", str(out), "--baseline", "r3v_cot",
                     "--reference", "qwen-vl"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    md = out.read_text()
    assert table_lines(md, "accuracy:")["r3v_cot"] == ["61.0", "46.8", "53.9"]
    rows = list(csv.DictReader(io.StringIO(out.with_suffix(".csv").read_text())))
    main = {r["method"]: r for r in rows if r["table"] == "main"}
    assert main["r3v_cot"]["tabmwp"] == "61.00" and main["r3v_cot"]["chartqa"] == "46.83"
    assert main["r3v_cot"]["avg"] == "53.91" and main["r3v_cot"]["n_benchmarks"] == "2"
    assert main["r3v_select(n=3)"]["tabmwp"] == "" and main["r3v_select(n=3)"]["avg"] == "50.00"
    assert main["R3V, Qwen-VL (paper, 2nd-hand)"]["kind"] == "reference"
    delta = {r["method"]: r for r in rows if r["table"] == "delta"}
    assert delta["r3v_select(n=3)"]["chartqa"] == "3.17"
    assert {r["metric"] for r in rows if r["table"] == "metric"} == {
        "greedy", "majority@3", "select@3", "pass@3"}  # every row has N = 3
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_cli_stdout(two_models, capsys):
    assert cli_main(["leaderboard", str(two_models)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# R3V leaderboard") and "| r3v_cot" in out


# ------------------------------------------------------------------- errors
def test_errors_name_the_path(tmp_path, two_models, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("x")
    with pytest.raises(LeaderboardError, match="empty holds no lmms-eval results"):
        build_leaderboard([empty])
    with pytest.raises(LeaderboardError, match="no such file or folder: .*missing"):
        build_leaderboard([tmp_path / "missing"])
    bad = tmp_path / "bad" / "m" / "20260101_000000_results.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"results": {')
    with pytest.raises(LeaderboardError, match=f"cannot read lmms-eval results file {bad}"):
        build_leaderboard([tmp_path / "bad"])
    bad.write_text(json.dumps({"config": {}}))
    with pytest.raises(LeaderboardError, match="no 'results' section"):
        build_leaderboard([bad])
    run = run_folder(tmp_path / "runs", "r", "r3v", "shapes", {"greedy": 0.1})
    with pytest.raises(LeaderboardError, match="eval.json is one iteration's evaluation"):
        build_leaderboard([run / "iter_1" / "eval.json"])
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    with pytest.raises(LeaderboardError, match="other.json is neither an lmms-eval results file"):
        build_leaderboard([other])
    with pytest.raises(LeaderboardError, match="--baseline 'nope': no such row; rows: 'r3v_cot'"):
        build_leaderboard([two_models], baseline="nope")
    with pytest.raises(LeaderboardError, match="matches several rows"):
        build_leaderboard([two_models], baseline="r3v_")
    # the command: one line on stderr, exit status 2, no traceback
    assert cli_main(["leaderboard", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("r3v leaderboard: error:") and str(bad) in err
    assert "Traceback" not in err
    assert cli_main(["leaderboard", str(two_models), "--out", str(tmp_path / "x.csv")]) == 2
    assert "give the Markdown file" in capsys.readouterr().err


# --------------------------------------------------- real lmms-eval results
def _env():
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1")
    return env


@pytest.mark.slow
def test_real_lmms_eval_results(tiny_qwen, tmp_path):
    """Run the real ``lmms-eval`` once per wrapper (r3v_cot, r3v_select; --limit 2) and feed
    its result files to ``r3v leaderboard``."""
    from r3v_eval.lmms import tasks_dir

    def run(model):
        out = tmp_path / model
        cmd = [str(VENV_BIN / "lmms-eval"), "--model", model, "--model_args",
               f"pretrained={tiny_qwen},n=2,max_new_tokens=8,device=cpu" if model == "r3v_select"
               else f"pretrained={tiny_qwen},max_new_tokens=8,device=cpu",
               "--tasks", "r3v_shapes", "--output_path", str(out), "--batch_size", "2",
               "--limit", "2", "--include_path", str(tasks_dir())]
        proc = subprocess.run(cmd, check=False, env=_env(), cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        files = sorted(out.glob("**/*_results.json"))
        assert proc.returncode == 0 and len(files) == 1, (proc.stdout + proc.stderr)[-3000:]
        return files[0]

    with ThreadPoolExecutor(max_workers=2) as pool:
        cot_file, select_file = pool.map(run, ["r3v_cot", "r3v_select"])
    cot = json.loads(cot_file.read_text())["results"]["r3v_shapes"]
    sel = json.loads(select_file.read_text())["results"]["r3v_shapes"]

    out = tmp_path / "board.md"
    proc = subprocess.run([str(VENV_BIN / "r3v"), "leaderboard", str(cot_file), str(select_file.parent),
                           "--out", str(out), "--baseline", "r3v_cot"],
                          check=False, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    md = out.read_text()
    main = table_lines(md, "accuracy:")
    assert main["method"] == ["shapes", "avg"]
    want_cot = f"{100 * cot['accuracy,none']:.1f}"
    want_sel = f"{100 * sel['accuracy,none']:.1f}"
    assert main["r3v_cot"] == [want_cot, want_cot]
    assert main["r3v_select(n=2)"] == [want_sel, want_sel]
    delta = 100 * (sel["accuracy,none"] - cot["accuracy,none"])
    assert table_lines(md, "Δ")["r3v_select(n=2)"][0] == f"{delta:+.1f}"
    assert table_lines(md, "pass@N")["r3v_select(n=2)"][0] == f"{100 * sel['pass_at_n,none']:.1f}"
    assert "shapes: 2 of 500 documents (--limit)" in md
    assert out.with_suffix(".csv").is_file() and out.with_suffix(".png").is_file()


def test_sampled_families_compare_at_the_n_every_row_has(tmp_path):
    """A run evaluated at N = 1, 3, 5 and one at N = 3 compare at 3, not at each row's largest N;
    with no N in common each row keeps its own and a note says so."""
    sweep = run_folder(tmp_path / "a", "r3v", "r3v", "shapes",
                       {"greedy": 0.3, "majority@1": 0.2, "majority@3": 0.25, "majority@5": 0.4})
    three = run_folder(tmp_path / "a", "star", "star", "shapes", {"greedy": 0.3, "majority@3": 0.22})
    md = build_leaderboard([sweep, three], metric="majority").markdown()
    assert table_lines(md, "majority@N")["r3v"] == ["25.0", "25.0"]
    assert "N = 3 samples per question." in md
    five = run_folder(tmp_path / "b", "five", "r3v", "shapes", {"greedy": 0.3, "majority@5": 0.4})
    md = build_leaderboard([five, three], metric="majority").markdown()
    assert table_lines(md, "majority@N")["r3v"] == ["40.0", "40.0"]
    assert "N differs between rows" in md


def test_a_run_that_selected_among_its_candidates_says_so(tmp_path):
    """eval.select_choice: candidates is not the paper's selection: the board notes it."""
    chose = run_folder(tmp_path, "chose", "r3v", "shapes", {"greedy": 0.4, "select@3": 0.5})
    (chose / "config.yaml").write_text("eval:\n  select_choice: candidates\n")
    wrote = run_folder(tmp_path, "wrote", "r3v", "shapes", {"greedy": 0.4, "select@3": 0.45})
    (wrote / "config.yaml").write_text("eval:\n  select_choice: generate\n")
    md = build_leaderboard([chose, wrote]).markdown()
    assert md.count("eval.select_choice: candidates") == 1
    assert "chose: shapes: select@N chose among its candidates' answers" in md
