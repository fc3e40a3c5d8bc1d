"""MiniWob in the real environment (headless Chromium): data generation, reproducibility, the
online scorer and its agreement with the offline one, `r3v data miniwob`, `r3v score --online`
and lmms-eval on the generated data. Skipped, with the reason, where the browser or the
`miniwob` package is missing (install: scripts/install-browser.sh, pip install 'r3v[miniwob]').
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r3v_eval.benchmarks import get_benchmark
from r3v_eval.miniwob.browser import runs_to_boxes, unavailable_reason

REASON = unavailable_reason()
needs_browser = pytest.mark.skipif(REASON is not None, reason=f"MiniWob cannot run here: {REASON}")
R3V = [sys.executable, "-m", "r3v_train.cli"]
TASKS = ["click-dialog", "click-checkboxes", "enter-text"]   # a click, a toggle list, typing


# ------------------------------------------------------------- no browser needed
def test_runs_to_boxes_covers_exactly_the_same_pixels():
    runs = [[5, 2, 6], [6, 2, 6], [7, 2, 5], [7, 8, 9], [8, 2, 6]]
    boxes = runs_to_boxes(runs)
    pixels = {(x, y) for y, x0, x1 in runs for x in range(x0, x1)}
    covered = {(x, y) for left, top, right, bottom in boxes
               for x in range(left, right) for y in range(top, bottom)}
    assert covered == pixels
    assert [2, 5, 6, 7] in boxes                      # two equal rows merge into one box


def test_missing_browser_is_a_clear_error(tmp_path):
    env = dict(os.environ, MINIWOB_CHROME_BINARY="/nonexistent/chromium",
               MINIWOB_CHROMEDRIVER="/nonexistent/chromedriver")
    proc = subprocess.run(R3V + ["data", "miniwob", "--out", str(tmp_path / "d"), "--n-test", "2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "MiniWob needs chromium and chromedriver, not found" in proc.stderr
    assert "scripts/install-browser.sh" in proc.stderr


def test_online_flag_is_for_miniwob_only(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"response": "Answer: 3", "answer": "3"}\n')
    proc = subprocess.run(R3V + ["score", "--online", "--benchmark", "clevr_math", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--online applies to miniwob only" in proc.stderr


# ------------------------------------------------------------------ the browser
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    if REASON is not None:
        pytest.skip(f"MiniWob cannot run here: {REASON}")
    from r3v_eval.miniwob.generate import write_miniwob_dataset

    out = tmp_path_factory.mktemp("miniwob")
    config = write_miniwob_dataset(out, n_train=3, n_test=6, seed=7, tasks=TASKS)
    return out, config


@needs_browser
def test_generated_data_load_and_gold_scores_right(data):
    out, config = data
    assert config["splits"]["test"]["problems"] == 6
    assert config["splits"]["test"]["per_task"] == {t: 2 for t in TASKS}
    assert config["versions"]["chromium"] != "unknown"
    bench = get_benchmark("miniwob")
    test, train = bench.load("test", source=out), bench.load("train", source=out)
    assert len(test) == 6 and len(train) == 3
    # test episodes have even seeds, train ones odd: the splits never share an episode
    assert all(p.meta["seed"] % 2 == 0 for p in test) and all(p.meta["seed"] % 2 for p in train)
    for p in test + train:
        assert p.load_image().size == (160, 210)
        assert bench.score(f"Answer: {p.answer}", p).correct
        assert p.answer == p.meta["steps"][p.meta["step"]]
    steps = [p for p in test if p.meta["task"] == "enter-text"]
    assert [p.meta["step"] for p in steps] == [0, 1]          # one problem per step
    assert steps[1].question.endswith(f"\nPrevious actions: {steps[0].answer}")
    assert steps[1].answer.startswith("type(")


@needs_browser
def test_same_seed_same_problem_in_any_order(data, tmp_path):
    """Problems are reproducible: another run with the tasks in another order (so other
    episodes ran before each) writes byte-identical screenshots and identical rows."""
    from r3v_eval.miniwob.generate import write_miniwob_dataset

    out, _ = data
    write_miniwob_dataset(tmp_path, n_train=0, n_test=4, seed=7, tasks=["enter-text", "click-dialog"])
    again = {json.loads(line)["id"]: json.loads(line)
             for line in (tmp_path / "test.jsonl").read_text().splitlines()}
    first = {json.loads(line)["id"]: json.loads(line)
             for line in (out / "test.jsonl").read_text().splitlines()}
    assert len(again) == 4 and set(again) <= set(first)
    for pid, row in again.items():
        assert row == first[pid]
        assert (tmp_path / row["image"]).read_bytes() == (out / row["image"]).read_bytes()


@needs_browser
def test_selenium_manager_is_never_reached(monkeypatch):
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    from r3v_eval.miniwob.browser import TaskBrowser

    def offline(*args, **kwargs):
        raise AssertionError("Selenium Manager was called (it reaches for the network)")

    monkeypatch.setattr(SeleniumManager, "binary_paths", offline)
    with TaskBrowser("click-test") as browser:
        utterance, elements = browser.reset(3)
        assert utterance == "Click the button." and any(e.tag == "button" for e in elements)


@needs_browser
def test_online_and_offline_scores_agree(data):
    """Gold and perturbed actions (inside, near-miss, random, other step, wrong text...)
    scored by the box / exact-text rule and by replaying them in the environment."""
    from r3v_eval.miniwob.agreement import measure_agreement
    from r3v_eval.miniwob.replay import OnlineScorer

    out, _ = data
    problems = get_benchmark("miniwob").load("test", source=out)
    scorer = OnlineScorer()
    try:
        result = measure_agreement(problems, scorer, seed=0)
    finally:
        scorer.close()
    assert result.total["gold"] == 6 and result.online_right["gold"] == 6
    assert {"inside", "near-miss", "random", "type", "case", "short"} <= set(result.total)
    assert result.online_right["near-miss"] == 0 and result.online_right["case"] == 0
    assert result.rate() >= 0.99, (result.table(), result.disagreements)


@needs_browser
def test_r3v_score_online(data, tmp_path):
    out, _ = data
    rows = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    typing = next(r for r in rows if r["answer"].startswith("type("))
    text = typing["answer"][len('type("'):-len('")')]
    lines = [{"response": f"Answer: {typing['answer']}", "answer": typing["answer"],
              "meta": typing["meta"]},
             {"response": f'Answer: type("{text.swapcase()}")', "answer": typing["answer"],
              "meta": typing["meta"]},
             {"response": "I do not know", "answer": typing["answer"], "meta": typing["meta"]}]
    path = tmp_path / "replies.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = subprocess.run(R3V + ["score", "--online", "--benchmark", "miniwob", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["correct"] for x in proc.stdout.splitlines()] == [True, False, False]
    proc = subprocess.run(R3V + ["score", "--online", "--benchmark", "miniwob", "-"],
                          input=json.dumps({"response": "Answer: click(0.1, 0.1)",
                                           "answer": "click(0.1, 0.1)"}) + "\n",
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "online scoring needs meta" in proc.stderr


@needs_browser
@pytest.mark.slow
def test_lmms_eval_runs_r3v_miniwob_on_generated_data(data, tiny_qwen, tmp_path):
    """The plain `lmms-eval` command, a tiny model, the generated data, both the offline
    (r3v_miniwob) and the online (r3v_miniwob_online) task."""
    from r3v_eval.lmms import tasks_dir

    out, _ = data
    env = dict(os.environ, R3V_DATA_MINIWOB=str(out), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    cmd = [str(Path(sys.executable).parent / "lmms-eval"), "--model", "r3v_majority",
           "--model_args", f"pretrained={tiny_qwen},n=2,max_new_tokens=16,device=cpu",
           "--tasks", "r3v_miniwob,r3v_miniwob_online", "--batch_size", "2",
           "--output_path", str(tmp_path), "--include_path", str(tasks_dir())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    log = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, log
    files = glob.glob(str(tmp_path / "**" / "*_results.json"), recursive=True)
    assert len(files) == 1, log
    data_ = json.loads(Path(files[0]).read_text())
    for task in ("r3v_miniwob", "r3v_miniwob_online"):
        assert data_["n-samples"][task]["effective"] == 6
        res = data_["results"][task]
        assert 0.0 <= res["accuracy,none"] <= res["pass_at_n,none"] <= 1.0
    assert (data_["results"]["r3v_miniwob"]["pass_at_n,none"]
            == data_["results"]["r3v_miniwob_online"]["pass_at_n,none"])
