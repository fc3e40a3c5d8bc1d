"""The demo's across-seed report: mean ± sd with each seed's value, and the claims checked in
every seed (a claim that holds on average but fails in one seed is reported as failing)."""

from __future__ import annotations

import json
import math

import pytest

from r3v_train.cli import main as cli_main
from r3v_train.demo.claims import CLAIMS, DemoReportError, paired, read_seed, report

from helpers import run_folder


N = 100  # test questions per seed


def right(k: int, start: int = 0) -> list[bool]:
    """Questions start .. start + k - 1 right, the others wrong."""
    return [start <= i < start + k for i in range(N)]


def demo_folder(root, name, warmup=right(40), star=right(55), r3v=right(60), control=right(45),
                select=right(62), majority=right(58), runs=None):
    """An ``r3v demo`` output folder: per run, its final figures (fractions) and the
    per-question outcomes of its last evaluation (``iter_1/eval_outcomes.jsonl``)."""
    seed = root / name
    outcomes = {"warmup": {"greedy": warmup}, "star": {"greedy": star},
                "r3v": {"greedy": r3v, "select@3": select, "majority@3": majority},
                "control": {"greedy": control}}
    for stage in runs or outcomes:
        final = {m: sum(v) / N for m, v in outcomes[stage].items()}
        d = run_folder(seed, stage, stage, "shapes", final)
        lines = [json.dumps({"metric": m, "problem_id": f"q{i:03d}", "correct": ok})
                 for m, v in outcomes[stage].items() for i, ok in enumerate(v)]
        (d / "iter_1" / "eval_outcomes.jsonl").write_text("\n".join(lines) + "\n")
    return seed


