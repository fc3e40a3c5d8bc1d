import pytest

from r3v_eval import strategies
from r3v_eval.engines.base import Sampling

from fakes import CountingBench, ScriptedEngine, problems


def test_majority_vote_ties_go_to_the_earliest_sample():
    assert strategies.majority_vote(["3", "4", "4", "3"]) == ("3", 0)
    assert strategies.majority_vote(["5", "4", "4"]) == ("4", 1)
    assert strategies.majority_vote([None, "2", None]) == ("2", 1)
    assert strategies.majority_vote([None, None]) == (None, None)
    assert strategies.majority_vote([]) == (None, None)


def test_majority_and_pass_at_n_from_the_same_candidates():
    bench = CountingBench()
    probs = problems(["3", "7"])
    cands = [["Answer:\n3", "Answer:\n4", "Answer:\n4"], ["no idea", "Answer: 7", "Answer:\n8"]]
    maj = strategies.majority(bench, probs, cands)
    assert [o.extracted for o in maj] == ["4", "7"]
    assert [o.correct for o in maj] == [False, True]
    assert maj[0].candidate_answers == ["3", "4", "4"]
    assert maj[1].candidate_answers == [None, "7", "8"]
    oracle = strategies.pass_at_n(bench, probs, cands)
    assert [o.correct for o in oracle] == [True, True]
    assert oracle[0].extracted == "3"


def test_all_unparseable_candidates_give_a_wrong_majority():
    bench = CountingBench()
    [out] = strategies.majority(bench, problems(["3"]), [["hmm", "", "I think many"]])
    assert out.extracted is None and out.correct is False and out.reply is None


def test_select_builds_the_self_select_prompt_and_answers_greedily():
    bench = CountingBench()
    probs = problems(["5"])
    engine = ScriptedEngine([("Model's prediction 1", ["5"])])
    cands = [["Solution:\n1. a\n\nAnswer:\n4", "Solution:\n1. b\n\nAnswer:\n5"]]
    [out] = strategies.select(engine, bench, probs, cands)
    prompt, sampling = engine.calls[0][0][0], engine.calls[0][1]
    assert "Model's prediction 1:\nSolution:\n1. a\n\nAnswer:\n4" in prompt
    assert "Model's prediction 2:\nSolution:\n1. b" in prompt
    assert "Model's prediction 3" not in prompt
    assert prompt.endswith("Which prediction is correct? Give the final answer.")
    assert sampling.greedy
    assert out.correct and out.extracted == "5" and out.candidate_correct == [False, True]


