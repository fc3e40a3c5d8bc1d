"""The ``r3v export`` and ``r3v export-data`` commands (parsers and entry points), added to the
``r3v`` command by :func:`add_parsers`. The work is in :mod:`r3v_train.export` and
:mod:`r3v_train.export_data`, imported when a command runs (``r3v --help`` stays light)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cmd_export(args: argparse.Namespace) -> int:
    from r3v_train.export import export_model  # lazy: transformers / peft, only when run

    out = export_model(args.run, args.out, iteration=args.iteration, push_to_hub=args.push_to_hub)
    print(f"wrote {out}" + (f" and uploaded it to {args.push_to_hub}" if args.push_to_hub else ""))
    return 0


def _cmd_export_data(args: argparse.Namespace) -> int:
    from r3v_train.export_data import export_data  # lazy: datasets, only when run

    counts = export_data(args.run, args.out, push_to_hub=args.push_to_hub)
    print(json.dumps({f"iter_{t}": c for t, c in counts.items()}, indent=2))
    print(f"wrote {args.out}" + (f" and uploaded it to {args.push_to_hub}"
                                 if args.push_to_hub else ""))
    return 0


def add_parsers(sub) -> None:
    """Add ``export`` and ``export-data`` to the ``r3v`` sub-command parsers ``sub``."""
    p = sub.add_parser("export", help="write one iteration's model as a standalone Hugging Face "
                                      "model folder (LoRA merged, safetensors, model card)")
    p.add_argument("run", type=Path, metavar="RUN", help="the run folder (run.out_dir)")
    p.add_argument("--iteration", type=int, default=None, metavar="T",
                   help="the iteration whose model to export (default: the last trained)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="a new (or empty) folder to write the model to")
    p.add_argument("--push-to-hub", default=None, metavar="REPO",
                   help="then upload the folder to this Hugging Face repo (huggingface_hub; "
                        "needs a login and network; untested)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("export-data", help="write the run's self-generated SFT / refine / select "
                                           "examples as a data set (Parquet, TRL and ShareGPT)")
    p.add_argument("run", type=Path, metavar="RUN", help="the run folder (run.out_dir)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="a new (or empty) folder to write the data set to")
    p.add_argument("--push-to-hub", default=None, metavar="REPO",
                   help="then upload the folder to this Hugging Face data set repo (untested)")
    p.set_defaults(func=_cmd_export_data)
