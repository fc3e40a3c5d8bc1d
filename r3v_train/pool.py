"""The sample pool: every chain-of-thought sample the model ever drew, kept as a record.

R3V's pool is cumulative: at iteration ``t`` the examples are built from the samples of
iterations ``0..t``, and positives and negatives of earlier checkpoints stay usable. This
module stores that pool as append-only JSONL files, one per iteration::

    <pool_dir>/iter_<t>.jsonl

one :class:`Sample` per line::

    {"iteration": 1, "question_id": "q17", "sample_index": 2, "prompt_style": "qwen",
     "reply": "Solution:\\n1. ...\\n\\nAnswer:\\n4", "extracted": "4", "correct": true}

``extracted`` is null when no answer could be parsed (an unparseable sample is always a
negative). A sample is identified by ``(iteration, question_id, sample_index)``; a key may
appear only once.

Crash safety and resumption (one writer at a time):

* :meth:`SamplePool.append` writes a batch as one ``write`` of whole, newline-terminated
  lines, then ``flush`` + ``os.fsync``. A crash can therefore only leave the *last* line of a
  file torn.
* On reading, a final line that is not valid JSON (a torn write: half a line, or NUL bytes
  the file system left behind) is ignored with a logged, counted warning
  (:attr:`SamplePool.torn_lines`). The next :meth:`append` to that file first cuts the torn
  tail off, so the half line is never read as whole, nor glued to the next record. A final
  record that is complete but lost only its newline is kept, and the newline is restored.
* Any other malformed line (bad JSON in the middle of a file, a wrong field, a duplicate key,
  a record filed under the wrong iteration) is a :class:`PoolError` naming ``file:line``.
* :meth:`SamplePool.done_keys` tells a resumed sampling stage which
  ``(question_id, sample_index)`` pairs of an iteration are already stored.

"Most recent" is defined by the order ``(iteration, sample_index)``: within an iteration the
sample drawn with a larger index counts as more recent (the official code's convention of
taking the last of its sample files).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r3v_eval.errors import R3VError

log = logging.getLogger(__name__)

FILE_PATTERN = re.compile(r"^iter_(0|[1-9][0-9]*)\.jsonl$")
FIELDS = ("iteration", "question_id", "sample_index", "prompt_style", "reply", "extracted",
          "correct")


class PoolError(R3VError):
    """A pool file or record that does not follow the pool's format."""


@dataclass(frozen=True)
class Sample:
    """One sampled solution of one training question.

    Attributes:
        iteration: the self-training iteration whose checkpoint drew the sample (0, 1, ...).
        question_id: the :class:`~r3v_eval.benchmarks.base.Problem` id.
        sample_index: which of that iteration's samples of the question (0, 1, 2, ...).
        prompt_style: the prompt style it was sampled with (``qwen``, ``llava``, ``qwen2``).
        reply: the full generated text (rationale and answer).
        extracted: the answer the benchmark extracted from the reply; None if unparseable.
        correct: whether the extracted answer matches the gold answer (positive sample).
    """

    iteration: int
    question_id: str
    sample_index: int
    prompt_style: str
    reply: str
    extracted: str | None
    correct: bool

    def __post_init__(self) -> None:
        problem = _validate(self.__dict__)
        if problem:
            raise PoolError(f"invalid sample: {problem}")

    @property
    def positive(self) -> bool:
        return self.correct

    @property
    def negative(self) -> bool:
        return not self.correct

    @property
    def unparseable(self) -> bool:
        return self.extracted is None

    @property
    def key(self) -> tuple[int, str, int]:
        """The sample's identity in the pool: ``(iteration, question_id, sample_index)``."""
        return (self.iteration, self.question_id, self.sample_index)

    @property
    def recency(self) -> tuple[int, int]:
        """Sort key: larger is more recent."""
        return (self.iteration, self.sample_index)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in FIELDS}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], where: str = "sample") -> Sample:
        if not isinstance(row, Mapping):
            raise PoolError(f"{where}: a sample must be a JSON object, got {type(row).__name__}")
        missing = [k for k in FIELDS if k not in row]
        if missing:
            raise PoolError(f"{where}: missing field(s) {', '.join(missing)}")
        extra = sorted(set(row) - set(FIELDS))
        if extra:
            raise PoolError(f"{where}: unknown field(s) {', '.join(extra)}")
        problem = _validate(row)
        if problem:
            raise PoolError(f"{where}: {problem}")
        return cls(**{k: row[k] for k in FIELDS})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(row: Mapping[str, Any]) -> str | None:
    """Why ``row`` is not a valid sample, or None."""
    if not _is_int(row["iteration"]) or row["iteration"] < 0:
        return f"'iteration' must be an integer >= 0, got {row['iteration']!r}"
    if not isinstance(row["question_id"], str) or not row["question_id"]:
        return f"'question_id' must be a non-empty string, got {row['question_id']!r}"
    if not _is_int(row["sample_index"]) or row["sample_index"] < 0:
        return f"'sample_index' must be an integer >= 0, got {row['sample_index']!r}"
    if not isinstance(row["prompt_style"], str) or not row["prompt_style"]:
        return f"'prompt_style' must be a non-empty string, got {row['prompt_style']!r}"
    if not isinstance(row["reply"], str):
        return f"'reply' must be a string, got {type(row['reply']).__name__}"
    if row["extracted"] is not None and not isinstance(row["extracted"], str):
        return f"'extracted' must be a string or null, got {row['extracted']!r}"
    if not isinstance(row["correct"], bool):
        return f"'correct' must be true or false, got {row['correct']!r}"
    if row["correct"] and row["extracted"] is None:
        return "'correct' is true but no answer was extracted (unparseable is always wrong)"
    return None


