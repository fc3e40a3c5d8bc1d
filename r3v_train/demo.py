"""``r3v demo``: self-improvement end to end on one machine, with no network.

The paper's setting, shrunk to a laptop:

1. **Base VLM.** A tiny Qwen2-VL (``small``, random weights) is pre-trained from scratch on perception only: one-step questions about fresh
   pictures ("How many red squares are there?") answered in a sentence ("There are 2 red
   squares."), as a real VLM comes able to see and to say what it sees. It never sees a
   multi-step question here.
2. **Warm-up (iteration 0).** A fixed, labelled train split of multi-step questions with
   answers only (direct-answer QA pairs), plus a few perfect rationales that cover only the
   one- and two-step question types, as the paper's teacher rationales.
3. **Self-training.** From the same warm-up checkpoint, ``star`` (SFT on positives) and
   ``r3v`` (SFT + self-refine + self-select) sample the train split N times per iteration,
   keep what the answer check allows, and retrain from the warm-up checkpoint on the QA pairs,
   the teacher rationales and everything self-generated so far.
4. **Matched-compute control.** The warm-up training continued on its own data for as many
   optimizer steps as the last R3V iteration took: a gain the control also shows is just more
   training.
5. **Evaluation** on a held-out test split: greedy CoT every iteration; majority@N, select@N
   and pass@N for the final models; select@N vs majority@N as N grows for R3V (its table row
   and the sweep come from one set of max(N) samples per question). Per-question outcomes
   (replies, candidates, extracted answers) are kept in ``outcomes_*.jsonl`` for auditing.

Everything goes through the library: shapes data (:mod:`r3v_eval.shapes_world`), prompts,
the ``hf`` engine and strategies (:mod:`r3v_eval.strategies`), the pool and the reflection
rules (:mod:`r3v_train.pool`, :mod:`r3v_train.reflect`) and TRL training
(:func:`r3v_train.trainer.train_sft`). Each stage is skipped when its output exists, so a
killed demo resumes. Outputs in ``--out``: ``leaderboard.md``, ``leaderboard.json``,
``accuracy_per_iteration.png``, ``select_vs_majority.png``, ``demo.log`` and the stage folders.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("star", "r3v")
ONE_STEP = ("count_all", "count_color", "count_shape", "count_color_shape")


@dataclass
class DemoConfig:
    """Sizes and knobs of the demo (``quick`` is the CI smoke version)."""

    model_size: str = "small"
    tie_embeddings: bool = True     # as Qwen2-VL; untied was tried (README: demo notes)
    grid_size: int = 3              # 3x3 cells of 28 px: one image token per cell
    image_size: int = 84
    colors: tuple[str, ...] = ("red", "blue")
    shapes: tuple[str, ...] = ("square", "circle")
    min_objects: int = 2
    max_objects: int = 6
    max_add: int = 2
    n_pretrain: int = 12000         # fresh one-step perception examples (~3 min)
    n_train: int = 600              # the fixed labelled train split (answers only)
    n_test: int = 1000              # held-out test questions
    teacher_per_template: int = 6   # perfect rationales per one-/two-step template
    teacher_max_steps: int = 2      # no teacher rationale for three-step questions
    teacher_repeats: int = 4        # the few rationales are repeated so the format is learned
    iterations: int = 2
    n: int = 3                      # samples per question (training and test time)
    plot_ns: tuple[int, ...] = (1, 3, 5)   # must include n
    pretrain_lr: float = 3e-4       # 1e-3 leaves the small model's counting at chance
    pretrain_epochs: float = 1.0
    lr: float = 3e-4
    batch_size: int = 32
    warmup_epochs: float = 5.0      # to convergence, so the control gains little from more
    iteration_epochs: float = 1.0
    max_new_tokens: int = 80
    gen_batch_size: int = 32

    def __post_init__(self) -> None:
        if self.n not in self.plot_ns:
            raise ValueError(f"plot_ns={self.plot_ns} must include n={self.n}: the final R3V "
                             "model's table row and its @N sweep come from the same samples")

    def world(self, templates: tuple[str, ...] | None = None):
        """The demo's shapes world (all question types, or only ``templates``)."""
        from r3v_eval.shapes_world import ShapesConfig

        return ShapesConfig(grid_size=self.grid_size, image_size=self.image_size,
                            colors=self.colors, shapes=self.shapes, min_objects=self.min_objects,
                            max_objects=self.max_objects, max_add=self.max_add,
                            templates=templates)

    @classmethod
    def quick(cls) -> "DemoConfig":
        return cls(model_size="tiny", n_pretrain=128, n_train=24, n_test=16,
                   teacher_per_template=1, iterations=1, plot_ns=(1, 3), warmup_epochs=1.0,
                   max_new_tokens=40)


