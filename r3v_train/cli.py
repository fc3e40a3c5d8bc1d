"""The ``r3v`` command: thin entry points over the library.

Each command imports what it runs inside its own function (the "lazy:" comments), so that
``r3v --help`` and a light command never pay for torch, transformers or lmms-eval.

    r3v score --benchmark NAME FILE.jsonl      re-score saved replies
    r3v data shapes --out DIR ...              write the synthetic benchmark
    r3v data miniwob --out DIR ...             screenshots + gold actions from real MiniWoB++
    r3v tiny-model --arch qwen2_vl --out DIR   build a tiny random-weight VLM offline
    r3v recipes [--copy DIR]                   list the shipped recipes, or copy them out
    r3v pretrain                               pre-train the demo's base (shipped:demo_base)
    r3v demo                                   the embedded default (no network)
    r3v demo-report DIR [DIR ...]              the demo across seeds, its claims per seed
    r3v eval --model r3v_select --tasks ...    lmms-eval with the r3v tasks included
    r3v tasks-dir                              print the r3v task folder (for --include_path)
    r3v doctor [--engine vllm]                 check that the plain `lmms-eval` command runs
                                               (and that the vllm engine starts and reads right)
    r3v leaderboard RUN_OR_RESULTS... [--out FILE.md]   comparison tables (+ CSV, PNG)
    r3v export RUN --out DIR                   a run's model as a Hugging Face model folder
    r3v export-data RUN --out DIR              a run's self-generated data as a data set
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from r3v_train.output_folder import writable_folder


def _cmd_score(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_eval.benchmarks import DataError, get_benchmark
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_eval.rescore import read_replies, rescore

    bench = get_benchmark(args.benchmark)
    if args.online:
        # lazy: imported when the command runs (`r3v --help` stays light)
        from r3v_eval.errors import R3VError

        if bench.name != "miniwob":
            raise R3VError(f"--online applies to miniwob only, not {bench.name}")
        # lazy: imported when the command runs (`r3v --help` stays light)
        from r3v_eval.miniwob.replay import online_miniwob

        bench = online_miniwob()
    try:
        if args.file == "-":
            replies = read_replies(sys.stdin, bench)
        else:
            path = Path(args.file)
            if not path.is_file():
                raise DataError(f"input file not found: {path}")
            with path.open(encoding="utf-8") as fh:
                replies = read_replies(fh, bench)
        if not replies:
            raise DataError(f"{args.file}: no replies to score (the input is empty)")
    except UnicodeDecodeError:
        print(f"r3v score: {args.file}: not UTF-8 text (a JSONL file of replies is)",
              file=sys.stderr)
        return 2
    except DataError as exc:
        print(f"r3v score: {exc}", file=sys.stderr)
        return 2
    scores = rescore(bench, replies, sys.stdout)
    n = len(scores)
    correct = sum(s.correct for s in scores)
    unparsed = sum(s.extracted is None for s in scores)
    acc = correct / n
    print(f"{bench.name}: accuracy {acc:.4f} ({correct}/{n}); unparseable {unparsed}",
          file=sys.stderr)
    return 0


def _cmd_data_shapes(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_eval.benchmarks.shapes import ShapesConfig, write_shapes_dataset

    config = ShapesConfig(**_shapes_knobs(args))
    writable_folder(args.out, "--out")
    write_shapes_dataset(args.out, n_train=args.n_train, n_test=args.n_test, seed=args.seed,
                         config=config)
    print(f"wrote {args.n_train} train / {args.n_test} test problems to {args.out}")
    return 0


def _shapes_knobs(args: argparse.Namespace) -> dict:
    knobs = {}
    if args.grid is not None:
        knobs["grid_size"] = args.grid
    if args.image_size is not None:
        knobs["image_size"] = args.image_size
    if args.colors:
        knobs["colors"] = tuple(args.colors.split(","))
    if args.shapes:
        knobs["shapes"] = tuple(args.shapes.split(","))
    if args.max_objects is not None:
        knobs["max_objects"] = args.max_objects
    if args.min_objects is not None:
        knobs["min_objects"] = args.min_objects
    if args.steps:
        try:
            knobs["steps"] = tuple(int(s) for s in args.steps.split(","))
        except ValueError:
            # lazy: imported when the command runs (`r3v --help` stays light)
            from r3v_eval.errors import R3VError

            raise R3VError(f"--steps {args.steps}: expected whole numbers, e.g. 1,2") from None
    return knobs


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_train.tiny import build_tiny_model

    writable_folder(args.out, "--out")
    path = build_tiny_model(args.arch, args.out, size=args.size, seed=args.seed,
                            tie_embeddings=args.tie_embeddings)
    print(f"wrote a {args.size} {args.arch} model to {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_train.demo.driver import run_demo, run_demo_seeds

    if args.seeds:
        return run_demo_seeds(args.out, args.seeds, quick=args.quick, methods=args.methods,
                              pretrain=args.pretrain)
    return run_demo(out_dir=args.out, seed=args.seed, quick=args.quick, methods=args.methods,
                    pretrain=args.pretrain)


def _cmd_demo_report(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_train.demo.claims import report

    text, every = report(args.folders)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if every or not args.check else 1


def _cmd_pretrain(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_train.config import load_recipe
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_train.demo.pretrain import run_pretrain

    info = run_pretrain(load_recipe(args.recipe, args.set),
                        ship_to=None if args.no_ship else args.ship_to, n_eval=args.eval_rows)
    print(json.dumps(info["perception_accuracy"], indent=2))
    return 0


def _cmd_tasks_dir(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_eval.lmms import tasks_dir

    print(tasks_dir())
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_eval.lmms.doctor import main as doctor

    status = doctor()
    if args.engine == "vllm":
        from r3v_train.vllm_check import run_check  # lazy: per command, `r3v --help` stays light

        ok, message = run_check()
        print(message, file=sys.stdout if ok else sys.stderr)
        status = status or (0 if ok else 1)
    return status


def _cmd_eval(argv: list[str]) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_eval.lmms.run import run_lmms_eval

    return run_lmms_eval(argv)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_eval.leaderboard import run_leaderboard

    if args.out is not None:
        writable_folder(args.out.parent, "--out")

    run_leaderboard(args.paths, out=args.out, baseline=args.baseline,
                    reference=args.reference, metric=args.metric)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_train.config import load_recipe
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_train.loop import run

    summary = run(load_recipe(args.recipe, args.set))
    print(json.dumps(summary["final"], indent=2))
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_train.recipe_library import copy_recipes, listing

    if args.copy is None:
        print(listing())
        return 0
    writable_folder(args.copy, "--copy")
    written = copy_recipes(args.copy)
    print(f"wrote {len(written)} files to {args.copy}; run one with "
          f"r3v train --recipe {args.copy / 'demo' / 'r3v.yaml'}")
    return 0


def count(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


#: ``r3v --help``'s description (for users; the module docstring is for developers)
DESCRIPTION = ("r3v trains vision-language models to improve their own reasoning (R³V "
               "self-training) and evaluates them with lmms-eval. Main commands: `r3v demo` "
               "(a small end-to-end run, no network), `r3v train --recipe FILE` (self-training), "
               "`r3v eval --model r3v_select --tasks ...` (evaluation) and `r3v leaderboard` "
               "(comparison tables).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r3v", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("score", help="re-score saved replies (JSONL) for one benchmark")
    p.add_argument("--benchmark", required=True, help="benchmark name, e.g. chartqa")
    p.add_argument("file", help="JSONL file of {response, answer, choices?, unit?} ('-' = stdin)")
    p.add_argument("--online", action="store_true",
                   help="miniwob only: replay each action in the real environment (the line's "
                        "meta as written by `r3v data miniwob`)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("data", help="write a locally generated data set")
    data_sub = p.add_subparsers(dest="dataset", required=True)
    s = data_sub.add_parser("shapes", help="the synthetic shapes benchmark (canonical schema)")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--n-train", type=count, default=2000, help="train problems to write")
    s.add_argument("--n-test", type=count, default=500, help="test problems to write")
    s.add_argument("--seed", type=int, default=1234, help="1234 = the splits that load() generates in memory")
    s.add_argument("--grid", type=int, default=None, help="grid size (cells per side)")
    s.add_argument("--image-size", type=int, default=None, help="image side in pixels")
    s.add_argument("--colors", default=None, help="comma-separated colour names")
    s.add_argument("--shapes", default=None, help="comma-separated shape names")
    s.add_argument("--min-objects", type=int, default=None)
    s.add_argument("--max-objects", type=int, default=None)
    s.add_argument("--steps", default=None, help="allowed question step counts, e.g. 1,2")
    s.set_defaults(func=_cmd_data_shapes)
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_eval.miniwob.cli import add_data_parser as add_miniwob_data_parser

    add_miniwob_data_parser(data_sub)

    p = sub.add_parser("tiny-model", help="build a tiny random-weight VLM offline")
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_train.tiny import ARCHS, SIZES  # import-light: no torch / transformers at module level

    p.add_argument("--arch", required=True, choices=list(ARCHS),
                   help="the real model family whose architecture the tiny model copies")
    p.add_argument("--out", required=True, type=Path,
                   help="folder to write the model to (config, weights, processor)")

    p.add_argument("--size", default="tiny", choices=list(SIZES),
                   help="tiny (tests), small (learns the shapes task), tiny-vllm (tiny with a "
                        "text head size vLLM's CPU kernel accepts)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    p.add_argument("--tie-embeddings", dest="tie_embeddings", default=None,
                   action=argparse.BooleanOptionalAction,
                   help="share input embeddings and output head (default: as the real model: "
                        "tied for Qwen and Gemma 3, untied for LLaVA)")
    p.set_defaults(func=_cmd_tiny_model)

    p = sub.add_parser("train", help="run (or resume) a self-training recipe")
    p.add_argument("--recipe", required=True, type=Path,
                   help="recipe YAML file, or a shipped recipe's name, e.g. demo/r3v (a file "
                        "that exists wins; `r3v recipes` lists the names)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value, e.g. --set run.iterations=2 (repeatable)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("recipes", help="list the shipped recipes (names for r3v train "
                                       "--recipe), or copy them out for editing")
    p.add_argument("--copy", type=Path, default=None, metavar="DIR",
                   help="write every shipped recipe and launcher config under DIR (same layout; "
                        "a file there that differs is never overwritten)")
    p.set_defaults(func=_cmd_recipes)

    # lazy: the demo's paths (torch-free), needed only when the parser is built
    from r3v_train.demo.shipped import DEMO_BASE, PRETRAIN_RECIPE

    p = sub.add_parser("pretrain", help="pre-train the demo's tiny base VLM once (perception "
                                        "only; resumable) and ship it as shipped:demo_base")
    p.add_argument("--recipe", type=Path, default=PRETRAIN_RECIPE,
                   help="pre-training recipe, a file or a shipped name (default: "
                        "demo/pretrain)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value, e.g. --set run.out_dir=/tmp/pre (repeatable)")
    p.add_argument("--ship-to", type=Path, default=DEMO_BASE, metavar="DIR",
                   help="where the model goes, with its checksums (default: the shipped "
                        "r3v_train/demo/assets/demo_base, replaced)")
    p.add_argument("--no-ship", action="store_true", help="train and measure only")
    p.add_argument("--eval-rows", type=int, default=1000,
                   help="held-out perception rows measured after training")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("demo", help="the embedded default: self-improvement on shapes, no network")
    p.add_argument("--out", type=Path, default=Path("r3v_demo"),
                   help="folder for the demo's runs and its report (default: r3v_demo)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the data, sampling and training (default: 0)")
    p.add_argument("--quick", action="store_true", help="a short run (CI smoke test)")
    p.add_argument("--pretrain", action="store_true",
                   help="first rebuild the shipped base (r3v pretrain; about 30 minutes on 2 cores)")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="runs after the warm-up (default: star r3v control; also r3v_no_refine, "
                        "r3v_no_select, grpo)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, metavar="S",
                   help="run the demo once per seed into OUT/seed_<S>, then write OUT/seeds.md: "
                        "mean ± sd and the demo's claims checked in every seed")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("demo-report", help="the demo's figures across seeds (mean ± sd) and its "
                                           "claims checked seed by seed")
    p.add_argument("folders", nargs="+", type=Path, metavar="DEMO_DIR",
                   help="r3v demo output folders, one per seed")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every claim holds in every seed")
    p.set_defaults(func=_cmd_demo_report)

    p = sub.add_parser("leaderboard", help="tables (Markdown, CSV, PNG) from lmms-eval results, "
                                           "r3v run folders (train and demo)")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_RESULTS",
                   help="lmms-eval *_results.json files, r3v run folders (metrics.json), or "
                        "folders holding them (searched recursively)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.md",
                   help="write Markdown here, plus FILE.csv and FILE.png (default: stdout only)")
    p.add_argument("--baseline", default=None, metavar="NAME",
                   help="row to compare against (exact label or a unique part of it): adds a "
                        "table of deltas in percentage points")
    p.add_argument("--reference", default="none", choices=["qwen-vl", "llava", "none"],
                   help="add the paper's reported numbers (second-hand, from R3V.md)")
    p.add_argument("--metric", default="accuracy", metavar="NAME",
                   help="main table's metric: accuracy (each row's own answer; default), greedy, "
                        "majority, select, pass, majority@3, ... or a raw lmms-eval metric name")
    p.set_defaults(func=_cmd_leaderboard)

    # lazy: the export commands' parsers (their work is imported when a command runs)
    from r3v_train.export_cli import add_parsers as add_export_parsers

    add_export_parsers(sub)

    p = sub.add_parser("tasks-dir", help="print the folder of the r3v_* lmms-eval task YAMLs")
    p.set_defaults(func=_cmd_tasks_dir)

    p = sub.add_parser("doctor", help="check that the plain `lmms-eval` command runs the r3v "
                                      "tasks on this install (exit 1 with the reason if not)")
    p.add_argument("--engine", choices=["hf", "vllm"], default="hf",
                   help="vllm: also start the vllm engine on a tiny model and check what it "
                        "reads (on a CPU: run it from .venv-vllm, see scripts/setup-vllm.sh)")
    p.set_defaults(func=_cmd_doctor)
    # `r3v eval ...` is dispatched in main() before parsing (its flags are lmms-eval's own);
    # registered here only so that `r3v --help` lists it.
    sub.add_parser("eval", add_help=False,
                   help="run lmms-eval with the r3v tasks included (flags passed through)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # lazy: imported when the command runs (`r3v --help` stays light)
    from r3v_eval.errors import R3VError

    command = argv[0] if argv else "r3v"
    try:
        if command == "eval":
            return _cmd_eval(argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except R3VError as exc:
        # the project's own errors (a bad recipe, bad data, a bad results folder): one line;
        # anything else is a bug or an environment problem and keeps its traceback
        print(f"r3v {command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
