"""The hf engine on tiny offline checkpoints: batching, n samples, seeds, adapters."""

import pytest
from PIL import Image

from r3v_eval.engines.base import GenRequest, Sampling
from r3v_eval.engines.hf import HFEngine
from helpers import no_eos

pytestmark = pytest.mark.slow


def _requests():
    return [
        GenRequest("How many red squares are there?", Image.new("RGB", (112, 112), "red")),
        GenRequest("Remove all blue circles. How many objects are left?",
                   Image.new("RGB", (84, 140), "blue")),
        GenRequest("How many objects?", Image.new("RGB", (168, 112), "green")),
        GenRequest("What is 2 + 3?"),
    ]




@pytest.fixture(scope="module")
def engine(tiny_qwen):
    return no_eos(HFEngine(str(tiny_qwen), device="cpu", batch_size=4))


def test_batched_greedy_matches_one_at_a_time(engine, tiny_qwen):
    reqs = _requests()
    batched = engine.generate(reqs, Sampling(max_new_tokens=6), progress=False)
    single = no_eos(HFEngine(str(tiny_qwen), device="cpu", batch_size=1))
    alone = single.generate(reqs, Sampling(max_new_tokens=6), progress=False)
    assert [len(r) for r in batched] == [1, 1, 1, 1]
    assert all(r[0] for r in batched), "each request must get a non-empty completion"
    assert batched == alone


def test_n_samples_per_prompt_and_seeds_reproduce(engine):
    reqs = _requests()
    s = Sampling(n=3, temperature=1.0, max_new_tokens=8, seed=11)
    first = engine.generate(reqs, s, progress=False)
    again = engine.generate(reqs, s, progress=False)
    other = engine.generate(reqs, Sampling(n=3, temperature=1.0, max_new_tokens=8, seed=12),
                            progress=False)
    assert [len(r) for r in first] == [3, 3, 3, 3]
    assert first == again
    assert first != other
    assert any(len(set(r)) > 1 for r in first), "samples of one prompt should differ"


def test_samples_do_not_depend_on_batching(engine, tiny_qwen):
    """A request's samples depend on the seed and the request only: not on the batch size,
    the other requests in its batch, or their order (what makes multi-process evaluation and
    sharded pool sampling give the figures of one process)."""
    reqs = _requests()
    s = Sampling(n=3, temperature=1.0, top_p=0.9, top_k=20, max_new_tokens=8, seed=5)
    together = engine.generate(reqs, s, progress=False)
    single = no_eos(HFEngine(str(tiny_qwen), device="cpu", batch_size=1))
    alone = single.generate(reqs, s, progress=False)
    reversed_order = engine.generate(reqs[::-1], s, progress=False)[::-1]
    subset = engine.generate([reqs[2], reqs[0]], s, progress=False)
    assert together == alone == reversed_order
    assert subset == [together[2], together[0]]


def _draws(sampling, logits, seeds, steps):
    from r3v_eval.engines.hf import RowSampler

    sampler = RowSampler(sampling, seeds, "cpu")
    return [sampler(None, logits.clone()).argmax(-1).tolist() for _ in range(steps)]


def test_sampler_draws_from_the_warped_softmax():
    """The per-row Gumbel-max sampler picks tokens with the frequencies of the softmax after
    temperature / top-k / top-p, and each row's draws depend on its own seed only."""
    import math

    import torch

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    logits = torch.log(probs.clamp_min(1e-12))[None]
    rows = 4000

    def freq(sampling):
        picks = torch.tensor(_draws(sampling, logits.repeat(rows, 1), list(range(rows)), 1)[0])
        return torch.bincount(picks, minlength=5).float() / rows

    assert torch.allclose(freq(Sampling(temperature=1.0)), probs, atol=0.03)
    hot = probs ** 2 / (probs ** 2).sum()  # temperature 0.5 squares the probabilities
    assert torch.allclose(freq(Sampling(temperature=0.5)), hot, atol=0.03)
    top2 = torch.tensor([0.5, 0.3, 0, 0, 0]) / 0.8
    assert torch.allclose(freq(Sampling(temperature=1.0, top_k=2)), top2, atol=0.03)
    nucleus = torch.tensor([0.5, 0.3, 0.15, 0, 0]) / 0.95  # smallest set reaching 0.9
    assert torch.allclose(freq(Sampling(temperature=1.0, top_p=0.9)), nucleus, atol=0.03)
    assert torch.allclose(freq(Sampling(temperature=1.0, top_k=4, top_p=0.9)), nucleus, atol=0.03)
    assert math.isclose(freq(Sampling(temperature=1.0, top_k=1))[0].item(), 1.0)
    # a row's draws over many steps depend only on its seed, not on the rows beside it
    flat = torch.zeros(1, 50)
    two = _draws(Sampling(temperature=1.0), flat.repeat(2, 1), [7, 8], 30)
    one = _draws(Sampling(temperature=1.0), flat, [8], 30)
    assert [t[1] for t in two] == [t[0] for t in one]
    assert len({t[0] for t in one}) > 10  # and they vary from step to step


def test_stop_strings_cut_completions(engine):
    out = engine.generate(_requests()[:1], Sampling(max_new_tokens=8), progress=False)[0][0]
    stop = out.split()[1] if len(out.split()) > 1 else out[1:3]
    cut = engine.generate(_requests()[:1], Sampling(max_new_tokens=8, stop=(stop,)),
                          progress=False)[0][0]
    assert stop not in cut and out.startswith(cut)