@dataclass
class Stage:
    """A stage folder: a trained model (``model/``) and its evaluations."""

    path: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    last_model: str | None = None   # the last iteration's model, for a self-trained stage

    @property
    def model(self) -> str:
        return str(self.path / "model")

    @property
    def final_model(self) -> str:
        return self.last_model or self.model


class Demo:
    def __init__(self, out: Path, seed: int, cfg: DemoConfig) -> None:
        from r3v_eval.benchmarks.shapes import ShapesBenchmark

        self.out, self.seed, self.cfg = out, seed, cfg
        out.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()
        self.world = cfg.world()
        self.bench = ShapesBenchmark(config=self.world, seed=1000 + seed,
                                     sizes={"train": cfg.n_train, "test": cfg.n_test})
        self.train = self.bench.load("train", limit=cfg.n_train)
        self.test = self.bench.load("test", limit=cfg.n_test)
        self.by_id = {p.id: p for p in self.train}

    # ------------------------------------------------------------ helpers
    def log(self, msg: str) -> None:
        line = f"[demo {time.time() - self.t0:6.0f}s] {msg}"
        print(line, flush=True)
        with (self.out / "demo.log").open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def settings(self, *, lr: float, epochs: float = 1.0, max_steps: int = -1,
                 freeze_vision: bool = True):
        from r3v_train.trainer import TrainSettings

        return TrainSettings(method="full", learning_rate=lr, lr_scheduler="constant_with_warmup",
                             warmup_ratio=0.05, epochs=epochs, max_steps=max_steps,
                             per_device_batch_size=self.cfg.batch_size, gradient_checkpointing=False,
                             freeze_vision=freeze_vision, save_strategy="no", logging_steps=50,
                             seed=self.seed)

    def fit(self, base: str, rows: list[dict[str, Any]], stage: Path, settings) -> dict[str, Any]:
        from r3v_train.trainer import train_sft

        result = train_sft(base, rows, stage / "model", settings, progress=True)
        return result.metrics

    def sampling(self, n: int, seed: int):
        """The paper's sampling (temperature 0.9, top_p 0.95, top_k 50) at the demo's length."""
        from r3v_eval.strategies import PAPER_SAMPLING

        return dataclasses.replace(PAPER_SAMPLING, n=n, max_new_tokens=self.cfg.max_new_tokens,
                                   seed=seed)

    def engine(self, model: str):
        from r3v_eval.engines.hf import HFEngine

        return HFEngine(model, device="cpu", dtype="float32", batch_size=self.cfg.gen_batch_size)

    def greedy(self, stage: Path, name: str, model: str) -> dict[str, float]:
        """Greedy CoT accuracy on the test split (cached in ``eval_<name>.json``)."""
        from r3v_eval import strategies

        path = stage / f"eval_{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        self.log(f"evaluating {name} on {len(self.test)} test questions (greedy)")
        ev = strategies.evaluate(self.engine(model), self.bench, self.test, n=0,
                                 max_new_tokens=self.cfg.max_new_tokens)
        _write_json(path, ev.metrics)
        _write_outcomes(stage / f"outcomes_{name}.jsonl", ev.outcomes)
        self.log(f"  {name}: greedy {100 * ev.metrics['greedy']:.1f}")
        return ev.metrics

    def sampled(self, stage: Path, model: str, ns: tuple[int, ...]) -> dict[str, float]:
        """majority@k, select@k and pass@k for every k in ``ns`` from one set of max(ns)
        samples per test question (cached in ``eval_sampled.json``)."""
        from r3v_eval import strategies

        path = stage / "eval_sampled.json"
        if path.exists():
            return json.loads(path.read_text())
        n = max(ns)
        self.log(f"evaluating {stage.name} with {n} samples per test question: majority / "
                 f"select / pass @{', @'.join(map(str, ns))}")
        ev = strategies.evaluate(self.engine(model), self.bench, self.test, n=n, greedy=False,
                                 sampling=self.sampling(n, self.seed * 7 + 1), also_at=ns,
                                 max_new_tokens=self.cfg.max_new_tokens)
        _write_json(path, ev.metrics)
        _write_outcomes(stage / "outcomes_sampled.jsonl", ev.outcomes)
        self.log(f"  {stage.name}: " + ", ".join(f"{k} {100 * v:.1f}"
                                                 for k, v in sorted(ev.metrics.items())))
        return ev.metrics

    def final_metrics(self, stage: "Stage", ns: tuple[int, ...] | None = None) -> dict[str, float]:
        """The last greedy figure plus the sampled metrics at N (and any other ``ns``)."""
        metrics = dict(stage.history[-1]["metrics"])
        metrics.update(self.sampled(stage.path, stage.final_model, ns or (self.cfg.n,)))
        stage.history[-1]["metrics"] = metrics
        return metrics

    # ------------------------------------------------------------- stages
    def pretrain(self) -> Stage:
        """Perception only: one-step questions on fresh pictures, answered in a sentence."""
        from r3v_eval.benchmarks.shapes import ShapesBenchmark
        from r3v_eval.shapes_world import rationale_steps
        from r3v_train.tiny import build_tiny_model

        stage = Stage(self.out / "base")
        if (stage.path / "model" / "DONE").exists():
            return stage
        init = stage.path / "random_init"
        if not (init / "config.json").exists():
            self.log(f"building a random-weight {self.cfg.model_size} Qwen2-VL "
                     f"({'tied' if self.cfg.tie_embeddings else 'untied'} embeddings)")
            build_tiny_model("qwen2_vl", init, size=self.cfg.model_size, seed=self.seed,
                             tie_embeddings=self.cfg.tie_embeddings)
        world = self.cfg.world(ONE_STEP)
        perception = ShapesBenchmark(config=world, seed=2000 + self.seed,
                                     sizes={"val": self.cfg.n_pretrain}).load("val")
        rows = []
        for p in perception:
            steps, _ = rationale_steps(p.meta["objects"], [], p.meta["query"])
            rows.append({"prompt": p.question, "completion": steps[0], "image": p.load_image()})
        self.log(f"pre-training perception on {len(rows)} one-step questions (fresh pictures)")
        metrics = self.fit(str(init), rows, stage.path,
                             self.settings(lr=self.cfg.pretrain_lr, epochs=self.cfg.pretrain_epochs,
                                           freeze_vision=False))
        self.log(f"  loss {metrics.get('train_loss', float('nan')):.3f}")
        return stage

    @functools.cached_property
    def warm_data(self):
        """QA pairs for the whole train split + teacher rationales for one-/two-step types
        (built once: the warm-up, every method and the control train on the same set)."""
        from r3v_train.reflect import build_warmup

        per_template: dict[str, int] = {}
        teacher = {}
        for p in self.train:
            if p.meta["steps"] > self.cfg.teacher_max_steps:
                continue
            k = per_template.get(p.meta["template"], 0)
            if k < self.cfg.teacher_per_template:
                per_template[p.meta["template"]] = k + 1
                teacher[p.id] = p.meta["rationale"]
        warm = build_warmup(self.bench, self.by_id, teacher, qa=True)
        extra = [e for e in warm.examples if e.kind == "teacher"] * (self.cfg.teacher_repeats - 1)
        warm.examples.extend(extra)
        return warm

    def warmup(self, base: Stage) -> Stage:
        stage = Stage(self.out / "warmup")
        warm = self.warm_data
        if not (stage.path / "model" / "DONE").exists():
            self.log(f"warm-up (iteration 0): {warm.summary()}")
        rows = self._rows(warm.shuffled(self.seed))
        self.fit(base.model, rows, stage.path,
                   self.settings(lr=self.cfg.lr, epochs=self.cfg.warmup_epochs))
        metrics = self.greedy(stage.path, "iter0", stage.model)
        stage.history.append({"iteration": 0, "metrics": metrics})
        return stage

    def _rows(self, examples) -> list[dict[str, Any]]:
        return [{"prompt": e.prompt, "completion": e.completion, "image": e.load_image(self.by_id)}
                for e in examples]

    def self_train(self, method: str, warm: Stage) -> Stage:
        from r3v_train.pool import Sample, SamplePool
        from r3v_train.reflect import ReflectConfig, build_examples, combine

        from r3v_eval import strategies

        stage = Stage(self.out / method, history=list(warm.history))
        pool = SamplePool(stage.path / "pool")
        rcfg = ReflectConfig.for_method(method, min_rationale_chars=0, drop_answer_first=True,
                                        n_candidates=self.cfg.n, seed=self.seed)
        sampler = warm.model
        warm_data = self.warm_data
        steps_used = 0
        for t in range(1, self.cfg.iterations + 1):
            it = stage.path / f"iter_{t}"
            shared = self.out / METHODS[0] / "pool" / "iter_0.jsonl"
            if t == 1 and method != METHODS[0] and shared.exists() and not pool.done_keys(0):
                # iteration 1 samples the same warm-up checkpoint with the same seed for every
                # method: reuse the first method's samples instead of drawing them again
                pool.append(SamplePool(shared.parent).read_iteration(0))
            if not pool.done_keys(t - 1):
                self.log(f"{method} iteration {t}: sampling {len(self.train)} x {self.cfg.n}")
                cands = strategies.sample_candidates(self.engine(sampler), self.bench, self.train,
                                                     self.sampling(self.cfg.n, self.seed * 1000 + t))
                new = []
                for p, replies in zip(self.train, cands):
                    for j, reply in enumerate(replies):
                        s = self.bench.score(reply, p)
                        new.append(Sample(t - 1, p.id, j, "qwen", reply, s.extracted, s.correct))
                pool.append(new)
            stats = pool.stats(t - 1)
            self.log(f"  pool of iteration {t - 1}: {stats['positives']}/{stats['n']} positive, "
                     f"{stats.get('questions_solved', '?')} questions solved")
            built = build_examples(self.bench, self.by_id, pool, rcfg)
            data = combine(warm_data, built)
            if not (it / "model" / "DONE").exists():
                self.log(f"{method} iteration {t}: training from the warm-up checkpoint on "
                         f"{data.summary()}")
            metrics = self.fit(warm.model, self._rows(data.shuffled(self.seed + t)), it,
                                 self.settings(lr=self.cfg.lr, epochs=self.cfg.iteration_epochs))
            steps_used = int(metrics.get("global_step") or 0)
            sampler = str(it / "model")
            ev = self.greedy(it, f"iter{t}", sampler)
            stage.history.append({"iteration": t, "metrics": ev, "pool": stats,
                                  "examples": data.counts, "steps": steps_used})
        stage.last_model = sampler
        return stage

    def control(self, warm: Stage, steps: int) -> Stage:
        """The warm-up training continued for ``steps`` more optimizer steps, same data."""
        stage = Stage(self.out / "control")
        warm_data = self.warm_data
        if not (stage.path / "model" / "DONE").exists():
            self.log(f"matched-compute control: warm-up continued for {steps} steps")
        self.fit(warm.model, self._rows(warm_data.shuffled(self.seed + 99)), stage.path,
                   self.settings(lr=self.cfg.lr, epochs=100.0, max_steps=max(1, steps)))
        metrics = self.greedy(stage.path, "final", stage.model)
        stage.history = list(warm.history[:1]) + [{"iteration": self.cfg.iterations,
                                                   "metrics": metrics, "steps": steps}]
        return stage


