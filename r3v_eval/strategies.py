"""Inference strategies over any engine: greedy CoT, majority vote, test-time selection, pass@N.

Each returns, per problem, an :class:`Outcome` holding the final answer *and* what the
strategy saw (the candidates and their extracted answers), so a run can be audited.
:func:`evaluate` samples once and derives every metric from the same samples.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

from r3v_eval import prompts
from r3v_eval.benchmarks.base import Benchmark, Problem
from r3v_eval.engines.base import PAPER_SAMPLING, Engine, GenRequest, Sampling  # noqa: F401
from r3v_eval.metric_names import GREEDY, at

#: The paper's test-time sampling: 3 samples at temperature 0.9 (top_p 0.95, top_k 50).
SELECT_MAX_NEW_TOKENS = 64


@dataclass
class Outcome:
    problem_id: str
    strategy: str
    reply: str | None
    extracted: str | None
    correct: bool
    candidates: list[str] = field(default_factory=list)
    candidate_answers: list[str | None] = field(default_factory=list)
    candidate_correct: list[bool] = field(default_factory=list)
    level: int | None = None  # the problem's difficulty level (meta "level"), if it has one

    def to_dict(self) -> dict:
        return asdict(self)


def level_of(problem: Problem) -> int | None:
    """The difficulty level a benchmark gave ``problem`` (meta ``level``), or None."""
    level = (problem.meta or {}).get("level")
    return level if isinstance(level, int) and not isinstance(level, bool) else None


def _requests(problems: Sequence[Problem], texts: Sequence[str]) -> list[GenRequest]:
    return [GenRequest(t, p.load_image(), {"id": p.id}) for p, t in zip(problems, texts)]


def cot_requests(bench: Benchmark, problems: Sequence[Problem], style: str) -> list[GenRequest]:
    return _requests(problems, [prompts.cot_prompt(bench, p, style) for p in problems])


# ---------------------------------------------------------------- greedy CoT
def greedy_cot(engine: Engine, bench: Benchmark, problems: Sequence[Problem], style: str = "qwen",
               max_new_tokens: int = PAPER_SAMPLING.max_new_tokens,
               progress: bool = True) -> list[Outcome]:
    sampling = Sampling(max_new_tokens=max_new_tokens)
    replies = engine.generate(cot_requests(bench, problems, style), sampling, progress)
    out = []
    for p, (reply,) in zip(problems, replies):
        s = bench.score(reply, p)
        out.append(Outcome(p.id, "greedy", reply, s.extracted, s.correct, level=level_of(p)))
    return out


def sample_candidates(engine: Engine, bench: Benchmark, problems: Sequence[Problem],
                      sampling: Sampling = PAPER_SAMPLING, style: str = "qwen",
                      progress: bool = True) -> list[list[str]]:
    """N chain-of-thought samples per problem (one engine call)."""
    return engine.generate(cot_requests(bench, problems, style), sampling, progress)


# ------------------------------------------------------------- majority vote
def majority_vote(answers: Sequence[str | None]) -> tuple[str | None, int | None]:
    """The most frequent parseable answer and the index of its first sample.

    Ties go to the answer that appears first; unparseable samples do not vote."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, None
    best = max(counts.values())
    for i, a in enumerate(answers):
        if a is not None and counts[a] == best:
            return a, i
    raise AssertionError("unreachable")


def _candidate_fields(bench: Benchmark, problem: Problem, candidates: Sequence[str]):
    scores = [bench.score(c, problem) for c in candidates]
    return [s.extracted for s in scores], [s.correct for s in scores]


def majority(bench: Benchmark, problems: Sequence[Problem],
             candidates: Sequence[Sequence[str]]) -> list[Outcome]:
    out = []
    for p, cands in zip(problems, candidates):
        answers, correct = _candidate_fields(bench, p, cands)
        winner, idx = majority_vote(answers)
        ok = idx is not None and correct[idx]
        out.append(Outcome(p.id, "majority", cands[idx] if idx is not None else None, winner, ok,
                           list(cands), answers, correct, level=level_of(p)))
    return out


def pass_at_n(bench: Benchmark, problems: Sequence[Problem],
              candidates: Sequence[Sequence[str]]) -> list[Outcome]:
    """Oracle: correct when any candidate is."""
    out = []
    for p, cands in zip(problems, candidates):
        answers, correct = _candidate_fields(bench, p, cands)
        hit = next((i for i, c in enumerate(correct) if c), None)
        out.append(Outcome(p.id, "pass", cands[hit] if hit is not None else None,
                           answers[hit] if hit is not None else None, hit is not None,
                           list(cands), answers, correct, level=level_of(p)))
    return out