def group_by_question(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """Samples per question id, each list ordered oldest first by ``(iteration, sample_index)``
    (so ``[-1]`` is the most recent). Questions keep the order of their first sample."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.question_id].append(s)
    return {qid: sorted(group, key=lambda s: s.recency) for qid, group in groups.items()}


def pool_stats(samples: Sequence[Sample]) -> dict[str, float | int]:
    """Counts of a set of samples (see :meth:`SamplePool.stats`)."""
    n = len(samples)
    positives = sum(s.correct for s in samples)
    return {
        "n": n,
        "positives": positives,
        "negatives": n - positives,
        "unparseable": sum(s.extracted is None for s in samples),
        "accuracy": positives / n if n else 0.0,
        "questions": len({s.question_id for s in samples}),
        "questions_solved": len({s.question_id for s in samples if s.correct}),
    }


@dataclass
class _Scan:
    samples: list[Sample]
    keep: int  # bytes to keep: everything before a torn final line (the whole file if none)
    needs_newline: bool  # the kept bytes do not end with a newline (a record lost only its "\n")
    size: int  # file size when scanned
    torn: str | None  # description of an ignored torn final line
    stamp: tuple[int, int] = (0, 0)  # (size, mtime_ns) the scan is valid for


class SamplePool:
    """An append-only, resumable store of :class:`Sample` records (see the module docstring).

    One process writes at a time; reading while nobody writes is always safe.
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        #: file path -> description of the torn final line ignored at the last read
        self.torn_lines: dict[str, str] = {}
        self._cache: dict[int, _Scan] = {}
        self._warned: set[tuple[str, int]] = set()

    @property
    def torn_count(self) -> int:
        """How many pool files ended in a torn (ignored) line at their last read."""
        return len(self.torn_lines)

    # ------------------------------------------------------------------ paths
    def path(self, iteration: int) -> Path:
        if not _is_int(iteration) or iteration < 0:
            raise ValueError(f"iteration must be an integer >= 0, got {iteration!r}")
        return self.directory / f"iter_{iteration}.jsonl"

    def iterations(self) -> list[int]:
        """The iterations that have a file in the pool, ascending."""
        found = []
        for p in self.directory.iterdir():
            m = FILE_PATTERN.match(p.name)
            if m and p.is_file():
                found.append(int(m.group(1)))
        return sorted(found)

    # ---------------------------------------------------------------- reading
    def _scan(self, iteration: int) -> _Scan:
        path = self.path(iteration)
        if not path.exists():
            self._cache.pop(iteration, None)
            return _Scan([], 0, False, 0, None)
        stamp = _stamp(path)
        cached = self._cache.get(iteration)
        if cached is not None and cached.stamp == stamp:
            return cached
        data = path.read_bytes()
        scan = _parse(data, path, iteration)
        scan.stamp = stamp
        if scan.torn is not None:
            self.torn_lines[str(path)] = scan.torn
            if (str(path), len(data)) not in self._warned:
                self._warned.add((str(path), len(data)))
                log.warning("%s: ignoring a torn final line (%s); it is removed on the next append",
                            path, scan.torn)
        else:
            self.torn_lines.pop(str(path), None)
        self._cache[iteration] = scan
        return scan

    def read_iteration(self, iteration: int) -> list[Sample]:
        """The samples of one iteration, in file order."""
        return list(self._scan(iteration).samples)

    def samples(self, up_to_iteration: int | None = None) -> list[Sample]:
        """All samples of iterations ``<= up_to_iteration`` (all when None), by iteration then
        file order."""
        out: list[Sample] = []
        for t in self.iterations():
            if up_to_iteration is None or t <= up_to_iteration:
                out.extend(self._scan(t).samples)
        return out

    def by_question(self, up_to_iteration: int | None = None) -> dict[str, list[Sample]]:
        """Samples per question, oldest first by ``(iteration, sample_index)``."""
        return group_by_question(self.samples(up_to_iteration))

    def done_keys(self, iteration: int) -> set[tuple[str, int]]:
        """``(question_id, sample_index)`` of every sample stored for ``iteration``."""
        return {(s.question_id, s.sample_index) for s in self._scan(iteration).samples}

    def stats(self, iteration: int | None = None) -> dict[str, float | int]:
        """Counts of one iteration (all iterations when None).

        Keys: ``n``, ``positives``, ``negatives``, ``unparseable`` (a subset of negatives),
        ``accuracy`` (positives / n, 0.0 when empty), ``questions`` (distinct question ids)
        and ``questions_solved`` (questions with at least one positive)."""
        return pool_stats(self.samples() if iteration is None else self.read_iteration(iteration))

    # ---------------------------------------------------------------- writing
    def append(self, samples: Iterable[Sample]) -> int:
        """Store samples (grouped into their iterations' files); returns how many were written.

        Each file's batch is written whole with one write, then flushed and fsynced. A sample
        whose key is already stored (or repeated in the batch) raises :class:`PoolError`
        before anything is written: resume with :meth:`done_keys` instead."""
        batches: dict[int, list[Sample]] = defaultdict(list)
        for s in samples:
            if not isinstance(s, Sample):
                raise TypeError(f"append() takes Sample records, got {type(s).__name__}")
            batches[s.iteration].append(s)
        for t, batch in batches.items():  # validate every batch before writing any
            stored = self.done_keys(t)
            seen: set[tuple[str, int]] = set()
            for s in batch:
                key = (s.question_id, s.sample_index)
                if key in stored or key in seen:
                    raise PoolError(
                        f"{self.path(t)}: sample (question {s.question_id!r}, index "
                        f"{s.sample_index}) is already in the pool; skip done_keys() on resume")
                seen.add(key)
        written = 0
        for t, batch in sorted(batches.items()):
            written += self._append_file(t, batch)
        return written

    def _append_file(self, iteration: int, batch: Sequence[Sample]) -> int:
        path = self.path(iteration)
        scan = self._scan(iteration)  # a fresh scan if the file changed since it was cached
        created = not path.exists()
        payload = "".join(s.to_json() + "\n" for s in batch).encode("utf-8")
        if scan.needs_newline:
            payload = b"\n" + payload
        with open(path, "ab") as fh:
            if scan.keep < scan.size:  # cut a torn final line off before appending
                fh.truncate(scan.keep)
                log.warning("%s: removed a torn final line (%d bytes) before appending", path,
                            scan.size - scan.keep)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if created:
            _fsync_dir(self.directory)
        self.torn_lines.pop(str(path), None)
        new_size = scan.keep + len(payload)
        self._cache[iteration] = _Scan(scan.samples + list(batch), new_size, False, new_size,
                                       None, _stamp(path))
        return len(batch)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns)


