"""lmms-eval model wrappers: ``r3v_cot``, ``r3v_majority``, ``r3v_select``.

Each one rebuilds the :class:`~r3v_eval.benchmarks.base.Problem` of every request from the
task's document (so it only runs on the ``r3v_*`` tasks), asks the question in its own
``prompt_style`` through :mod:`r3v_eval.prompts`, and runs one strategy of
:mod:`r3v_eval.strategies` over an engine from :func:`r3v_eval.engines.load_engine`:

``r3v_cot``       greedy chain-of-thought (Test@1); returns the reply text.
``r3v_majority``  N sampled solutions, majority vote over their extracted answers (ties go to
                  the first sample); returns a JSON string with the winner and all candidates.
``r3v_select``    the same N samples, then the self-select prompt answered greedily (the
                  paper's test-time selection); returns a JSON string with the selector's reply
                  and all candidates.

The JSON output (:func:`r3v_eval.lmms.docs.encode_samples`) lets the task's
``process_results`` compute ``accuracy`` plus ``majority_at_n`` / ``select_at_n`` /
``pass_at_n`` from one generation. Decoding is set by ``--model_args`` only (see
:mod:`r3v_eval.lmms.args`), because the strategy defines how each stage decodes (greedy CoT,
sampled candidates, greedy selection). The task's ``generation_kwargs`` and ``--gen_kwargs``
are not used; every setting they ask for that differs from what the model does is named in a
warning (:meth:`R3VModel.overridden_gen_kwargs`), never dropped silently.

Under ``accelerate launch`` (``WORLD_SIZE`` > 1) each process loads the model on its own GPU
(``cuda:<local rank>``), or on the CPU when there is none; lmms-eval shards the documents by
rank and gathers the metrics.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger

from r3v_eval import strategies
from r3v_eval.benchmarks.base import Problem
from r3v_eval.engines import Sampling, load_engine
from r3v_eval.lmms import docs as _docs
from r3v_eval.lmms import tasks_dir
from r3v_eval.lmms.args import SAMPLING_KEYS, ModelArgs, parse_model_args


#: stop strings r3v models honour implicitly (they always stop at the end of the turn)
def task_generation_defaults() -> dict[str, Any]:
    """The ``generation_kwargs`` every r3v task sets (``tasks/_default_template_yaml``)."""
    import yaml

    class _Tags(yaml.SafeLoader):  # the template's ``!function`` tags are not read here
        pass

    _Tags.add_multi_constructor("!", lambda loader, suffix, node: None)
    text = (tasks_dir() / "_default_template_yaml").read_text(encoding="utf-8")
    return dict(yaml.load(text, Loader=_Tags).get("generation_kwargs") or {})


END_OF_TURN = ("<|im_end|>", "</s>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>")


class R3VModel(lmms):
    """Shared plumbing: argument checks, the engine, request -> problem, grouping."""

    model_name = "r3v"
    strategy = ""
    is_simple = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.args: ModelArgs = parse_model_args(self.model_name, kwargs)
        self._warn_unused()
        device = self.args.device
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size > 1 and self.args.backend == "hf":  # accelerate data parallel
            from accelerate import Accelerator

            self.accelerator = Accelerator()
            self._rank = self.accelerator.process_index
            self._world_size = self.accelerator.num_processes
            import torch

            device = (f"cuda:{self.accelerator.local_process_index}"
                      if torch.cuda.is_available() else "cpu")
        engine_kwargs = self.args.engine_kwargs()
        if device is not None:
            engine_kwargs["device"] = device
        logger.info(f"{self.model_name}: loading {self.args.pretrained} "
                    f"(backend={self.args.backend}, prompt_style={self.args.prompt_style})")
        self.engine = load_engine(self.args.backend, self.args.pretrained, **engine_kwargs)

    def _warn_unused(self) -> None:
        if self.strategy == "greedy":
            unused = [k for k in SAMPLING_KEYS if k in self.args.given]
            if unused:
                logger.warning(f"{self.model_name} decodes greedily; model_args "
                               f"{', '.join(unused)} are not used")

    @property
    def device(self):
        """Where the model runs (lmms-eval places its cross-process counters here)."""
        import torch

        engine_device = getattr(self.engine, "device", None)
        if engine_device is not None:
            return torch.device(engine_device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # ------------------------------------------------------------ lmms API
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(
            f"{self.model_name} generates text only; loglikelihood / multiple_choice tasks are "
            "not supported (use the r3v_* generation tasks)")

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError(
            f"{self.model_name} does not support multi-round generation; use the r3v_* tasks")

    def generate_until(self, requests: list[Instance]) -> list[str]:
        if not requests:
            return []
        if not getattr(self, "_announced", False):
            self._announced = True
            logger.info(f"{self.model_name}: {self.describe()}")
        self._report_gen_kwargs(requests)
        problems = [self._problem(req) for req in requests]
        groups: OrderedDict[str, list[int]] = OrderedDict()
        for i, p in enumerate(problems):
            groups.setdefault(p.benchmark, []).append(i)
        outputs: list[str | None] = [None] * len(requests)
        for name, idxs in groups.items():
            bench = _docs.benchmark_of(name)
            texts = self.run_strategy(bench, [problems[i] for i in idxs])
            for i, text in zip(idxs, texts):
                outputs[i] = text
        return outputs  # type: ignore[return-value]

    # ------------------------------------------------- generation settings
    def decoding(self) -> dict[str, Any]:
        """How this model decodes its solutions, in lmms-eval's ``gen_kwargs`` vocabulary."""
        a = self.args
        if self.strategy == "greedy":
            return {"max_new_tokens": a.max_new_tokens, "do_sample": False, "temperature": 0}
        return {"max_new_tokens": a.max_new_tokens, "do_sample": True, "temperature": a.temperature,
                "top_p": a.top_p, "top_k": a.top_k}

    def overridden_gen_kwargs(self, gen_kwargs: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """``{key: (asked, used)}`` for every setting in ``gen_kwargs`` that this model does not
        apply as asked (``used`` is None for a key it has no counterpart for). ``until`` is
        honoured only as "stop at the end of the turn", which r3v models always do."""
        used = self.decoding()
        out: dict[str, tuple[Any, Any]] = {}
        for key, asked in (gen_kwargs or {}).items():
            if key == "until":
                stops = [asked] if isinstance(asked, str) else list(asked or [])
                if any(s not in END_OF_TURN for s in stops):
                    out[key] = (asked, list(END_OF_TURN))
            elif key in used:
                same = (float(asked) == float(used[key]) if isinstance(asked, (int, float))
                        and isinstance(used[key], (int, float)) else asked == used[key])
                if not same:
                    out[key] = (asked, used[key])
            else:
                out[key] = (asked, None)
        return out

    def _report_gen_kwargs(self, requests: Sequence[Instance]) -> None:
        reported: set[str] = self.__dict__.setdefault("_gen_kwargs_reported", set())
        defaults = task_generation_defaults()
        for req in requests:
            gen_kwargs = req.args[1] if len(req.args) > 1 and isinstance(req.args[1], dict) else {}
            # the r3v tasks' own defaults are for other models: only what the user set counts
            gen_kwargs = {k: v for k, v in gen_kwargs.items()
                          if k not in defaults or defaults[k] != v}
            key = json.dumps(gen_kwargs, sort_keys=True, default=str)
            if key in reported:
                continue
            reported.add(key)
            diff = self.overridden_gen_kwargs(gen_kwargs)
            if diff:
                what = "; ".join(f"{k}={asked!r} -> {'not used' if used is None else repr(used)}"
                                 for k, (asked, used) in diff.items())
                logger.warning(f"{self.model_name} decodes by its --model_args, not by the task's "
                               f"generation_kwargs / --gen_kwargs: {what} (set max_new_tokens, "
                               "temperature, top_p, top_k, n in --model_args)")

    # ------------------------------------------------------------- helpers
    def _problem(self, req: Instance) -> Problem:
        args = req.args
        if len(args) != 6:
            raise ValueError(f"{self.model_name}: unexpected request arguments ({len(args)} "
                             "fields); expected (context, gen_kwargs, doc_to_visual, doc_id, "
                             "task, split)")
        _, _, _, doc_id, task, split = args
        try:
            doc = self.task_dict[task][split][doc_id]
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"{self.model_name}: no document {doc_id} in task {task!r} split "
                             f"{split!r}") from exc
        if not _docs.is_r3v_doc(doc):
            raise ValueError(f"{self.model_name} runs on the r3v_* tasks only, not {task!r} "
                             "(its documents do not carry an r3v problem); add "
                             "--include_path $(r3v tasks-dir) and pick an r3v_* task")
        return _docs.doc_to_problem(doc)

    @property
    def _progress(self) -> bool:
        return self.rank == 0

    def _sampling(self) -> Sampling:
        a = self.args
        return Sampling(n=a.n, temperature=a.temperature, top_p=a.top_p, top_k=a.top_k,
                        max_new_tokens=a.max_new_tokens, seed=a.seed)

    def describe(self) -> str:
        a = self.args
        if self.strategy == "greedy":
            return f"greedy CoT, prompt_style={a.prompt_style}, max_new_tokens={a.max_new_tokens}"
        text = (f"{self.strategy} over n={a.n} samples (temperature={a.temperature}, top_p={a.top_p}, "
                f"top_k={a.top_k}, seed={a.seed}), prompt_style={a.prompt_style}, "
                f"max_new_tokens={a.max_new_tokens}")
        if self.strategy == "select":
            text += (f", select_max_new_tokens={a.select_max_new_tokens}, "
                     f"select_choice={a.select_choice}, select_target={a.select_target}")
        return text

    def run_strategy(self, bench, problems: Sequence[Problem]) -> list[str]:
        raise NotImplementedError


