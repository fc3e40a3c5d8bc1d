"""Recipes: the run configuration as grouped dataclasses, loaded from YAML and validated
before any model loads. A wrong key or value is an error naming the dotted key.

Groups (the YAML's top-level keys): ``model``, ``data``, ``sampling``, ``reflect``, ``train``,
``eval``, ``run``, ``grpo``. ``reflect`` is :class:`r3v_train.reflect_config.ReflectConfig`; ``train`` is
:class:`r3v_train.train_settings.TrainSettings`; ``grpo`` (read by ``run.method: grpo`` only) is
:class:`r3v_train.grpo.GRPOSettings`; the rest are defined here.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r3v_eval.benchmarks import benchmark_names, get_benchmark
from r3v_eval.engines.base import DTYPES, PAPER_SAMPLING
from r3v_eval.prompts import PROMPT_STYLES, SELECT_CHOICES
from r3v_train.grpo import GRPOSettings
from r3v_train.methods import METHODS as METHOD_TABLE
from r3v_train.recipe_files import ConfigError, apply_overrides, build_section, read_recipe_dict
from r3v_train.recipe_library import resolve_recipe
from r3v_train.reflect_config import ReflectConfig
from r3v_train.train_settings import TrainSettings
from r3v_train.tiny import ARCHS as TINY_ARCHS, SIZES as TINY_SIZES
from r3v_train.trainer import check_trl_args

METHODS = tuple(METHOD_TABLE)
STARTS = ("base", "warmup", "previous")


@dataclass
class ModelConfig:
    """Parameters that control the model."""

    pretrained: str = field(default="", metadata={
        "help": "hub id or local folder of the base VLM; 'tiny:<arch>:<size>' builds a tiny "
                "random-weight model offline into the run folder (e.g. tiny:qwen2_vl:small); "
                "'shipped:<name>' is a model shipped in r3v_train/demo/assets (shipped:demo_base, "
                "built by `r3v pretrain`)"})
    prompt_style: str = field(default="qwen", metadata={"help": "qwen | llava | qwen2"})
    dtype: str = field(default="auto", metadata={"help": "auto | float32 | bfloat16 | float16"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda[:i]"})
    max_pixels: int | None = field(default=None, metadata={
        "help": "Qwen-family image pixel cap (bounds image tokens); the one budget for sampling, "
                "evaluation and training"})
    min_pixels: int | None = field(default=None, metadata={
        "help": "Qwen-family image pixel floor; as max_pixels, used by every stage"})
    perception_examples: int = field(default=0, metadata={
        "help": "tiny:<arch>:<size> only: pre-train the random-weight base on this many one-step "
                "perception questions of the benchmark (fresh pictures, answered in a sentence) "
                "before the warm-up, as a real VLM comes able to see; 0 = no pre-training"})
    perception_lr: float = field(default=3e-4, metadata={
        "help": "learning rate of the perception pre-training (vision tower trained too)"})
    perception_epochs: float = field(default=1.0, metadata={
        "help": "passes over the perception pre-training examples"})
    perception_skills: dict[str, float] | None = field(default=None, metadata={
        "help": "share of each perception skill in the pre-training rows, e.g. {count: 0.55, "
                "describe: 0.2, arith: 0.25} (shapes: count | solve | describe | arith); None = count only"})

    def __post_init__(self) -> None:
        if self.perception_examples < 0:
            raise ConfigError(f"model.perception_examples: must be >= 0, got {self.perception_examples}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ConfigError(f"model.prompt_style: {self.prompt_style!r} is not one of {PROMPT_STYLES}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"model.dtype: unknown dtype {self.dtype!r}")
        for key in ("max_pixels", "min_pixels"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"model.{key}: must be >= 1 (pixels), got {v}")
        if self.max_pixels and self.min_pixels and self.min_pixels > self.max_pixels:
            raise ConfigError(f"model.min_pixels: {self.min_pixels} is above model.max_pixels "
                              f"{self.max_pixels}")
        if self.pretrained.startswith("tiny:"):
            parts = self.pretrained.split(":")
            if len(parts) != 3 or parts[1] not in TINY_ARCHS or parts[2] not in TINY_SIZES:
                raise ConfigError(f"model.pretrained: {self.pretrained!r} is not "
                                  f"tiny:<arch>:<size> (arch: {' | '.join(TINY_ARCHS)}; size: "
                                  f"{' | '.join(TINY_SIZES)})")


@dataclass
class DataConfig:
    """Parameters that control the data."""

    benchmark: str = field(default="shapes", metadata={"help": "registered benchmark name"})
    source: str | None = field(default=None, metadata={
        "help": "local folder in the canonical schema; None = the public hub data set"})
    train_split: str | None = field(default=None, metadata={"help": "default: the benchmark's"})
    test_split: str | None = field(default=None, metadata={"help": "default: the benchmark's"})
    train_limit: int | None = field(default=None, metadata={"help": "use the first N train problems"})
    test_limit: int | None = field(default=None, metadata={"help": "use the first N test problems"})
    teacher_rationales: str | None = field(default=None, metadata={
        "help": "JSONL {id, rationale} used in the warm-up (iteration 0); 'builtin' = the "
                "benchmark's own perfect rationales (synthetic shapes only)"})
    teacher_limit: int | None = field(default=None, metadata={
        "help": "use at most this many teacher rationales (the first train problems that have one)"})
    teacher_per_template: int | None = field(default=None, metadata={
        "help": "keep at most this many teacher rationales per question template (benchmarks "
                "whose problems name a template, e.g. shapes)"})
    teacher_max_steps: int | None = field(default=None, metadata={
        "help": "keep teacher rationales only for questions of at most this many reasoning steps "
                "(benchmarks whose problems count their steps, e.g. shapes): the teacher then "
                "covers some step patterns only and self-training must find the rest"})
    teacher_max_level: int | None = field(default=None, metadata={
        "help": "keep teacher rationales only for questions of at most this difficulty level "
                "(benchmarks whose problems carry a level, meta 'level'): the easy-to-hard "
                "set-up, where the teacher covers the easy levels and self-training must reach "
                "the harder ones"})
    teacher_templates: list[str] | None = field(default=None, metadata={
        "help": "keep teacher rationales only for questions of these templates (benchmarks whose "
                "problems name a template, e.g. shapes; applied with teacher_max_steps)"})
    teacher_skip_words: list[str] | None = field(default=None, metadata={
        "help": "keep no teacher rationale for a question that contains any of these words "
                "(whole words, case-insensitive), e.g. [blue]: the teacher then covers part of "
                "the questions (the labelled split, answers only, covers all) and self-training "
                "must find rationales for the rest"})
    teacher_repeats: int = field(default=1, metadata={
        "help": "each teacher rationale appears this many times in the warm-up data"})
    warmup_qa: bool = field(default=True, metadata={
        "help": "iteration 0 trains direct-answer QA pairs for the whole train split"})
    warmup_perception: int = field(default=0, metadata={
        "help": "replay this many of the base's perception pre-training rows (fresh pictures "
                "of the val stream, never a train or test problem) in the warm-up data, hence "
                "in every iteration's training set and the control's: without them a tiny base "
                "forgets how to count while it learns the rationale format (benchmarks with "
                "perception questions, e.g. shapes)"})
    warmup_perception_skills: dict[str, float] | None = field(default=None, metadata={
        "help": "share of each perception skill in the replayed rows, e.g. {solve: 0.5, count: "
                "0.3, arith: 0.2} (default: model.perception_skills, else the benchmark's: "
                "counting only for shapes)"})
    options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "keyword arguments of the benchmark (generated benchmarks: e.g. shapes takes "
                "seed, sizes and world); set one with --set data.options.seed=3"})

    def __post_init__(self) -> None:
        if self.benchmark not in benchmark_names():
            raise ConfigError(f"data.benchmark: unknown benchmark {self.benchmark!r}; "
                              f"known: {', '.join(benchmark_names())}")
        for key in ("train_limit", "test_limit", "teacher_limit", "teacher_per_template",
                    "teacher_max_steps", "teacher_max_level"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"data.{key}: must be >= 1, got {v}")
        if self.teacher_repeats < 1:
            raise ConfigError(f"data.teacher_repeats: must be >= 1, got {self.teacher_repeats}")
        if self.teacher_templates is not None and not self.teacher_templates:
            raise ConfigError("data.teacher_templates: an empty list keeps no teacher rationale; "
                              "leave it out (null) to keep every template")
        if self.teacher_skip_words is not None:
            bad = [w for w in self.teacher_skip_words
                   if not isinstance(w, str) or not re.fullmatch(r"\w+", w)]
            if bad or not self.teacher_skip_words:
                raise ConfigError("data.teacher_skip_words: a non-empty list of single words, "
                                  f"got {self.teacher_skip_words!r}")
        if self.source is not None and Path(self.source).suffix == ".jsonl":
            raise ConfigError(f"data.source: {self.source} is one .jsonl file, which would be "
                              "both the train and the test split (evaluation on training rows); "
                              "give a folder holding <split>.jsonl per split (data.train_split, "
                              "data.test_split)")
        if self.warmup_perception < 0:
            raise ConfigError(f"data.warmup_perception: must be >= 0, got {self.warmup_perception}")
        if self.options:
            try:
                get_benchmark(self.benchmark, self.options)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"data.options: {exc}") from None


@dataclass
class SamplingConfig:
    """Parameters that control training-time sampling (the bootstrap)."""

    backend: str = field(default="hf", metadata={"help": "hf | vllm"})
    decode: str = field(default="generate", metadata={
        "help": "hf backend's decode path (sampling and evaluation): generate (transformers) | "
                "graph (shared prefill, static cache, a CUDA graph on a GPU; Qwen2-VL, "
                "Qwen2.5-VL, Qwen3-VL; others fall back to generate)"})
    n: int = field(default=PAPER_SAMPLING.n, metadata={
        "help": "samples per train question per iteration"})
    temperature: float = PAPER_SAMPLING.temperature
    top_p: float = PAPER_SAMPLING.top_p
    top_k: int = PAPER_SAMPLING.top_k
    max_new_tokens: int = PAPER_SAMPLING.max_new_tokens
    batch_size: int = 16
    chunk_size: int = field(default=256, metadata={
        "help": "questions per pool append; a killed run loses at most one chunk of work"})

    def __post_init__(self) -> None:
        if self.backend not in ("hf", "vllm"):
            raise ConfigError(f"sampling.backend: {self.backend!r} is not hf or vllm")
        if self.decode not in ("generate", "graph"):
            raise ConfigError(f"sampling.decode: {self.decode!r} is not generate or graph")
        if self.decode != "generate" and self.backend != "hf":
            raise ConfigError(f"sampling.decode: {self.decode} applies to backend hf only")
        if self.n < 1 or self.temperature <= 0:
            raise ConfigError("sampling.n must be >= 1 and sampling.temperature > 0")
        if self.batch_size < 1 or self.chunk_size < 1:
            raise ConfigError("sampling.batch_size and sampling.chunk_size must be >= 1")


@dataclass
class EvalConfig:
    """Parameters that control evaluation after each iteration."""

    n: int = field(default=PAPER_SAMPLING.n, metadata={
        "help": "samples for majority@N / select@N / pass@N; 0 = greedy only"})
    select: bool = field(default=True, metadata={"help": "also test-time selection (select@N)"})
    select_choice: str = field(default="generate", metadata={
        "help": "how select@N takes its answer: generate (the model writes it greedily, the "
                "paper's) | candidates (the candidates' answers are the only choices; the one "
                "whose select reply, in the reflect.select_target format, the model finds most "
                "likely; hf engine)"})
    max_new_tokens: int = PAPER_SAMPLING.max_new_tokens
    batch_size: int = field(default=16, metadata={"help": "prompts per generate call when evaluating"})
    every_iteration: bool = field(default=True, metadata={
        "help": "evaluate after every iteration; False = only the last one"})
    sampled_every_iteration: bool = field(default=True, metadata={
        "help": "majority / select / pass @N after every evaluated iteration; False = greedy "
                "only before the last iteration (the sampled metrics cost N generations each)"})
    ns: list[int] | None = field(default=None, metadata={
        "help": "also report majority / select / pass at these N (each <= eval.n), from the "
                "same eval.n samples per question; None = at eval.n only"})
    seed: int = field(default=0, metadata={
        "help": "seed of the sampled evaluation: re-evaluating a model gives the same "
                "majority / select / pass figures"})

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ConfigError(f"eval.n: must be >= 0, got {self.n}")
        if self.batch_size < 1:
            raise ConfigError(f"eval.batch_size: must be >= 1, got {self.batch_size}")
        if self.select_choice not in SELECT_CHOICES:
            raise ConfigError(f"eval.select_choice: must be one of {', '.join(SELECT_CHOICES)}, "
                              f"got {self.select_choice!r}")
        for k in self.ns or ():
            if not 1 <= k <= self.n:
                raise ConfigError(f"eval.ns: {k} is not between 1 and eval.n={self.n}")


@dataclass
class RunConfig:
    """Parameters that control the iteration driver."""

    method: str = field(default="r3v", metadata={"help": " | ".join(METHODS)})
    iterations: int = field(default=4, metadata={"help": "self-training iterations after the warm-up"})
    warmup: bool = field(default=True, metadata={"help": "iteration 0 trains QA pairs + teacher rationales"})
    warmup_epochs: float | None = field(default=None, metadata={
        "help": "passes over the warm-up data in iteration 0; None = train.num_train_epochs"})
    start: str = field(default="base", metadata={
        "help": "where each self-training iteration's training starts: base (fresh from the "
                "original model, the paper), warmup (from the iteration-0 checkpoint) or "
                "previous (from the last iteration's checkpoint)"})
    warmup_from: str | None = field(default=None, metadata={
        "help": "a run folder whose warm-up (iteration 0: base model, checkpoint, evaluation) "
                "this run shares instead of training its own; the samples its checkpoint "
                "draws are shared too (kept in that folder's pool), so STaR and R3V start "
                "from the same iteration-0 samples. Its model, data, sampling and train "
                "settings and run.seed must equal this run's"})
    name: str | None = field(default=None, metadata={
        "help": "the run's label in leaderboards; None = run.method"})
    out_dir: str = "runs/r3v"
    seed: int = 0
    control_reference: str | None = field(default=None, metadata={
        "help": "run.method=control: a run folder whose last iteration's optimizer steps the "
                "control matches (e.g. the R3V run it is the control of)"})
    control_steps: int | None = field(default=None, metadata={
        "help": "run.method=control: the optimizer steps to continue the warm-up for, when "
                "there is no reference run"})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"run.method: {self.method!r} is not one of {', '.join(METHODS)}")
        if self.method == "control":
            if not self.warmup:
                raise ConfigError("run.method=control continues the warm-up: it needs run.warmup: true")
            if (self.control_reference is None) == (self.control_steps is None):
                raise ConfigError("run.method=control: give exactly one of run.control_reference "
                                  "(a run folder to match) and run.control_steps")
        elif self.control_reference is not None or self.control_steps is not None:
            raise ConfigError(f"run.control_reference / run.control_steps apply to "
                              f"run.method=control only, not {self.method!r}")
        if self.control_steps is not None and self.control_steps < 1:
            raise ConfigError(f"run.control_steps: must be >= 1, got {self.control_steps}")
        if self.iterations < 0:
            raise ConfigError(f"run.iterations: must be >= 0, got {self.iterations}")
        if self.start not in STARTS:
            raise ConfigError(f"run.start: {self.start!r} is not one of {', '.join(STARTS)}")
        if self.start == "warmup" and not self.warmup:
            raise ConfigError("run.start=warmup needs the warm-up (run.warmup: true)")
        if self.warmup_from is not None and not self.warmup:
            raise ConfigError("run.warmup_from shares a warm-up: it needs run.warmup: true")
        if self.warmup_epochs is not None and self.warmup_epochs <= 0:
            raise ConfigError(f"run.warmup_epochs: must be > 0, got {self.warmup_epochs}")


def _section_types() -> dict[str, type]:
    return {"model": ModelConfig, "data": DataConfig, "sampling": SamplingConfig,
            "reflect": ReflectConfig, "train": TrainSettings, "eval": EvalConfig, "run": RunConfig,
            "grpo": GRPOSettings}


@dataclass
class R3VConfig:
    model: ModelConfig
    data: DataConfig
    sampling: SamplingConfig
    reflect: ReflectConfig
    train: TrainSettings
    eval: EvalConfig
    run: RunConfig
    grpo: GRPOSettings

    def to_dict(self) -> dict[str, Any]:
        # the grpo section only where it is read (earlier run folders then still match)
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in _section_types()
                if name != "grpo" or self.run.method == "grpo"}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_from_dict(data: dict[str, Any]) -> R3VConfig:
    sections = _section_types()
    if not isinstance(data, dict):
        raise ConfigError("a recipe must be a YAML mapping")
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; known: {', '.join(sections)}")
    for key in ("sft", "refine", "select", "prompt_style"):
        if key in (data.get("reflect") or {}):
            raise ConfigError(f"reflect.{key}: set by run.method / model.prompt_style, not here")
    for key in ("max_pixels", "min_pixels"):  # one image budget: a model trains as it samples
        if key in (data.get("train") or {}):
            raise ConfigError(f"train.{key}: set model.{key} instead (one image budget for "
                              "sampling, evaluation and training)")
    for key in ("bf16", "model_dtype"):  # one precision: a model trains as it samples
        if key in (data.get("train") or {}):
            raise ConfigError(f"train.{key}: set model.dtype instead (one dtype for sampling, "
                              "evaluation and training)")
    built = {name: build_section(cls, data.get(name), name) for name, cls in sections.items()}
    try:
        check_trl_args(built["train"].trl_args)
    except ValueError as exc:
        raise ConfigError(f"train: {exc}") from None
    built["train"] = dataclasses.replace(built["train"], max_pixels=built["model"].max_pixels,
                                         min_pixels=built["model"].min_pixels,
                                         **training_precision(built["model"].dtype))
    cfg = R3VConfig(**built)
    if not cfg.model.pretrained:
        raise ConfigError("model.pretrained: required (a hub id or a local folder)")
    if cfg.model.perception_examples and not cfg.model.pretrained.startswith("tiny:"):
        raise ConfigError("model.perception_examples: pre-trains a tiny:<arch>:<size> base only; "
                          f"{cfg.model.pretrained!r} is already a pre-trained model")
    return cfg


def training_precision(dtype: str) -> dict[str, Any]:
    """``train.bf16`` / ``train.model_dtype`` for ``model.dtype``: bfloat16 trains in bf16
    (LoRA on bf16 weights; full fine-tuning on float32 master weights under bf16 autocast),
    float32 in float32, auto as the machine allows (bf16 on a GPU that has it)."""
    if dtype == "float16":
        raise ConfigError("model.dtype: float16 cannot train (r3v does no fp16 training); use "
                          "bfloat16 or float32")
    return {"bfloat16": {"bf16": True, "model_dtype": "auto"},
            "float32": {"bf16": False, "model_dtype": "float32"},
            "auto": {"bf16": None, "model_dtype": "auto"}}[dtype]


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> R3VConfig:
    """Load, merge (``base:``), override (``--set``) and validate a recipe: a file, or the name of
    a shipped one (``demo/r3v``; :func:`r3v_train.recipe_library.resolve_recipe`)."""
    data = read_recipe_dict(resolve_recipe(path))
    return config_from_dict(apply_overrides(data, overrides or []))
