"""The demo's across-seed report: mean ± sd with each seed's value, and the claims checked in
every seed (a claim that holds on average but fails in one seed is reported as failing)."""

from __future__ import annotations

import pytest

from r3v_train.cli import main as cli_main
from r3v_train.demo.claims import CLAIMS, DemoReportError, read_seed, report

from helpers import run_folder


def demo_folder(root, name, warmup=20.0, star=30.0, r3v=32.0, control=25.0,
                select=(30.0, 36.0, 40.0), majority=(30.0, 33.0, 35.0), runs=None):
    """An ``r3v demo`` output folder: one run folder per stage, figures as fractions."""
    seed = root / name
    final = {
        "warmup": {"greedy": warmup / 100},
        "star": {"greedy": star / 100, "majority@3": 0.3, "select@3": 0.3, "pass@3": 0.4},
        "r3v": {"greedy": r3v / 100,
                **{f"select@{n}": v / 100 for n, v in zip((1, 3, 5), select)},
                **{f"majority@{n}": v / 100 for n, v in zip((1, 3, 5), majority)}},
        "control": {"greedy": control / 100},
    }
    for stage in runs or final:
        run_folder(seed, stage, stage, "shapes", final[stage])
    return seed


def claim_row(markdown: str, claim_text: str) -> list[str]:
    line = next(l for l in markdown.splitlines() if l.startswith(f"| {claim_text} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_every_claim_holding_in_every_seed(tmp_path):
    seeds = [demo_folder(tmp_path, f"seed_{s}", r3v=32.0 + s) for s in range(3)]
    text, every = report(seeds)
    assert every
    # R3V greedy 32 / 33 / 34: mean 33.0, sd 1.0, each seed's value in order
    assert "| r3v | 33.0 ± 1.0 (32.0 / 33.0 / 34.0) |" in text
    for claim in CLAIMS:
        assert claim_row(text, claim.text)[-1] == "yes"
    # margins: R3V - warm-up - 10 = +2 / +3 / +4
    assert claim_row(text, CLAIMS[0].text)[:3] == ["+2.0", "+3.0", "+4.0"]


def test_a_claim_failing_in_one_seed_fails_although_it_holds_on_average(tmp_path):
    seeds = [demo_folder(tmp_path, "seed_0", r3v=40.0), demo_folder(tmp_path, "seed_1", r3v=40.0),
             demo_folder(tmp_path, "seed_2", r3v=27.0)]  # mean 35.7: +10.7 over the control
    text, every = report(seeds)
    assert not every
    control = claim_row(text, "R3V greedy > matched-compute control + 3 points")
    assert control == ["+12.0", "+12.0", "-1.0", "**no**"]


def test_strict_claims_fail_on_a_tie_and_rising_means_every_step(tmp_path):
    # R3V = control + 3 exactly, select@3 = majority@3, select@N flat from 3 to 5
    seed = demo_folder(tmp_path, "seed_0", r3v=28.0, control=25.0, star=28.0,
                       select=(30.0, 33.0, 33.0), majority=(30.0, 33.0, 34.0))
    text, every = report([seed])
    assert not every
    assert claim_row(text, "R3V greedy > matched-compute control + 3 points")[-1] == "**no**"
    assert claim_row(text, "R3V select@3 > majority@3")[-1] == "**no**"
    assert claim_row(text, "R3V select@N rising with N")[-1] == "**no**"
    assert claim_row(text, "R3V greedy >= STaR greedy")[-1] == "yes"  # a tie meets ">="


def test_a_missing_run_is_not_a_pass(tmp_path):
    seed = demo_folder(tmp_path, "seed_0", runs=["warmup", "star", "r3v"])  # no control
    text, every = report([seed])
    assert not every
    assert claim_row(text, "R3V greedy > matched-compute control + 3 points") == ["n/a", "**no**"]
    assert "control" not in read_seed(seed)


def test_cli_check_exit_status_and_bad_folder(tmp_path, capsys):
    good = [demo_folder(tmp_path, f"seed_{s}") for s in range(2)]
    out = tmp_path / "seeds.md"
    assert cli_main(["demo-report", *map(str, good), "--out", str(out), "--check"]) == 0
    assert "## The claims, seed by seed" in out.read_text()
    bad = demo_folder(tmp_path, "seed_9", r3v=20.0)
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
        demo_folder(out_dir.parent, out_dir.name, r3v=32.0 + seed)
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert cli_main(["demo", "--seeds", "3", "5", "--out", str(tmp_path), "--pretrain",
                     "--methods", "star", "r3v", "control"]) == 0
    # the shipped base is rebuilt once, before the first seed only
    assert calls == [("seed_3", 3, False, ["star", "r3v", "control"], True),
                     ("seed_5", 5, False, ["star", "r3v", "control"], False)]
    text = (tmp_path / "seeds.md").read_text()
    assert "seed_3, seed_5" in text and "| r3v | 36.0 ± 1.4 (35.0 / 37.0) |" in text
    with pytest.raises(ConfigError, match="each seed once"):
        demo.run_demo_seeds(tmp_path, [1, 1])