def _fsync_dir(directory: Path) -> None:
    """Make a newly created file's directory entry durable (best effort; POSIX only)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _parse(data: bytes, path: Path, iteration: int) -> _Scan:
    samples: list[Sample] = []
    seen: dict[tuple[str, int], int] = {}
    good_end = 0
    torn = None
    pos = 0
    lineno = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl == -1 else nl + 1
        body = data[pos:end].rstrip(b"\r\n")
        lineno += 1
        where = f"{path}:{lineno}"
        if not body.strip(b" \t\r"):  # a blank line
            pos = end
            continue
        try:
            row = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if not data[end:].strip(b" \t\r\n\x00"):  # the final line: a torn write
                torn = f"line {lineno}: {len(body)} bytes that are not a whole JSON record"
                break
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise PoolError(f"{where}: malformed pool record ({reason})") from None
        sample = Sample.from_dict(row, where)
        if sample.iteration != iteration:
            raise PoolError(f"{where}: record of iteration {sample.iteration} in the file of "
                            f"iteration {iteration}")
        key = (sample.question_id, sample.sample_index)
        if key in seen:
            raise PoolError(f"{where}: duplicate sample (question {sample.question_id!r}, index "
                            f"{sample.sample_index}); first stored at line {seen[key]}")
        seen[key] = lineno
        samples.append(sample)
        good_end = end
        pos = end
    if torn is not None:
        return _Scan(samples, good_end, False, len(data), torn)
    needs_newline = bool(data) and not data.endswith(b"\n")
    return _Scan(samples, len(data), needs_newline, len(data), None)