class R3VCoT(R3VModel):
    """Greedy chain-of-thought (the paper's Test@1)."""

    model_name = "r3v_cot"
    strategy = "greedy"

    def run_strategy(self, bench, problems):
        outs = strategies.greedy_cot(self.engine, bench, problems, self.args.prompt_style,
                                     self.args.max_new_tokens, self._progress)
        return [o.reply or "" for o in outs]


class R3VMajority(R3VModel):
    """Majority vote over N sampled solutions."""

    model_name = "r3v_majority"
    strategy = "majority"

    def run_strategy(self, bench, problems):
        cands = strategies.sample_candidates(self.engine, bench, problems, self._sampling(),
                                             self.args.prompt_style, self._progress)
        outs = strategies.majority(bench, problems, cands)
        return [_docs.encode_samples("majority", o.reply, o.candidates, o.candidate_answers)
                for o in outs]


class R3VSelect(R3VModel):
    """Test-time selection: N sampled solutions, then the self-select prompt (greedy)."""

    model_name = "r3v_select"
    strategy = "select"

    def run_strategy(self, bench, problems):
        cands = strategies.sample_candidates(self.engine, bench, problems, self._sampling(),
                                             self.args.prompt_style, self._progress)
        outs = strategies.select(self.engine, bench, problems, cands, self.args.prompt_style,
                                 self.args.select_max_new_tokens, self._progress,
                                 choice=self.args.select_choice, target=self.args.select_target)
        return [_docs.encode_samples("select", o.reply, o.candidates, o.candidate_answers)
                for o in outs]


MODELS = {cls.model_name: cls for cls in (R3VCoT, R3VMajority, R3VSelect)}
