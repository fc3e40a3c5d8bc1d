"""``r3v eval``: lmms-eval's own evaluation command with the r3v tasks folder included.

Every flag is passed to lmms-eval unchanged, except ``--include_path``: the r3v tasks folder
is always searched, next to any folders the user names. lmms-eval runs in this process
(``lmms_eval.__main__.cli_evaluate``, what ``lmms-eval --model ...`` runs). Unlike
lmms-eval, which logs an evaluation error (an unknown task, a bad model argument) and still
exits 0, ``r3v eval`` exits 1 when any evaluation failed. The ``--model_args`` of the r3v
wrappers are checked before lmms-eval starts (:func:`check_model_args`): a bad key or a
missing model folder is one line and exit status 1, without lmms-eval's start-up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from r3v_eval.errors import R3VError
from r3v_eval.lmms import MODEL_CLASSES, tasks_dir
from r3v_eval.lmms.args import parse_model_args

HELP = """usage: r3v eval [lmms-eval flags ...]

Runs `lmms-eval --model ... --tasks ...` with the r3v task folder added to --include_path
({tasks}); every other flag is passed through unchanged. Models: r3v_cot, r3v_majority,
r3v_select (or any lmms-eval model). Tasks: r3v_chartqa, r3v_tabmwp, r3v_clevr_math,
r3v_miniwob, r3v_miniwob_online, r3v_geoqa, r3v_geoqa_zh, r3v_m3cot, r3v_mmmu,
r3v_mathvista, r3v_shapes, r3v_tally.
pretrained= takes a local model folder, a hub id or shipped:<name> (shipped:demo_base).

Example (no download needed):
  r3v tiny-model --arch qwen2_vl --out tiny
  r3v eval --model r3v_select --model_args pretrained=tiny,n=3,device=cpu \\
      --tasks r3v_shapes --limit 8 --batch_size 4 --output_path results

Exit status: 0 when every evaluation ran, 1 when the r3v model's --model_args are wrong
(a missing model folder, an unknown key) or lmms-eval reported an error.
lmms-eval's own flags: r3v eval --lmms-help
"""


def split_include_paths(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Remove ``--include_path X`` / ``--include_path=X`` from ``argv``; return (rest, paths)."""
    rest: list[str] = []
    paths: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        arg = argv[i]
        if arg == "--include_path":
            if i + 1 >= len(argv):
                raise R3VError("--include_path needs a folder")
            paths.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--include_path="):
            paths.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return rest, paths


def _flag(argv: Sequence[str], name: str) -> str | None:
    """The value of ``name X`` / ``name=X`` in ``argv`` (the last one given), else None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def check_model_args(argv: Sequence[str]) -> None:
    """Check the ``--model_args`` of an r3v wrapper (``--model r3v_*``) as the wrapper will:
    a ValueError naming the model and the key (e.g. a missing ``pretrained`` folder); other
    models are lmms-eval's to check."""
    model = _flag(argv, "--model")
    if model not in MODEL_CLASSES:
        return
    raw: dict[str, str] = {}
    for item in (_flag(argv, "--model_args") or "").split(","):
        if item.strip():
            key, _, value = item.partition("=")
            raw[key.strip()] = value.strip()
    parse_model_args(model, raw)


def run_lmms_eval(argv: Sequence[str]) -> int:
    """Run lmms-eval's evaluation with ``argv`` (its flags) plus the r3v tasks folder."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP.format(tasks=tasks_dir()))
        return 0
    if argv[0] == "--lmms-help":
        argv = ["--help"]
    rest, user_paths = split_include_paths(argv)
    include = [str(tasks_dir())] + [p for p in user_paths if p]
    try:
        check_model_args(rest)
    except ValueError as exc:
        print(f"r3v eval: {exc}", file=sys.stderr)
        return 1

    import lmms_eval.__main__ as lmms_main

    failures: list[BaseException] = []
    original = lmms_main.cli_evaluate_single

    def recording(args):  # lmms-eval catches and logs errors; remember them for the exit code
        try:
            return original(args)
        except Exception as exc:
            failures.append(exc)
            raise

    saved_argv = sys.argv
    sys.argv = ["lmms-eval", *rest]
    lmms_main.cli_evaluate_single = recording
    try:
        lmms_main.cli_evaluate(argparse.Namespace(include_path=include))
    finally:
        lmms_main.cli_evaluate_single = original
        sys.argv = saved_argv
    if failures:
        print(f"r3v eval: {len(failures)} evaluation(s) failed: "
              + "; ".join(f"{type(e).__name__}: {e}" for e in failures), file=sys.stderr)
        return 1
    return 0