def select_vs_majority(metrics: dict[str, float], ns: tuple[int, ...]) -> dict[str, dict[int, float]]:
    """``{"majority"|"select"|"pass": {N: accuracy}}`` out of one model's sampled metrics."""
    return {k: {n: metrics[f"{k}@{n}"] for n in sorted(ns)} for k in ("majority", "select", "pass")}


def _write_outcomes(path: Path, outcomes: dict[str, list[Any]]) -> None:
    """Every strategy's per-question outcome (reply, candidates, answers), for auditing."""
    with path.open("w", encoding="utf-8") as fh:
        for name, outs in outcomes.items():
            for o in outs:
                fh.write(json.dumps({"metric": name, **o.to_dict()}) + "\n")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


# ---------------------------------------------------------------- outputs
def leaderboard(stages: dict[str, Stage]) -> dict[str, Any]:
    """``{method: {metric: value}}`` for the final models, plus ``history`` per iteration."""
    board: dict[str, Any] = {}
    for name, stage in stages.items():
        final = stage.history[-1]["metrics"]
        board[name] = {k: round(v, 4) for k, v in final.items()}
    board["history"] = {name: [{"iteration": h["iteration"], "metrics": h["metrics"]}
                               for h in st.history] for name, st in stages.items()}
    return board


def write_markdown(board: dict[str, Any], sel: dict[str, dict[int, float]], cfg: DemoConfig,
                   seed: int, minutes: float, path: Path) -> str:
    metrics = ["greedy", f"majority@{cfg.n}", f"select@{cfg.n}", f"pass@{cfg.n}"]
    methods = list(board["history"])
    lines = [f"# r3v demo: shapes, seed {seed}", "",
             f"{cfg.n_train} labelled train questions (answers only), {cfg.n_test} test questions, "
             f"{cfg.iterations} self-training iterations, N = {cfg.n}; {minutes:.1f} minutes.", "",
             "| method | " + " | ".join(metrics) + " |",
             "|---|" + "---:|" * len(metrics)]
    for m in methods:
        row = [f"{100 * board[m][k]:.1f}" if k in board[m] else "–" for k in metrics]
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines += ["", "Greedy accuracy per iteration:", "",
              "| method | " + " | ".join(f"iter {i}" for i in range(cfg.iterations + 1)) + " |",
              "|---|" + "---:|" * (cfg.iterations + 1)]
    for m in methods:
        by_it = {h["iteration"]: h["metrics"]["greedy"] for h in board["history"][m]}
        lines.append(f"| {m} | " + " | ".join(
            f"{100 * by_it[i]:.1f}" if i in by_it else "–" for i in range(cfg.iterations + 1)) + " |")
    lines += ["", "Final R3V model, as N grows:", "",
              "| N | " + " | ".join(str(n) for n in sorted(sel["majority"])) + " |",
              "|---|" + "---:|" * len(sel["majority"])]
    for k in ("majority", "select", "pass"):
        lines.append(f"| {k}@N | " + " | ".join(f"{100 * sel[k][n]:.1f}"
                                                 for n in sorted(sel[k])) + " |")
    se = 100 * (0.25 / max(1, cfg.n_test)) ** 0.5
    lines += ["", f"One standard error on {cfg.n_test} questions is at most {se:.1f} points."]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_plots(board: dict[str, Any], sel: dict[str, dict[int, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, hist in board["history"].items():
        xs = [h["iteration"] for h in hist]
        ys = [100 * h["metrics"]["greedy"] for h in hist]
        style = "--" if m in ("warmup", "control") else "-"
        ax.plot(xs, ys, style, marker="o", label=m)
    _finish(plt, fig, ax, sorted({h["iteration"] for hist in board["history"].values() for h in hist}),
            "iteration", "greedy CoT accuracy (%)", "shapes: accuracy per iteration",
            out / "accuracy_per_iteration.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for k, marker in (("select", "o"), ("majority", "s"), ("pass", "^")):
        ns = sorted(sel[k])
        ax.plot(ns, [100 * sel[k][n] for n in ns], marker=marker,
                linestyle=":" if k == "pass" else "-", label=f"{k}@N")
    _finish(plt, fig, ax, sorted(sel["majority"]), "N (samples)", "accuracy (%)",
            "final R3V model: select@N vs majority@N", out / "select_vs_majority.png")


def _finish(plt, fig, ax, xticks, xlabel: str, ylabel: str, title: str, path: Path) -> None:
    ax.set_xticks(xticks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(out_dir: str | Path = "r3v_demo", seed: int = 0, quick: bool = False,
             config: DemoConfig | None = None) -> int:
    import torch

    cfg = config or (DemoConfig.quick() if quick else DemoConfig())
    random.seed(seed)
    torch.manual_seed(seed)
    out = Path(out_dir)
    demo = Demo(out, seed, cfg)
    _write_json(out / "demo_config.json", {"seed": seed, "quick": quick, **dataclasses.asdict(cfg)})
    demo.log(f"shapes world: {cfg.grid_size}x{cfg.grid_size} grid, {len(cfg.colors)} colours x "
             f"{len(cfg.shapes)} shapes; {len(demo.train)} train / {len(demo.test)} test questions")
    base = demo.pretrain()
    warm = demo.warmup(base)
    stages: dict[str, Stage] = {"warmup": warm}
    for method in METHODS:
        stages[method] = demo.self_train(method, warm)
    steps = stages["r3v"].history[-1].get("steps", 0) if cfg.iterations else 0
    stages["control"] = demo.control(warm, steps)
    for name, stage in stages.items():
        # the final R3V model is sampled max(plot_ns) times: its @N sweep and its row in the
        # table come from the same samples
        demo.final_metrics(stage, cfg.plot_ns if name == "r3v" else None)
    sel = select_vs_majority(stages["r3v"].history[-1]["metrics"], cfg.plot_ns)
    _write_json(out / "select_vs_majority.json", sel)
    board = leaderboard(stages)
    minutes = (time.time() - demo.t0) / 60
    _write_json(out / "leaderboard.json", board)
    text = write_markdown(board, sel, cfg, seed, minutes, out / "leaderboard.md")
    write_plots(board, sel, out)
    print(text)
    demo.log(f"wrote {out / 'leaderboard.md'}, leaderboard.json and two plots")
    return 0
