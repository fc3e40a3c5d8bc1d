"""The problem record, the benchmark interface and the benchmark registry.

A benchmark is a small set of pure functions around one :class:`Problem` record:
how to load it (from its public Hugging Face data set, or from local files in the
canonical schema), how to phrase its question, how to pull the final answer out of a
reply, and how to decide whether that answer is right. Prompts live in
:mod:`r3v_eval.prompts`; shared parsing lives in :mod:`r3v_eval.answers`.

Canonical local schema (``DIR/<split>.jsonl`` plus image files, or one ``.jsonl`` file)::

    {"id": "q1", "question": "How many ...?", "answer": "3",
     "choices": ["2", "3"],          # optional, multiple choice only
     "unit": "cm",                   # optional
     "image": "images/q1.png",       # path relative to the JSONL file's folder
     "meta": {...}}                  # optional, benchmark-specific extras
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from PIL import Image

from r3v_eval import answers
from r3v_eval.answers import LETTERS
from r3v_eval.benchmarks import hub
from r3v_eval.benchmarks.errors import DataError
from r3v_eval.benchmarks.images import check_image_file, open_image

logger = logging.getLogger(__name__)

#: a load fails when more than this share of its rows is malformed or has an unreadable image
MAX_SKIPPED_FRACTION = 0.01
#: how many skipped rows a report names one by one
MAX_LISTED_SKIPS = 20


@dataclass
class Problem:
    """One question of one benchmark, whatever its source."""

    id: str
    question: str
    answer: str
    benchmark: str
    choices: list[str] | None = None
    unit: str | None = None
    image: Any = None  # a PIL image, a path to an image file, or None
    meta: dict[str, Any] = field(default_factory=dict)

    def load_image(self) -> Image.Image | None:
        """The problem's picture as an RGB PIL image (opened lazily from a path; transparency
        composited onto white, see :mod:`.images`)."""
        if self.image is None:
            return None
        return open_image(self.image, f"problem {self.id!r}")

    def to_row(self, image_path: str | None = None) -> dict[str, Any]:
        """The canonical JSONL row of this problem (the image given as a relative path)."""
        row: dict[str, Any] = {"id": self.id, "question": self.question, "answer": self.answer}
        if self.choices is not None:
            row["choices"] = list(self.choices)
        if self.unit:
            row["unit"] = self.unit
        if image_path is not None:
            row["image"] = image_path
        elif isinstance(self.image, (str, Path)):
            row["image"] = str(self.image)
        if self.meta:
            row["meta"] = self.meta
        return row


@dataclass
class LoadReport:
    """What one load kept and what it skipped: a row that does not follow the schema, or whose
    picture cannot be read, is skipped and named here; the load fails when the skipped share
    is above the benchmark's ``max_skipped_fraction``."""

    benchmark: str
    source: str
    kept: int = 0
    skipped: list[str] = field(default_factory=list)
    #: rows past a ``limit``, not read: they count in the share of skipped rows (a limit of
    #: 24 must not turn one bad row in 200 into an abort)
    unread: int = 0

    @property
    def rows(self) -> int:
        return self.kept + len(self.skipped) + self.unread

    def headline(self) -> str:
        """The skip count in one line."""
        past = f"; {self.unread} rows past the limit counted, not parsed" if self.unread else ""
        return (f"{self.benchmark}: {len(self.skipped)} of {self.rows} rows read from "
                f"{self.source} are malformed or have an unreadable picture "
                f"({len(self.skipped) / self.rows:.1%}){past}")

    def add(self, build: Callable[[], Problem]) -> Problem | None:
        """``build()``'s problem, or None (and the reason recorded) when it raises DataError."""
        try:
            problem = build()
        except DataError as exc:
            self.skipped.append(str(exc))
            return None
        self.kept += 1
        return problem

    def check(self, max_fraction: float = MAX_SKIPPED_FRACTION) -> None:
        """Log the skipped rows by name; raise :class:`DataError` when there are too many."""
        if not self.skipped:
            return
        n = len(self.skipped)
        share = n / self.rows
        listed = "\n  ".join(self.skipped[:MAX_LISTED_SKIPS])
        if n > MAX_LISTED_SKIPS:
            listed += f"\n  ... and {n - MAX_LISTED_SKIPS} more"
        head = self.headline()
        if share > max_fraction:
            raise DataError(f"{head}, above the {max_fraction:.0%} limit; fix or remove them:"
                            f"\n  {listed}")
        logger.warning("%s; skipped:\n  %s", head, listed)


@dataclass(frozen=True)
class Score:
    """The verdict on one reply: the extracted final answer (None if none could be parsed)."""

    correct: bool
    extracted: str | None