def test_lora_adapter_changes_generation(tiny_qwen, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_qwen))
    cfg = LoraConfig(r=8, lora_alpha=16, init_lora_weights=False,
                     target_modules=r".*language_model.*\.(q_proj|v_proj)")
    peft_model = get_peft_model(model, cfg)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 2.0)
    peft_model.save_pretrained(tmp_path / "adapter")

    reqs = _requests()[:2]
    base = no_eos(HFEngine(str(tiny_qwen), device="cpu"))
    tuned = no_eos(HFEngine(str(tiny_qwen), device="cpu", adapter=str(tmp_path / "adapter")))
    s = Sampling(max_new_tokens=6)
    assert base.generate(reqs, s, progress=False) != tuned.generate(reqs, s, progress=False)


def test_llava_generates_with_images(tiny_llava):
    eng = no_eos(HFEngine(str(tiny_llava), device="cpu", batch_size=2))
    out = eng.generate(_requests()[:3], Sampling(n=2, temperature=1.0, max_new_tokens=5, seed=0),
                       progress=False)
    assert [len(r) for r in out] == [2, 2, 2] and all(all(x for x in r) for r in out)


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl", "gemma3"])
def test_newer_families_generate_and_sample_independently_of_batching(arch, tmp_path):
    from r3v_train.tiny import build_tiny_model

    path = str(build_tiny_model(arch, tmp_path / arch))
    batched = no_eos(HFEngine(path, device="cpu", batch_size=4))
    single = no_eos(HFEngine(path, device="cpu", batch_size=1))
    reqs = _requests()
    greedy = batched.generate(reqs, Sampling(max_new_tokens=5), progress=False)
    assert greedy == single.generate(reqs, Sampling(max_new_tokens=5), progress=False)
    s = Sampling(n=2, temperature=1.0, max_new_tokens=5, seed=3)
    out = batched.generate(reqs, s, progress=False)
    assert [len(r) for r in out] == [2, 2, 2, 2] and all(all(x for x in r) for r in out)
    assert out == single.generate(reqs, s, progress=False)


def test_pixel_bounds_use_the_supported_size_form(tiny_qwen):
    """max_pixels / min_pixels cap the image tokens through the image processor's ``size``,
    without transformers' deprecation warning for the keyword form (on every call)."""
    import warnings

    from r3v_eval.engines.hf import load_processor

    image = Image.new("RGB", (112, 112), "red")
    text = ["<|vision_start|><|image_pad|><|vision_end|>How many?"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        capped = load_processor(str(tiny_qwen), max_pixels=56 * 56)
        grid = capped(text=text, images=[image])["image_grid_thw"][0].tolist()
        both = load_processor(str(tiny_qwen), max_pixels=56 * 56, min_pixels=28 * 28)
    full = load_processor(str(tiny_qwen))(text=text, images=[image])["image_grid_thw"][0].tolist()
    assert grid == [1, 4, 4] and full == [1, 8, 8]
    assert (both.image_processor.size.longest_edge, both.image_processor.size.shortest_edge) == \
        (56 * 56, 28 * 28)


def test_bad_options_are_clear_errors(tiny_qwen, tiny_llava):
    with pytest.raises(ValueError, match="dtype"):
        HFEngine(str(tiny_qwen), dtype="fp8")
    with pytest.raises(ValueError, match="batch_size"):
        HFEngine(str(tiny_qwen), batch_size=0)
    with pytest.raises(ValueError, match="Qwen2-VL"):
        HFEngine(str(tiny_llava), max_pixels=100_000)


def test_loglikelihood_scores_the_reply_and_its_end_of_turn_at_any_batch_size(engine, tiny_qwen):
    import torch

    from r3v_eval.engines.chat import chat_text_with_reply

    reqs = _requests()
    replies = ["Answer:\n7", "Solution:\n1. There are 2 red squares.\n\nAnswer:\n2", "3", "Answer:\n5"]
    batched = engine.loglikelihood(reqs, replies, progress=False)
    single = HFEngine(str(tiny_qwen), device="cpu", batch_size=1)
    alone = single.loglikelihood(reqs, replies, progress=False)
    assert batched == pytest.approx(alone, abs=1e-4)
    assert all(s < 0 for s in batched)
    # the text-only request by hand: every token after the generation prompt, end-of-turn included
    prefix, whole = chat_text_with_reply(engine.processor, reqs[3].prompt, replies[3], has_image=False)
    assert whole.endswith("<|im_end|>")
    tok = engine.processor.tokenizer
    ids = torch.tensor([tok(whole, add_special_tokens=False)["input_ids"]])
    head = len(tok(prefix, add_special_tokens=False)["input_ids"])
    with torch.inference_mode():
        logp = engine.model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    by_hand = sum(logp[i - 1, ids[0, i]].item() for i in range(head, ids.shape[1]))
    assert batched[3] == pytest.approx(by_hand, abs=1e-4)
    # the picture is read: the same prompt and reply with another picture scores otherwise
    other = [GenRequest(reqs[0].prompt, Image.new("RGB", (112, 112), "blue"))]
    assert engine.loglikelihood(other, replies[:1], progress=False)[0] != pytest.approx(batched[0])
    with pytest.raises(ValueError, match="2 requests but 1 replies"):
        engine.loglikelihood(reqs[:2], replies[:1], progress=False)