class ScoringEngine:
    """Scores a reply by a table of (answer in the reply) -> log-likelihood; records calls."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def loglikelihood(self, requests, replies, progress=True):
        self.calls.append((list(requests), list(replies)))
        return [self.table[r.rsplit("\n", 1)[-1]] for r in replies]


def test_select_can_choose_among_the_candidates_answers_by_likelihood():
    bench = CountingBench()
    probs = problems(["5", "2", "9"])
    cands = [["Answer:\n4", "Answer:\n5", "Answer:\n4"],   # 5 scores highest: a minority answer
             ["Answer:\n2", "Answer:\n3", "Answer:\n3"],   # 2 and 3 tie: the earliest wins
             ["no answer", "", "I think many"]]              # nothing to choose: wrong, not asked
    engine = ScoringEngine({"4": -3.0, "5": -1.0, "2": -2.0, "3": -2.0})
    outs = strategies.select(engine, bench, probs, cands, choice="candidates", target="answer_line")
    assert [o.extracted for o in outs] == ["5", "2", None]
    assert [o.correct for o in outs] == [True, True, False]
    assert outs[0].reply == "Answer:\n5" and outs[2].reply is None
    [(requests, replies)] = engine.calls
    assert replies == ["Answer:\n4", "Answer:\n5", "Answer:\n2", "Answer:\n3"]  # distinct answers
    assert "Model's prediction 2:\nAnswer:\n5" in requests[1].prompt
    assert requests[2].prompt.startswith("How many things in picture 1?")


def test_select_candidates_writes_replies_in_the_trained_target_format():
    engine = ScoringEngine({"4": -1.0, "5": -2.0})
    one, two = strategies.select(engine, CountingBench(), problems(["3", "4"]),
                                 [["Answer:\n3", "Answer: 3"], ["Answer:\n4", "Answer:\n5"]],
                                 choice="candidates")
    assert engine.calls[0][1] == ["4", "5"]             # one distinct answer is not scored
    assert (one.reply, one.correct, two.reply, two.correct) == ("3", True, "4", True)


def test_select_candidates_needs_an_engine_that_scores_and_a_known_choice():
    engine = ScriptedEngine([("", ["5"])])
    with pytest.raises(ValueError, match="cannot do; use the hf or vllm engine"):
        strategies.select(engine, CountingBench(), problems(["5"]), [["Answer:\n5"]],
                          choice="candidates")
    with pytest.raises(ValueError, match="select choice must be one of generate, candidates"):
        strategies.select(engine, CountingBench(), problems(["5"]), [["Answer:\n5"]],
                          choice="vote")


def test_evaluate_samples_once_and_reports_every_metric():
    bench = CountingBench()
    probs = problems(["2", "6"])

    def sampled(prompt, sampling):
        return ["Answer:\n2", "Answer:\n3", "Answer:\n3"] if "picture 0" in prompt else \
               ["Answer:\n6", "Answer:\n1", "Answer:\n9"]

    engine = ScriptedEngine([
        ("Model's prediction 1", lambda p, s: ["2"] if "picture 0" in p else ["1"]),
        ("step-by-step", lambda p, s: (["Answer:\n2"] if "picture 0" in p else ["Answer:\n0"])
         if s.greedy else sampled(p, s)),
    ])
    ev = strategies.evaluate(engine, bench, probs, n=3, progress=False)
    assert ev.metrics == {"greedy": 0.5, "majority@3": 0.5, "pass@3": 1.0, "select@3": 0.5}
    sample_calls = [c for c in engine.calls if not c[1].greedy]
    assert len(sample_calls) == 1 and sample_calls[0][1].n == 3
    assert sample_calls[0][1].temperature == pytest.approx(0.9)


def test_evaluate_also_at_uses_prefixes_of_the_same_samples():
    bench = CountingBench()
    probs = problems(["2", "6"])
    # picture 0: the first sample is right, then two wrong ones agree; picture 1: only the third
    replies = {"picture 0": ["Answer:\n2", "Answer:\n3", "Answer:\n3"],
               "picture 1": ["Answer:\n1", "Answer:\n4", "Answer:\n6"]}
    engine = ScriptedEngine([
        ("Model's prediction 1", lambda p, s: ["2"] if "picture 0" in p else ["6"]),
        ("step-by-step", lambda p, s: next(v for k, v in replies.items() if k in p)),
    ])
    ev = strategies.evaluate(engine, bench, probs, n=3, greedy=False, also_at=(1, 3),
                             progress=False)
    assert ev.metrics["majority@1"] == 0.5 and ev.metrics["pass@1"] == 0.5
    assert ev.metrics["majority@3"] == 0.0 and ev.metrics["pass@3"] == 1.0
    assert ev.metrics["select@1"] == 1.0 and ev.metrics["select@3"] == 1.0
    assert [len(c) for c in (o.candidates for o in ev.outcomes["select@1"])] == [1, 1]
    assert len([c for c in engine.calls if not c[1].greedy]) == 1   # one sampling pass
    with pytest.raises(ValueError, match="also_at"):
        strategies.evaluate(engine, bench, probs, n=3, also_at=(4,), progress=False)


def test_sampling_rejects_bad_settings():
    with pytest.raises(ValueError, match="greedy"):
        Sampling(n=3, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(temperature=1.0, top_p=0)
    with pytest.raises(ValueError, match="n must be"):
        Sampling(n=0)


@pytest.mark.slow
def test_seeded_evaluation_gives_the_same_figures_again(tiny_qwen):
    """Re-evaluating a model with the same seed gives the same samples and figures, whatever
    the batch size; another seed gives other samples."""
    from r3v_eval.benchmarks import get_benchmark
    from r3v_eval.engines.hf import HFEngine

    bench = get_benchmark("shapes")
    probs = bench.load("test", limit=6)

    def run(batch_size, seed):
        engine = HFEngine(str(tiny_qwen), device="cpu", batch_size=batch_size)
        engine.model.generation_config.eos_token_id = None  # full-length, varied samples
        ev = strategies.evaluate(engine, bench, probs, n=3, greedy=False, max_new_tokens=6,
                                 progress=False, seed=seed)
        return ev.metrics, [o.candidates for o in ev.outcomes["majority@3"]]

    first, again, batched, other = run(4, 0), run(4, 0), run(1, 0), run(4, 1)
    assert first == again == batched
    assert first[1] != other[1]