class Benchmark:
    """Base class: subclasses set the class attributes and override what differs.

    Attributes:
        name: registry key (``chartqa``, ``tabmwp``, ...).
        hub_id / hub_config: the public Hugging Face data set this benchmark loads by default.
        hub_splits: our split name -> the hub's split name.
        cot_ending: the sentence that ends the Qwen-VL style prompt ("answer the question ...").
        select_instruction: the question that closes the self-select prompt.
        train_split / test_split: default split names.
    """

    name: str = ""
    hub_id: str | None = None
    hub_config: str | None = None
    hub_splits: dict[str, str] = {}
    cot_ending: str = "answer the question using a single word or phrase."
    select_instruction: str = (
        "Which prediction is correct? Give the final answer with a numerical value, "
        "Yes/No, or a word or phrase."
    )
    train_split: str = "train"
    test_split: str = "test"
    max_skipped_fraction: float = MAX_SKIPPED_FRACTION
    #: the report of the latest load (set by every load)
    last_load: LoadReport | None = None

    # ---------------------------------------------------------------- loading
    def problem_from_hub(self, row: dict[str, Any], index: int) -> Problem:
        """Map one row of the hub data set to a :class:`Problem`."""
        raise NotImplementedError(f"{self.name}: no Hugging Face data set mapping")

    def problem_from_local(self, row: dict[str, Any], base_dir: Path, where: str) -> Problem:
        """Map one canonical JSONL row (already JSON-decoded) to a :class:`Problem`."""
        for key in ("id", "question", "answer"):
            if key not in row:
                raise DataError(f"{where}: missing required key {key!r}")
        choices = row.get("choices")
        if choices is not None and (
            not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)
        ):
            raise DataError(f"{where}: 'choices' must be a list of strings")
        image = row.get("image")
        if image is not None:
            if not isinstance(image, str):
                raise DataError(f"{where}: 'image' must be a path string")
            path = Path(image)
            if not path.is_absolute():
                path = base_dir / path
            check_image_file(path, where)
            image = str(path)
        meta = row.get("meta") or {}
        if not isinstance(meta, dict):
            raise DataError(f"{where}: 'meta' must be an object")
        return Problem(
            id=str(row["id"]),
            question=str(row["question"]),
            answer=str(row["answer"]),
            benchmark=self.name,
            choices=choices,
            unit=row.get("unit") or None,
            image=image,
            meta=meta,
        )

    def load(self, split: str | None = None, source: str | Path | None = None,
             limit: int | None = None) -> list[Problem]:
        """Load a split: from ``source`` (a folder or a .jsonl file in the canonical schema)
        when given, else from the public Hugging Face data set. Malformed rows and unreadable
        pictures are skipped and reported (see :class:`LoadReport`, ``last_load``)."""
        split = split or self.test_split
        if source is not None:
            return load_local(self, source, split, limit)
        return self.load_hub(split, limit)

    def check_hub_split(self, split: str) -> str:
        """The hub's split name for our ``split``; a clear error for an unknown one."""
        if self.hub_id is None:
            raise DataError(
                f"benchmark {self.name!r} has no public data set; pass a local folder in the "
                "canonical schema (see README, 'Local data')"
            )
        if split not in self.hub_splits:
            raise DataError(
                f"benchmark {self.name!r} has no split {split!r} on the hub; "
                f"known: {sorted(self.hub_splits)}"
            )
        return self.hub_splits[split]

    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        ds = hub.load_split(self.hub_id, self.hub_config, self.check_hub_split(split))
        return self.problems_from_rows(ds, limit)

    def new_report(self, source: str) -> LoadReport:
        return LoadReport(self.name, source)

    def finish_load(self, report: LoadReport) -> None:
        """Record ``report`` as the latest load's and check it against the threshold."""
        self.last_load = report
        report.check(self.max_skipped_fraction)

    def problems_from_rows(self, rows: Iterable[dict[str, Any]], limit: int | None = None,
                           report: LoadReport | None = None) -> list[Problem]:
        """Map hub-shaped rows, keeping only those the benchmark uses (see ``keep_hub_row``).

        Rows that fail to map are skipped into ``report``; without one, a report is made and
        checked here."""
        own = report is None
        if report is None:
            report = self.new_report(self.hub_id or "rows")
        out: list[Problem] = []
        for i, row in enumerate(rows):
            if limit is not None and len(out) >= limit:
                size = getattr(rows, "__len__", None)
                report.unread += size() - i if size else 0  # the rest counts in the share
                break
            if not self.keep_hub_row(row):
                continue
            problem = report.add(lambda: self.problem_from_hub(row, i))
            if problem is not None:
                out.append(problem)
        if own:
            self.finish_load(report)
        return out

    def keep_hub_row(self, row: dict[str, Any]) -> bool:
        """Filter applied to hub rows (e.g. ChartQA's human-written split). Default: keep all."""
        return True

    # -------------------------------------------------------------- prompting
    def question_text(self, problem: Problem) -> str:
        """The question as the model sees it: options as "(A) ...", the unit when relevant."""
        text = problem.question.strip()
        if problem.choices:
            text += "\nOptions:\n" + "\n".join(
                f"({LETTERS[i]}) {c}" for i, c in enumerate(problem.choices)
            )
        return text

    def cot_ending_for(self, problem: Problem) -> str:
        return self.cot_ending

    def select_instruction_for(self, problem: Problem) -> str:
        return self.select_instruction

    def gold_letter(self, problem: Problem) -> str | None:
        """The gold option letter of a multiple-choice problem (None without choices).

        The gold is read as an option's text first, then as a letter: an option list of
        letters out of order (["B", "A"], gold "A") names the option "A", not the first one.
        Benchmarks that store the gold as a letter override this."""
        return answers.letter_of(problem.answer, problem.choices or [])

    # ---------------------------------------------------------------- scoring
    #: whether :meth:`steps_consistent` can judge a reply (``reflect.consistent_positives``)
    has_step_check: bool = False

    def steps_consistent(self, reply: str, problem: Problem) -> bool:
        """Whether a reply's chain of thought holds together (not only its answer): the
        benchmark's own check of its rationale format, for ``reflect.consistent_positives``.
        Benchmarks that have one set :attr:`has_step_check`; the others cannot judge."""
        raise NotImplementedError(f"benchmark {self.name!r} has no step check")

    def extract(self, reply: str, problem: Problem) -> str | None:
        """The final answer in ``reply``, normalised for comparison; None if unparseable."""
        raise NotImplementedError

    def match(self, extracted: str, problem: Problem) -> bool:
        """Whether an extracted answer equals the gold answer."""
        raise NotImplementedError

    def score(self, reply: str, problem: Problem) -> Score:
        if not isinstance(reply, str):
            return Score(False, None)
        extracted = self.extract(reply, problem)
        if extracted is None:
            return Score(False, None)
        return Score(bool(self.match(extracted, problem)), extracted)


