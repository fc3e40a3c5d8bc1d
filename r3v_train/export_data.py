"""`r3v export-data RUN --out DIR`: a run's self-generated training data as a data set.

For every iteration ``t`` that trained on self-generated data, the SFT, self-refine and
self-select examples of its training set (``iter_<t>/examples.jsonl``, built from the samples of
iterations ``0 .. t-1``; warm-up data such as QA pairs and teacher rationales left out), with
their pictures embedded, written with ``datasets`` as Parquet in two forms:

* ``trl/iter_<t>.parquet`` — TRL's conversational language-modelling format: ``messages``
  (``[{"role": "user", "content": prompt}, {"role": "assistant", "content": target}]``) and
  ``images`` (a list of zero or one picture). ``SFTTrainer`` reads it as it is: it puts the
  image placeholder before the first user turn's text, as r3v's own prompts have it.
* ``sharegpt/iter_<t>.parquet`` — LLaMA-Factory's ShareGPT (OpenAI-style) multimodal format:
  ``messages`` with ``role`` / ``content``, an ``<image>`` token at the start of the user text
  for each picture, and ``images``; ``sharegpt/dataset_info.json`` registers every file.

Both carry ``kind`` (sft / refine / select), ``iteration`` and ``problem_id`` columns.
``DIR/README.md`` is the dataset card: YAML front matter naming both configurations
(``load_dataset(DIR, "trl", split="iter_1")``) and a table of the counts per kind and iteration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from r3v_eval import run_files
from r3v_eval.errors import R3VError
from r3v_train.export import push_folder
from r3v_train.output_folder import writable_folder
from r3v_train.run_info import RunInfo, compute_lines, iteration_table, read_run

#: the example kinds the model generated itself (the rest are warm-up data)
SELF_KINDS = ("sft", "refine", "select")
FORMS = ("trl", "sharegpt")
IMAGE_TOKEN = "<image>"  # LLaMA-Factory's placeholder, one per picture
_CHUNK = 512  # examples encoded at a time (pictures are held only for one chunk)


def self_generated(info: RunInfo) -> dict[int, list[dict[str, Any]]]:
    """Iteration -> its SFT / refine / select examples (rows of ``examples.jsonl``)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for path in info.path.glob(f"{run_files.ITER_PREFIX}*/{run_files.EXAMPLES}"):
        t = run_files.iter_number(path.parent.name)
        if t is None:
            continue
        with path.open(encoding="utf-8") as fh:
            rows = [r for r in map(json.loads, filter(str.strip, fh))
                    if r.get("kind") in SELF_KINDS]
        if rows:
            out[t] = rows
    if not out:
        raise R3VError(f"{info.path}: no self-generated training data (no iter_<t>/"
                       f"{run_files.EXAMPLES} with sft, refine or select examples); a run saves "
                       "it once an iteration has sampled and trained")
    return dict(sorted(out.items()))


def train_problems(info: RunInfo) -> dict[str, Any]:
    """The run's train problems by id (the pictures the examples refer to), loaded as the run
    loaded them."""
    from r3v_eval.benchmarks import get_benchmark  # heavy (benchmark modules): only when exporting

    data = info.config.get("data") or {}
    bench = get_benchmark(data.get("benchmark"), data.get("options") or {})
    problems = bench.load(data.get("train_split") or bench.train_split, data.get("source"),
                          data.get("train_limit"))
    return {p.id: p for p in problems}


def _features():
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    try:
        from datasets import List as ListFeature
    except ImportError:  # datasets < 4
        from datasets import Sequence as ListFeature

    turn = ListFeature({"role": Value("string"), "content": Value("string")})
    return Features({"messages": turn, "images": ListFeature(ImageFeature()),
                     "kind": Value("string"), "iteration": Value("int32"),
                     "problem_id": Value("string")})


def _records(rows: list[dict[str, Any]], t: int, problems: dict[str, Any],
             form: str) -> Iterator[dict[str, Any]]:
    for row in rows:
        problem = problems.get(row["problem_id"])
        if problem is None:
            raise R3VError(f"iteration {t}: example of problem {row['problem_id']!r}, which the "
                           "run's train split (as its config.yaml loads it) does not hold")
        image = problem.load_image()
        images = [] if image is None else [image.convert("RGB")]
        prompt = row["prompt"]
        if form == "sharegpt":
            prompt = IMAGE_TOKEN * len(images) + prompt
        yield {"messages": [{"role": "user", "content": prompt},
                            {"role": "assistant", "content": row["completion"]}],
               "images": images, "kind": row["kind"], "iteration": t,
               "problem_id": row["problem_id"]}


