"""The lmms-eval task class behind every ``r3v_*`` task YAML.

``R3VTask`` is a ``ConfigurableTask`` whose ``download()`` loads the problems through
:func:`r3v_eval.benchmarks.get_benchmark` instead of ``datasets.load_dataset(dataset_path)``,
so the task and the training code read the same data the same way:

* by default from the benchmark's public Hugging Face data set (``shapes`` is generated in
  memory, deterministically, and needs nothing);
* from local files in the canonical schema when ``R3V_DATA_<NAME>`` is set (``<NAME>`` is the
  benchmark's name in upper case: ``R3V_DATA_CHARTQA``, ``R3V_DATA_CLEVR_MATH``, ...), to a
  folder holding ``<split>.jsonl`` or to one ``.jsonl`` file;
* the split is the benchmark's test split (``test``; ``validation`` for MMMU, ``testmini``
  for MathVista) unless ``R3V_SPLIT_<NAME>`` names another one.

A task YAML names its benchmark under ``dataset_kwargs: {benchmark: NAME}`` (by default the
task name without its ``r3v_`` prefix). The documents follow :mod:`r3v_eval.lmms.docs`.

**Every lmms-eval model runs these tasks.** lmms-eval has two request shapes: *simple* models
(``qwen2_vl``, ``llava_hf``, the r3v models, ...) unpack ``(context, gen_kwargs, doc_to_visual,
doc_id, task, split)``; *chat* models (``huggingface``, ``vllm``, ``qwen2_5_vl`` chat, ...)
unpack ``(context, doc_to_messages, gen_kwargs, doc_id, task, split)``. For YAML-only tasks
lmms-eval picks ``ConfigurableTask`` or ``ConfigurableMessagesTask`` by the model's
``is_simple``; a python task class (``class:``, which R3VTask needs to load its documents) is
built without being told the model. So R3VTask is both: it reads ``is_simple`` from the model
that lmms-eval's ``evaluate(lm, ...)`` is building requests for (:func:`calling_model`) and
builds that model's shape. The chat messages are one user turn, ``[picture, CoT prompt]``,
the same text a simple model is given; every model is scored by the benchmark's own rules.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from lmms_eval.api.model import lmms
from lmms_eval.api.task import ConfigurableMessagesTask, ConfigurableTask
from loguru import logger

from r3v_eval import prompts
from r3v_eval.benchmarks.base import DataError
from r3v_eval.benchmarks.images import to_rgb
from r3v_eval.lmms import docs as _docs

DATA_ENV = "R3V_DATA_{}"
SPLIT_ENV = "R3V_SPLIT_{}"


def env_name(template: str, benchmark: str) -> str:
    return template.format(benchmark.upper().replace("-", "_"))


SIMPLE, CHAT = "simple", "chat"


def calling_model() -> lmms | None:
    """The lmms-eval model whose requests are being built: the ``lm`` argument of lmms-eval's
    ``evaluate(lm, task_dict, ...)``, found on the call stack (None outside an evaluation)."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            candidate = frame.f_locals.get("lm")
            if isinstance(candidate, lmms):
                return candidate
            frame = frame.f_back
        return None
    finally:
        del frame


class R3VTask(ConfigurableMessagesTask):
    """A task that builds its documents from an r3v benchmark and serves simple and chat
    models alike (see the module docstring)."""

    def __init__(self, *args: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if config is not None:
            config = dict(config)
            config.pop("class", None)  # lmms-eval leaves the YAML's `class:` in the config
        super().__init__(*args, config=config, **kwargs)
        self.request_shape = SIMPLE

    def build_all_requests(self, **kwargs: Any) -> None:
        model = calling_model()
        if model is None:
            logger.warning(f"[{self.config.task}] building requests outside lmms-eval's evaluate(); "
                           "using the simple request shape (context, gen_kwargs, doc_to_visual, ...)")
            self.request_shape = SIMPLE
        else:
            self.request_shape = SIMPLE if getattr(model, "is_simple", True) else CHAT
            logger.info(f"[{self.config.task}] {self.request_shape} requests for "
                        f"{type(model).__name__}")
        return super().build_all_requests(**kwargs)

    def construct_requests(self, doc_id: int, ctx: str, **kwargs: Any):
        if self.request_shape == CHAT:
            return ConfigurableMessagesTask.construct_requests(self, doc_id, ctx, **kwargs)
        return ConfigurableTask.construct_requests(self, doc_id, ctx, **kwargs)

    def download(self, dataset_kwargs: dict[str, Any] | None = None) -> None:
        import datasets

        kw = dict(dataset_kwargs or {})
        task = self.config.task or ""
        name = kw.pop("benchmark", None) or (task.removeprefix("r3v_"))
        if kw:
            raise ValueError(f"task {task!r}: unknown dataset_kwargs {sorted(kw)}; "
                             "an r3v task takes only `benchmark`")
        bench = _docs.benchmark_of(name)
        source = os.environ.get(env_name(DATA_ENV, bench.name)) or None
        split = os.environ.get(env_name(SPLIT_ENV, bench.name)) or bench.test_split
        where = f"local files {source}" if source else (
            f"the hub ({bench.hub_id})" if bench.hub_id else "its default source")
        logger.info(f"[{task}] loading benchmark {bench.name!r} split {split!r} from {where}")
        try:
            problems = bench.load(split, source)
        except Exception as exc:  # hub unreachable, missing file, malformed row, unknown split
            hint = "" if source else (f"; set {env_name(DATA_ENV, bench.name)}=DIR to read local "
                                      "files in the canonical schema instead")
            raise DataError(f"task {task!r}: cannot load benchmark {bench.name!r} split {split!r} "
                            f"from {where}: {type(exc).__name__}: {exc}{hint}") from exc
        if not problems:
            raise DataError(f"task {task!r}: benchmark {bench.name!r} split {split!r} is empty")
        rows = [_docs.problem_to_doc(p) for p in problems]
        ds = datasets.Dataset.from_list(rows, features=_docs.doc_features())
        self.config.test_split = split
        self.dataset = datasets.DatasetDict({split: ds})
        self.dataset_no_image = datasets.DatasetDict({split: ds.remove_columns("image")})


# ------------------------------------------- the functions the YAMLs point at
def doc_to_visual(doc: dict[str, Any]) -> list:
    image = doc.get("image")
    if image is None:
        return []
    return [to_rgb(image)]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The paper's CoT prompt (Qwen-VL style) -- what models other than r3v_* are asked.

    The r3v_* models ignore it and build the prompt in their own ``prompt_style``."""
    style = (lmms_eval_specific_kwargs or {}).get("prompt_style", "qwen")
    problem = _docs.doc_to_problem(doc)
    return prompts.cot_prompt(_docs.benchmark_of(problem.benchmark), problem, style)


def doc_to_target(doc: dict[str, Any]) -> str:
    return doc["answer"]


def process_results(doc: dict[str, Any], results: list) -> dict[str, float]:
    return _docs.score_doc(doc, results)


def process_results_miniwob_online(doc: dict[str, Any], results: list) -> dict[str, float]:
    """``r3v_miniwob_online``: every action replayed in the real MiniWoB++ environment."""
    from r3v_eval.miniwob.replay import online_miniwob  # optional deps (miniwob, selenium)

    return _docs.score_doc(doc, results, bench=online_miniwob())
