"""``r3v data miniwob``: the sub-command, registered by :mod:`r3v_train.cli` with
:func:`add_data_parser` (import-light: the browser starts only when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_data_parser(data_sub: argparse._SubParsersAction) -> None:
    from r3v_eval.miniwob.gold import RULES  # lazy: the parser stays light (no browser)

    s = data_sub.add_parser(
        "miniwob", help="screenshots and gold actions from the real MiniWoB++ environments "
                        "(needs r3v[miniwob] and the browser: scripts/install-browser.sh)")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--n-train", type=int, default=0, help="train problems (default 0: the "
                   "paper's MiniWob has a test split only)")
    s.add_argument("--n-test", type=int, default=500)
    s.add_argument("--seed", type=int, default=0, help="picks the episodes (deterministic)")
    s.add_argument("--tasks", default=None,
                   help=f"comma-separated MiniWoB tasks (default: all {len(RULES)}: "
                        f"{', '.join(RULES)})")
    s.add_argument("--scale", type=int, default=1,
                   help="device pixels per CSS pixel of the screenshots: 1 = miniwob's 160x210, "
                        "3 = 480x630 (crisper text; the actions do not change)")
    s.set_defaults(func=run_data_command)


def run_data_command(args: argparse.Namespace) -> int:
    from r3v_eval.miniwob.generate import write_miniwob_dataset  # optional deps (miniwob)

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    config = write_miniwob_dataset(args.out, n_train=args.n_train, n_test=args.n_test,
                                   seed=args.seed, tasks=tasks, scale=args.scale)
    print(f"wrote {config['splits']['train']['problems']} train / "
          f"{config['splits']['test']['problems']} test problems over {len(config['tasks'])} "
          f"tasks to {args.out} in {config['seconds']} s")
    return 0