# ------------------------------------------------------------------ registry
_REGISTRY: dict[str, Callable[[], Benchmark]] = {}


def register(cls: type[Benchmark]) -> type[Benchmark]:
    """Class decorator adding a benchmark to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"benchmark {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Benchmark]]:
    """The benchmarks registered so far, by name (:func:`r3v_eval.benchmarks.get_benchmark`
    imports every benchmark module first)."""
    return dict(_REGISTRY)


def required_text(row: dict[str, Any], key: str, where: str) -> str:
    """``row[key]``, which must be a string that is not blank (returned unstripped)."""
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: missing or empty {key!r}")
    return value


# ------------------------------------------------------------- local files
def parse_json_object(line: str, where: str, not_object: str = "a row must be a JSON object",
                      name_type: bool = False) -> dict[str, Any]:
    """Parse one JSON Lines line that must hold an object; errors start with ``where``.

    ``not_object`` is the complaint for valid JSON that is not an object; ``name_type`` adds
    ", got <type>" to it.
    """
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        got = f", got {type(row).__name__}" if name_type else ""
        raise DataError(f"{where}: {not_object}{got}")
    return row


def iter_jsonl_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """Yield ``(lineno, "path:lineno", line)`` for each non-blank line of a UTF-8 text file
    (read lazily; a file that is not UTF-8 is a :class:`DataError` naming it)."""
    with path.open(encoding="utf-8") as fh:
        lines = enumerate(fh, 1)
        while True:
            try:
                lineno, line = next(lines)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
            if line.strip():
                yield lineno, f"{path}:{lineno}", line


def iter_jsonl_objects(path: Path, not_object: str = "a row must be a JSON object"
                       ) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Yield ``(lineno, "path:lineno", row)`` for each non-blank line of a UTF-8 JSONL file.

    Read lazily (a caller may stop early); every error is a :class:`DataError` naming the
    file, and the line where there is one.
    """
    for lineno, where, line in iter_jsonl_lines(path):
        yield lineno, where, parse_json_object(line, where, not_object)


def load_local(bench: Benchmark, source: str | Path, split: str,
               limit: int | None = None) -> list[Problem]:
    """Read the canonical schema: ``source`` is a .jsonl file or a folder holding ``<split>.jsonl``.

    A line that is not a JSON object, a row that does not follow the schema and a picture
    that cannot be read are skipped and reported (see :class:`LoadReport`)."""
    source = Path(source)
    path = source if source.suffix == ".jsonl" else source / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{bench.name}: local data file not found: {path}")
    report = bench.new_report(str(path))
    problems: list[Problem] = []
    for _, where, line in iter_jsonl_lines(path):
        if limit is not None and len(problems) >= limit:
            report.unread += 1  # counted, not parsed: the limit is reached
            continue
        problem = report.add(
            lambda: bench.problem_from_local(parse_json_object(line, where), path.parent, where))
        if problem is not None:
            problems.append(problem)
    bench.finish_load(report)
    return problems


def write_local(problems: Iterable[Problem], out_dir: str | Path, split: str) -> Path:
    """Write problems in the canonical schema (images saved as PNG under ``images/``)."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{split}.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for p in problems:
            rel = None
            if p.image is not None:
                rel = f"images/{split}_{p.id}.png"
                img = p.load_image()
                img.save(out_dir / rel)
            fh.write(json.dumps(p.to_row(rel), ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