def write_form(rows: list[dict[str, Any]], t: int, problems: dict[str, Any], form: str,
               path: Path) -> None:
    """One iteration's examples in one form, as Parquet with the pictures embedded (PNG)."""
    from datasets import Dataset, concatenate_datasets

    features = _features()
    records = _records(rows, t, problems, form)
    parts = []
    while chunk := [r for _, r in zip(range(_CHUNK), records)]:
        parts.append(Dataset.from_list(chunk, features=features))
    concatenate_datasets(parts).to_parquet(str(path))


def llama_factory_info(iterations: list[int]) -> dict[str, Any]:
    """``dataset_info.json`` for LLaMA-Factory: one entry per iteration's file."""
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
            "assistant_tag": "assistant"}
    return {f"r3v_iter_{t}": {"file_name": f"iter_{t}.parquet", "formatting": "sharegpt",
                              "columns": {"messages": "messages", "images": "images"},
                              "tags": tags} for t in iterations}


def export_data(run: str | Path, out: str | Path,
                push_to_hub: str | None = None) -> dict[int, dict[str, int]]:
    """Write the run's self-generated data to the new folder ``out``; returns the counts per
    iteration and kind."""
    info = read_run(run)
    examples = self_generated(info)
    out = Path(out)
    writable_folder(out, "--out", empty=True)
    problems = train_problems(info)
    for form in FORMS:
        (out / form).mkdir()
        for t, rows in examples.items():
            write_form(rows, t, problems, form, out / form / f"iter_{t}.parquet")
    (out / "sharegpt" / "dataset_info.json").write_text(
        json.dumps(llama_factory_info(list(examples)), indent=2) + "\n")
    counts = {t: {k: sum(r["kind"] == k for r in rows) for k in SELF_KINDS}
              for t, rows in examples.items()}
    write_dataset_card(info, counts, out)
    if push_to_hub:
        push_folder(out, push_to_hub, "dataset", f"r3v export-data of {info.path.name}")
    return counts


# ------------------------------------------------------------------ the dataset card
def counts_table(counts: dict[int, dict[str, int]]) -> str:
    lines = ["| iteration | " + " | ".join(SELF_KINDS) + " | total |",
             "|:--|" + "--:|" * (len(SELF_KINDS) + 1)]
    for t, by_kind in counts.items():
        lines.append(f"| {t} | " + " | ".join(str(by_kind[k]) for k in SELF_KINDS)
                     + f" | {sum(by_kind.values())} |")
    return "\n".join(lines)


def write_dataset_card(info: RunInfo, counts: dict[int, dict[str, int]], out: Path) -> None:
    from huggingface_hub import DatasetCard, DatasetCardData

    configs = [{"config_name": form, "data_files": [
        {"split": f"iter_{t}", "path": f"{form}/iter_{t}.parquet"} for t in counts]}
        for form in FORMS]
    data = DatasetCardData(configs=configs, task_categories=["image-text-to-text"],
                           tags=["r3v", "self-training", "synthetic", info.benchmark],
                           pretty_name=f"r3v self-generated data: {info.path.name}")
    pretrained = (info.config.get("model") or {}).get("pretrained")
    body = f"""
# Self-generated training data of the r3v run `{info.path.name}`

Method `{info.method}`, benchmark `{info.benchmark}`, base model `{pretrained}`. Exported by
`r3v export-data`. Each split `iter_<t>` holds the examples iteration `t` trained on that the
model generated itself, built from every sample drawn so far (iterations `0 .. t-1`) by the
paper's rules: **sft** (question → a positive rationale), **refine** (question + a negative
rationale → a positive one) and **select** (question + candidate rationales → the gold
answer). Warm-up data (QA pairs, teacher rationales) is left out.

## Counts per kind and iteration

{counts_table(counts)}

## Configurations

- `trl`: TRL's conversational format (`messages` + `images`); `SFTTrainer` reads it as is:
  `load_dataset(PATH, "trl", split="iter_1")`.
- `sharegpt`: LLaMA-Factory's ShareGPT multimodal format (`messages` with `role` / `content`,
  `{IMAGE_TOKEN}` in the user text, `images`); `sharegpt/dataset_info.json` registers each file
  (`r3v_iter_<t>`).

Both have the extra columns `kind`, `iteration` and `problem_id`.

## The run's figures

{iteration_table(info.history())}

Compute:

{compute_lines(info.compute())}
"""
    DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}").save(out / "README.md")