# ------------------------------------------------------- test-time selection
def select(engine: Engine, bench: Benchmark, problems: Sequence[Problem],
           candidates: Sequence[Sequence[str]], style: str = "qwen",
           max_new_tokens: int = SELECT_MAX_NEW_TOKENS, progress: bool = True, *,
           choice: str = "generate", target: str = "answer") -> list[Outcome]:
    """Show the N candidates in the self-select prompt and take the model's answer.

    ``choice="generate"`` (the paper's): the model writes its reply greedily, and may name an
    answer that no candidate gave. ``choice="candidates"``: the answers the candidates gave
    are the only choices; each is written as a select reply in the ``target`` format (what
    select items were trained to answer, :func:`prompts.select_reply`) and the one the model
    finds most likely is taken (ties: the earliest candidate's). A question whose candidates
    give no answer gets none and counts as wrong. Needs an engine that scores replies
    (``loglikelihood``: the ``hf`` and ``vllm`` engines)."""
    if choice not in prompts.SELECT_CHOICES:
        raise ValueError(f"select choice must be one of {', '.join(prompts.SELECT_CHOICES)}, "
                         f"got {choice!r}")
    texts = [prompts.select_prompt(bench, p, c, style) for p, c in zip(problems, candidates)]
    fields = [_candidate_fields(bench, p, c) for p, c in zip(problems, candidates)]
    if choice == "generate":
        replies = [r for (r,) in engine.generate(_requests(problems, texts),
                                                 Sampling(max_new_tokens=max_new_tokens), progress)]
    else:
        replies = _most_likely_candidate(engine, problems, texts, [a for a, _ in fields], target,
                                         progress)
    out = []
    for p, cands, reply, (answers, correct) in zip(problems, candidates, replies, fields):
        s = bench.score(reply, p) if reply is not None else None
        out.append(Outcome(p.id, "select", reply, s.extracted if s else None,
                           bool(s and s.correct), list(cands), answers, correct,
                           level=level_of(p)))
    return out


def _most_likely_candidate(engine: Engine, problems: Sequence[Problem], texts: Sequence[str],
                           answers: Sequence[Sequence[str | None]], target: str,
                           progress: bool) -> list[str | None]:
    """Per question, the select reply (of the candidates' distinct answers) the model scores
    highest; None where no candidate gave an answer."""
    score = getattr(engine, "loglikelihood", None)
    if score is None:
        raise ValueError(f"select choice 'candidates' scores replies, which the "
                         f"{type(engine).__name__} engine cannot do; use the hf or vllm engine or "
                         "choice 'generate'")
    options = [[prompts.select_reply(a, target) for a in dict.fromkeys(x for x in ans if x is not None)]
               for ans in answers]
    asked = [i for i, opts in enumerate(options) if len(opts) > 1]  # one option needs no score
    requests = _requests([problems[i] for i in asked for _ in options[i]],
                         [texts[i] for i in asked for _ in options[i]])
    flat = score(requests, [o for i in asked for o in options[i]], progress) if asked else []
    picks: list[str | None] = [opts[0] if opts else None for opts in options]
    start = 0
    for i in asked:
        scores = flat[start:start + len(options[i])]
        start += len(options[i])
        picks[i] = options[i][max(range(len(scores)), key=scores.__getitem__)]
    return picks


# ----------------------------------------------------------------- evaluate
def accuracy(outcomes: Sequence[Outcome]) -> float:
    return sum(o.correct for o in outcomes) / len(outcomes) if outcomes else 0.0


@dataclass
class Evaluation:
    metrics: dict[str, float]
    outcomes: dict[str, list[Outcome]]


def evaluate(engine: Engine, bench: Benchmark, problems: Sequence[Problem], *,
             n: int = PAPER_SAMPLING.n,
             sampling: Sampling | None = None, style: str = "qwen", greedy: bool = True,
             with_select: bool = True, max_new_tokens: int = PAPER_SAMPLING.max_new_tokens,
             also_at: Sequence[int] = (),
             progress: bool = True, seed: int | None = None, select_choice: str = "generate",
             select_target: str = "answer") -> Evaluation:
    """Greedy CoT plus, from one set of N samples, majority@N, select@N and pass@N.

    ``also_at`` adds the same metrics for smaller k (1 <= k < N) computed on the first k of
    the same samples, so a sweep over N costs one sampling pass. ``sampling`` (its ``n`` must
    be ``n``) defaults to the paper's settings seeded with ``seed``, so the same model gives the
    same figures.
    ``select_choice`` / ``select_target``: how select@N takes its answer (:func:`select`)."""
    bad = [k for k in also_at if not 1 <= k <= n]
    if bad:
        raise ValueError(f"also_at={list(also_at)}: every k must be in 1..n={n}")
    metrics: dict[str, float] = {}
    outcomes: dict[str, list[Outcome]] = {}
    if greedy:
        outcomes[GREEDY] = greedy_cot(engine, bench, problems, style, max_new_tokens, progress)
    if n > 0:
        sampling = sampling or replace(PAPER_SAMPLING, n=n, max_new_tokens=max_new_tokens,
                                       seed=seed)
        if sampling.n != n:
            raise ValueError(f"sampling.n={sampling.n} but n={n}")
        cands = sample_candidates(engine, bench, problems, sampling, style, progress)
        for k in sorted(set(also_at) | {n}):
            sub = [c[:k] for c in cands]
            outcomes[at("majority", k)] = majority(bench, problems, sub)
            outcomes[at("pass", k)] = pass_at_n(bench, problems, sub)
            if with_select:
                outcomes[at("select", k)] = select(engine, bench, problems, sub, style,
                                                 progress=progress, choice=select_choice,
                                                 target=select_target)
    for name, outs in outcomes.items():
        metrics[name] = accuracy(outs)
    return Evaluation(metrics, outcomes)