def claim_row(markdown: str, claim_text: str) -> list[str]:
    line = next(l for l in markdown.splitlines() if l.startswith(f"| {claim_text} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_every_claim_holding_in_every_seed(tmp_path):
    seeds = [demo_folder(tmp_path, f"seed_{s}", r3v=right(60 + s)) for s in range(3)]
    text, every = report(seeds)
    assert every
    # R3V greedy 60 / 61 / 62: mean 61.0, sd 1.0, each seed's value in order
    assert "| r3v | 61.0 ± 1.0 (60.0 / 61.0 / 62.0) |" in text
    for claim in CLAIMS:
        assert claim_row(text, claim.text)[-1].startswith("yes")
    # seed 0: R3V right on 20 more questions than the warm-up, the same otherwise: the paired
    # differences are twenty 1s and eighty 0s, sd 0.402, SE 4.02 points: margin 20 - 8.04
    assert claim_row(text, CLAIMS[0].text)[0] == "+12.0"
    assert "| R3V - warm-up (greedy) | +20.0 ± 4.0 |" in text


def test_paired_standard_error_by_hand(tmp_path):
    seed = read_seed(demo_folder(tmp_path, "seed_0", warmup=right(40), r3v=right(30, start=20)))
    p = paired(seed, ("r3v", "greedy"), ("warmup", "greedy"))
    # r3v right on 20..49, warm-up on 0..39: +1 on 40..49 (10), -1 on 0..19 (20), 0 elsewhere
    d = [1] * 10 + [-1] * 20 + [0] * 70
    mean = sum(d) / N
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (N - 1))
    assert (p.n, p.diff) == (N, pytest.approx(-10.0))
    assert p.se == pytest.approx(100 * sd / math.sqrt(N))


def test_a_gain_within_its_noise_fails(tmp_path):
    # +2 points, from 2 questions of 100: SE 1.4, so 2 SE = 2.8 > 2
    seeds = [demo_folder(tmp_path, "seed_0", r3v=right(42), control=right(30))]
    text, every = report(seeds)
    assert not every
    assert claim_row(text, CLAIMS[0].text) == ["-0.8", "**no**"]
    assert claim_row(text, CLAIMS[1].text)[-1] == "yes"


def test_a_claim_failing_in_one_seed_fails_although_it_holds_on_average(tmp_path):
    seeds = [demo_folder(tmp_path, "seed_0", r3v=right(80)), demo_folder(tmp_path, "seed_1", r3v=right(80)),
             demo_folder(tmp_path, "seed_2", r3v=right(46))]  # the third: +1 over the control
    text, every = report(seeds)
    assert not every
    control = claim_row(text, CLAIMS[1].text)
    assert control[-1] == "**no**" and control[2].startswith("-")
    assert control[0].startswith("+") and control[1].startswith("+")


def test_a_claim_on_the_mean_over_seeds(tmp_path):
    # R3V - STaR: +5 on seed 0, -3 on seed 1: the mean +1 holds, the row shows each seed
    seeds = [demo_folder(tmp_path, "seed_0", star=right(55), r3v=right(60)),
             demo_folder(tmp_path, "seed_1", star=right(63), r3v=right(60))]
    text, _ = report(seeds)
    assert claim_row(text, CLAIMS[2].text) == ["+5.0", "-3.0", "yes (mean +1.0)"]
    seeds[0] = demo_folder(tmp_path, "seed_2", star=right(62), r3v=right(60))
    text, every = report(seeds)
    assert claim_row(text, CLAIMS[2].text) == ["-2.0", "-3.0", "**no** (mean -2.5)"]
    assert not every


def test_a_missing_run_or_outcomes_is_not_a_pass(tmp_path):
    seed = demo_folder(tmp_path, "seed_0", runs=["warmup", "star", "r3v"])  # no control
    text, every = report([seed])
    assert not every
    assert claim_row(text, CLAIMS[1].text) == ["n/a", "**no**"]
    assert "control" not in read_seed(seed)
    other = demo_folder(tmp_path, "seed_1")
    (other / "warmup" / "iter_1" / "eval_outcomes.jsonl").unlink()
    text, every = report([other])
    assert claim_row(text, CLAIMS[0].text) == ["n/a", "**no**"] and not every


def test_different_question_sets_are_an_error(tmp_path):
    seed = demo_folder(tmp_path, "seed_0")
    path = seed / "control" / "iter_1" / "eval_outcomes.jsonl"
    path.write_text(path.read_text().replace('"q099"', '"q100"'))
    with pytest.raises(DemoReportError, match="different questions"):
        report([seed])


def test_cli_check_exit_status_and_bad_folder(tmp_path, capsys):
    good = [demo_folder(tmp_path, f"seed_{s}") for s in range(2)]
    out = tmp_path / "seeds.md"
    assert cli_main(["demo-report", *map(str, good), "--out", str(out), "--check"]) == 0
    assert "## The claims, seed by seed" in out.read_text()
    bad = demo_folder(tmp_path, "seed_9", r3v=right(20))
    assert cli_main(["demo-report", *map(str, good), str(bad), "--check"]) == 1
    assert cli_main(["demo-report", str(bad)]) == 0  # without --check: a report, not a verdict
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DemoReportError, match="no finished run"):
        report([empty])
    assert cli_main(["demo-report", str(empty)]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_demo_seeds_runs_each_seed_into_its_folder_then_reports(tmp_path, monkeypatch, capsys):
    import r3v_train.demo.driver as demo
    from r3v_train.config import ConfigError

    calls = []

    def fake_run_demo(out_dir, seed=0, quick=False, methods=None, pretrain=False):
        calls.append((out_dir.name, seed, quick, methods, pretrain))
        demo_folder(out_dir.parent, out_dir.name, r3v=right(57 + seed))
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert cli_main(["demo", "--seeds", "3", "5", "--out", str(tmp_path), "--pretrain",
                     "--methods", "star", "r3v", "control"]) == 0
    # the shipped base is rebuilt once, before the first seed only
    assert calls == [("seed_3", 3, False, ["star", "r3v", "control"], True),
                     ("seed_5", 5, False, ["star", "r3v", "control"], False)]
    text = (tmp_path / "seeds.md").read_text()
    assert "seed_3, seed_5" in text and "| r3v | 61.0 ± 1.4 (60.0 / 62.0) |" in text
    with pytest.raises(ConfigError, match="each seed once"):
        demo.run_demo_seeds(tmp_path, [1, 1])


def _outcome(metric, q, correct, answers=None, rights=None, extracted=None, level=None):
    line = {"metric": metric, "problem_id": q, "correct": correct, "extracted": extracted,
            "level": level}
    if answers is not None:
        line.update(candidates=[f"reply {a}" for a in answers], candidate_answers=answers,
                    candidate_correct=rights)
    return json.dumps(line)


def test_the_report_shows_where_the_gains_are_and_how_select_chooses(tmp_path):
    """Under the claims: greedy accuracy per level of each run's last evaluation, and select@3
    against majority@3 split by how the three candidates agree, read from the outcomes."""
    seed = tmp_path / "seed_0"
    greedy = {"warmup": [(1, True), (1, True), (2, False), (2, False)],
              "r3v": [(1, True), (1, True), (2, True), (2, False)]}
    # (answers, right, select's answer, majority's answer) per question
    sampled = [(["1", "1", "2"], [True, True, False], "2", "1"),     # 2-1, pair right: select leaves it
               (["1", "1", "2"], [False, False, True], "2", "1"),    # 2-1, odd one right: select takes it
               (["1", "2", "3"], [False, True, False], "2", "1"),    # three different, one right
               ([None, "1", "1"], [False, True, True], "1", "1")]    # one unparseable
    for run, outcomes in greedy.items():
        d = run_folder(seed, run, run, "shapes", {"greedy": sum(ok for _, ok in outcomes) / 4})
        lines = [_outcome("greedy", f"q{i}", ok, level=lv) for i, (lv, ok) in enumerate(outcomes)]
        if run == "r3v":
            for i, (answers, rights, sel, maj) in enumerate(sampled):
                lines.append(_outcome("select@3", f"q{i}", rights[answers.index(sel)], answers,
                                      rights, sel))
                lines.append(_outcome("majority@3", f"q{i}", rights[answers.index(maj)], answers,
                                      rights, maj))
        (d / "iter_1" / "eval_outcomes.jsonl").write_text("\n".join(lines) + "\n")
    text, _ = report([seed])
    assert "| warmup | 100.0 ± 0.0 (100) | 0.0 ± 0.0 (0) |" in text
    assert "| r3v | 100.0 ± 0.0 (100) | 50.0 ± 0.0 (50) |" in text
    assert "| 2-1 split, 1 right | 1 | 1 | 0 |" in text
    assert "| 2-1 split, 2 right | 1 | 0 | 1 |" in text
    assert "| three different answers, 1 right | 1 | 1 | 0 |" in text
    assert "| 2, 1 unparseable, 2 right | 1 | 1 | 1 |" in text
    assert "in 100 % of the questions where it is the right one and in 100 % of those" in text


def test_a_seed_given_as_dot_is_named_by_its_folder(tmp_path, monkeypatch):
    seed = demo_folder(tmp_path, "seed_7")
    monkeypatch.chdir(seed)
    text, _ = report(["."])
    assert "# The demo over 1 seed(s): seed_7" in text
    assert "| difference | seed_7 | mean |" in text
