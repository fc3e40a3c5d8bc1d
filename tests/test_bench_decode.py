"""benchmarks/row_sampler.py and benchmarks/decode_profile.py (the follow-ups to the first GPU
run) on CPU with tiny shapes: the code path a GPU run takes, and the benchmark's step-by-step
copy of the sampler held to the sampler itself."""

from __future__ import annotations

import json

from helpers import load_benchmark


def test_row_sampler_parts_pick_what_the_sampler_picks():
    import torch

    from r3v_eval.engines.base import PAPER_SAMPLING
    from r3v_eval.engines.hf import RowSampler

    bench = load_benchmark("row_sampler")
    scores = torch.randn(5, 400, generator=torch.Generator().manual_seed(3))
    sampler = RowSampler(PAPER_SAMPLING, [11, 12, 13, 14, 15], "cpu")
    steps, one_hot = bench.parts(sampler, scores)
    # the timed parts redo the sampler's first step: the same one token per row
    assert torch.equal(one_hot, sampler(torch.zeros(5, 1, dtype=torch.long), scores))
    assert set(steps) == {"temperature", "top_k", "top_p_mask", "noise", "gumbel_pick",
                          "one_hot_scores"}


def test_row_sampler_bench_on_cpu(tmp_path):
    bench = load_benchmark("row_sampler")
    out = bench.main(["--device", "cpu", "--rows", "2", "4", "--vocab", "1000", "--repeats", "2",
                      "--out", str(tmp_path / "rs.json")])
    written = json.loads((tmp_path / "rs.json").read_text())
    assert set(written["rows"]) == {"2", "4"} and set(out["rows"]) == {2, 4}
    for ms in out["rows"].values():
        assert all(v > 0 for v in ms.values())
        assert {"row_sampler", "then_transformers", "transformers_warpers"} <= set(ms)


def test_decode_profile_on_cpu(tmp_path):
    bench = load_benchmark("decode_profile")
    out = bench.main(["--device", "cpu", "--tiny", "tiny", "--prompts", "2", "--batch-sizes",
                      "2", "--new-tokens", "4", "--profile-tokens", "3",
                      "--profile-ways", "row_sampler", "--out-dir", str(tmp_path)])
    assert [w["way"] for w in out["ways"]] == list(bench.WAYS)
    for w in out["ways"]:
        # every way decodes 3 rows per prompt, greedy and arg-max too (rows expanded)
        assert w["rows_per_call"] == 2 * 3 and w["generate_calls"] == 1
        assert w["steps"] == 3  # the time itself is noise at 4 tokens on a shared CPU
        assert w["ms_per_step"] == bench.gpu.per_step_ms(w["decode_s"], 3)
    (p,) = out["profiles"]
    assert p["way"] == "row_sampler" and p["steps"] == 2 and p["device_busy_share"] is None
    assert (tmp_path / p["tables"]).read_text().startswith("## row_sampler")
    assert json.loads((tmp_path / "decode_profile_cpu_tiny.json").read_text())["ways"]


def test_a_decode_time_is_never_reported_non_positive():
    gpu = load_benchmark("gpu")
    assert gpu.per_step_ms(0.5, 100) == 5.0
    assert gpu.per_step_ms(0.0, 100) is None and gpu.per_step_ms(-0.04, 3) is None
