"""The hf engine's ``decode: graph`` path (issue 29) on tiny offline checkpoints, fp32, CPU:
the same completions as ``generate``, the pieces it is built of, and where it falls back.

What only a GPU can show (the CUDA-graph capture itself, time per step, bfloat16 agreement,
memory) is not tested here: ``benchmarks/gpu.py --decode-paths generate graph`` measures it.
"""

import logging

import pytest
from PIL import Image

from r3v_eval.engines.base import GenRequest, Sampling
from r3v_eval.engines.hf import HFEngine
from helpers import no_eos

pytestmark = pytest.mark.slow


def _requests():
    """Mixed prompt lengths, with and without images (two batches at batch size 4)."""
    return [
        GenRequest("How many red squares are there?", Image.new("RGB", (112, 112), "red")),
        GenRequest("Remove all blue circles. How many objects are left?",
                   Image.new("RGB", (84, 140), "blue")),
        GenRequest("How many objects?", Image.new("RGB", (168, 112), "green")),
        GenRequest("What is 2 + 3?"),
        GenRequest("Count the shapes, then say how many are left after removing two of them."),
    ]




def _pair(path, batch_size=4):
    """A generate engine and a graph engine over the same model object."""
    gen = HFEngine(str(path), device="cpu", batch_size=batch_size)
    graph = HFEngine(model=gen.model, processor=gen.processor, batch_size=batch_size,
                     decode="graph")
    graph.graph_decoder().timing = True  # records each batch it serves
    return gen, graph


SETTINGS = [
    Sampling(max_new_tokens=10),  # greedy, n = 1
    Sampling(n=3, temperature=1.0, top_k=20, top_p=0.9, max_new_tokens=10, seed=3),
    Sampling(n=3, temperature=0.9, top_p=0.95, top_k=50, max_new_tokens=24, seed=5,
             stop=("a",)),
]


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_graph_decode_gives_generates_completions(arch, request):
    """Identical completions for every family the path serves: greedy and sampled (n = 1 and
    3), end of sequence on (random weights end often) and off, with a stop string."""
    path = request.getfixturevalue({"qwen2_vl": "tiny_qwen", "qwen2_5_vl": "tiny_qwen25",
                                    "qwen3_vl": "tiny_qwen3"}[arch])
    gen, graph = _pair(path)
    reqs = _requests()
    served = 0
    for eos in (True, False):
        if not eos:
            no_eos(gen)
        for s in SETTINGS:
            expected = gen.generate(reqs, s, progress=False)
            got = graph.generate(reqs, s, progress=False)
            assert got == expected, (arch, eos, s)
            assert len(graph.graph_decoder().stats) == served + 2  # both batches, no fallback
            served += 2
    stats = graph.graph_decoder().stats
    stop_batches = stats[4:6]  # the stop-string setting, end of sequence on
    assert any(st.steps < SETTINGS[2].max_new_tokens - 1 for st in stop_batches), \
        "a batch should end early (every row at EOS or its stop string)"
    assert all(not st.captured for st in stats)  # CPU: the step runs eagerly


def test_new_tokens_equal_generates_token_for_token(tiny_qwen):
    """The decoder's tokens (pads after EOS / a stop string included) are generate's."""
    import torch

    from r3v_eval.engines.base import sample_seeds
    from r3v_eval.engines.hf import RowSampler

    gen, graph = _pair(tiny_qwen)
    reqs = _requests()[:3]
    s = Sampling(n=3, temperature=1.0, max_new_tokens=16, seed=1, stop=("e",))
    inputs = gen.encode(reqs)
    seeds = [x for r in reqs for x in sample_seeds(1, r, 3)]
    kw = gen._gen_kwargs(s)
    with torch.inference_mode():
        out = gen.model.generate(**inputs, **kw, logits_processor=[RowSampler(s, seeds, "cpu")])
    expected = out[:, inputs["input_ids"].shape[1]:]
    got = graph.graph_decoder().decode(inputs, s, seeds, kw)
    width = max(expected.shape[1], got.shape[1])
    pad = kw["pad_token_id"]

    def padded(t):
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad)

    assert torch.equal(padded(expected), padded(got))


def test_picker_is_the_row_sampler_bit_for_bit():
    """The step's sampler, its counter a tensor, draws RowSampler's tokens at every step."""
    import torch

    from r3v_eval.engines.graph_decode import Picker
    from r3v_eval.engines.hf import RowSampler
    from r3v_eval.engines.sampler import uniform_noise

    torch.manual_seed(0)
    seeds = [3, 2**62 + 7, 12345, 2**63 - 1]
    ids = torch.randint(0, 1000, (4, 50))
    seed_t = torch.tensor(seeds)
    for step in (0, 1, 17, 2**40):
        assert torch.equal(uniform_noise(seed_t, step, ids),        # the step an int ...
                           uniform_noise(seed_t, torch.tensor(step), ids))  # ... or a tensor
    for s in (Sampling(temperature=1.0), Sampling(temperature=0.7, top_k=5),
              Sampling(temperature=0.9, top_p=0.95, top_k=50),
              Sampling(temperature=1.3, top_p=0.5)):
        ref = RowSampler(s, seeds, "cpu")
        picker = Picker(greedy=False, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
        for step in range(20):
            logits = torch.randn(4, 300) * 3
            want = ref(None, logits.clone()).argmax(-1)
            assert torch.equal(picker(logits, seed_t, torch.tensor(step)), want)


def test_packed_gqa_attention_matches_sdpa():
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    from r3v_eval.engines.gqa_attention import packed_gqa_attention

    class Module(torch.nn.Module):
        num_key_value_groups = 3
        is_causal = True

    torch.manual_seed(0)
    rows, kv_heads, length, dim = 5, 2, 37, 16
    q = torch.randn(rows, kv_heads * 3, 1, dim)
    k, v = torch.randn(rows, kv_heads, length, dim), torch.randn(rows, kv_heads, length, dim)
    mask = torch.rand(rows, 1, 1, length) > 0.3
    mask[:, :, :, -1] = True
    got, _ = packed_gqa_attention(Module(), q, k, v, mask, scaling=0.25)
    # the reference: K/V repeated per query head, plain sdpa
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, repeat_kv(k, 3), repeat_kv(v, 3), attn_mask=mask, scale=0.25).transpose(1, 2)
    assert got.shape == (rows, 1, kv_heads * 3, dim)
    assert torch.allclose(got, ref, atol=1e-6)
    stock, _ = sdpa_attention_forward(Module(), q, k, v, mask, scaling=0.25)
    assert torch.allclose(got, stock, atol=1e-6)
    # a prefill (several query tokens) is stock sdpa's
    q4 = torch.randn(rows, kv_heads * 3, 4, dim)
    m4 = torch.ones(rows, 1, 4, length, dtype=torch.bool)
    assert torch.equal(packed_gqa_attention(Module(), q4, k, v, m4, scaling=0.25)[0],
                       sdpa_attention_forward(Module(), q4, k, v, m4, scaling=0.25)[0])


def test_packed_gqa_is_registered_and_scoped(tiny_qwen):
    from transformers import AttentionInterface

    from r3v_eval.engines.gqa_attention import PACKED_GQA, attention_implementation

    gen = HFEngine(str(tiny_qwen), device="cpu")
    text = gen.model.config.get_text_config(decoder=True)
    before = text._attn_implementation
    with attention_implementation(gen.model):
        assert PACKED_GQA in AttentionInterface._global_mapping
        assert text._attn_implementation == PACKED_GQA
        assert gen.model.config.vision_config._attn_implementation == before  # tower untouched
    assert text._attn_implementation == before


def test_shared_prefill_equals_expanded_prefill(tiny_qwen):
    """Prefilling B prompts and copying each row's keys/values n times gives the cache (and
    the next-token logits) of prefilling the B x n expanded rows, as generate does."""
    import torch
    from transformers import DynamicCache

    from r3v_eval.engines.graph_decode import Picker, SlotKey, _Slot

    gen = HFEngine(str(tiny_qwen), device="cpu", batch_size=4)
    model, n = gen.model, 3
    inputs = gen.encode(_requests()[:3])
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}

    def prefill(ids, mask, extra):
        pos = model._prepare_position_ids_for_generation(
            ids, {"input_ids": ids, "attention_mask": mask, **extra})
        cache = DynamicCache(config=model.config)
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache,
                    use_cache=True, logits_to_keep=1, **extra)
        return out.logits[:, -1], cache, pos

    with torch.inference_mode():
        logits, cache, pos = prefill(ids, mask, extra)
        # expanded inputs: every prompt (and its picture) n times in a row
        reqs = [r for r in _requests()[:3] for _ in range(n)]
        expanded = gen.encode(reqs)
        e_ids, e_mask = expanded["input_ids"], expanded["attention_mask"]
        e_extra = {k: v for k, v in expanded.items() if k not in ("input_ids", "attention_mask")}
        e_logits, e_cache, e_pos = prefill(e_ids, e_mask, e_extra)
        assert torch.allclose(logits.repeat_interleave(n, 0), e_logits, atol=1e-5)
        assert torch.equal(pos.repeat_interleave(n, 1), e_pos)
        layer = cache.layers[0]
        key = SlotKey(rows=9, length=128, picker=Picker(greedy=True), eos=(), pad=0)
        slot = _Slot(model, key, kv_heads=layer.keys.shape[1], head_dim=layer.keys.shape[3],
                     value_dim=layer.values.shape[3], dtype=layer.keys.dtype,
                     device=torch.device("cpu"), vocab=model.config.get_text_config().vocab_size)
        slot.load(cache, mask, pos[-3:, :, -1], torch.zeros(9, dtype=torch.long), ids, n)
        length = ids.shape[1]
        for mine, theirs in zip(slot.cache.layers, e_cache.layers):
            assert torch.allclose(mine.keys[:, :, :length], theirs.keys, atol=1e-5)
            assert torch.allclose(mine.values[:, :, :length], theirs.values, atol=1e-5)
            assert int(mine.cumulative_length) == length
        assert torch.equal(slot.valid[:, :length], e_mask.bool())
        assert not slot.valid[:, length:].any()
        assert torch.equal(slot.positions[:, :, 0], e_pos[-3:, :, -1] + 1)


def test_step_compiles_fullgraph_without_breaks_or_syncs(tiny_qwen):
    """torch.compile(fullgraph=True) of the step (eager backend: dynamo's tracing, no code
    generation) raises on any graph break or host sync; the compiled step gives the same
    completions."""
    gen, graph = _pair(tiny_qwen)
    no_eos(gen)
    reqs = _requests()
    s = Sampling(n=3, temperature=0.9, top_p=0.95, top_k=50, max_new_tokens=6, seed=2)
    expected = gen.generate(reqs, s, progress=False)
    graph.graph_decoder().compile = "eager"
    assert graph.generate(reqs, s, progress=False) == expected
    slots = list(graph.graph_decoder().slots.values())
    assert slots and all(slot.run_step is not slot.step for slot in slots)


def test_slots_are_kept_per_shape_and_reused(tiny_qwen):
    """One persistent slot (cache + state; on CUDA, one captured graph) per (rows, length
    bucket, sampling settings): a second batch of the same shape reuses its tensors."""
    from r3v_eval.engines.graph_decode import GraphDecoder, length_bucket

    assert [length_bucket(x) for x in (1, 128, 129, 300)] == [128, 128, 256, 384]
    assert length_bucket(10, 8) == 16
    with pytest.raises(ValueError):
        length_bucket(0)
    gen, graph = _pair(tiny_qwen, batch_size=2)
    decoder = graph.graph_decoder()
    reqs = _requests()
    s = Sampling(n=3, temperature=1.0, max_new_tokens=4, seed=0)
    graph.generate(reqs[:2], s, progress=False)
    (key, slot), = decoder.slots.items()
    ptr = slot.cache.layers[0].keys.data_ptr()
    graph.generate(reqs[1:3], s, progress=False)  # same rows, same bucket
    assert list(decoder.slots) == [key] and decoder.slots[key] is slot
    assert slot.cache.layers[0].keys.data_ptr() == ptr
    graph.generate(reqs[3:4], s, progress=False)  # 3 rows: a new slot
    graph.generate(reqs[3:4], Sampling(n=1, max_new_tokens=4), progress=False)  # greedy: another
    assert len(decoder.slots) == decoder.max_slots == 2 and key not in decoder.slots
    assert all(k.length == 128 for k in decoder.slots)
    with pytest.raises(ValueError, match="CUDA"):
        GraphDecoder(gen.model, gen.processor, cuda_graph=True)


def test_other_families_and_settings_fall_back_once(tiny_llava, tiny_qwen, caplog):
    """LLaVA is not served (generate decodes it; logged once), nor are logits processors the
    step does not implement; repetition penalty and suppressed tokens are."""
    from r3v_eval.engines import graph_decode

    graph_decode._LOGGED.clear()
    eng = HFEngine(str(tiny_llava), device="cpu", batch_size=2, decode="graph")
    s = Sampling(n=2, temperature=1.0, max_new_tokens=4, seed=0)
    with caplog.at_level(logging.WARNING, logger="r3v_eval.engines.graph_decode"):
        out = eng.generate(_requests()[:3], s, progress=False)
        eng.generate(_requests()[:3], s, progress=False)
    assert [len(r) for r in out] == [2, 2, 2]
    assert len([r for r in caplog.records if "llava" in r.getMessage()]) == 1

    gen, graph = _pair(tiny_qwen)
    gen.model.generation_config.no_repeat_ngram_size = 2
    with caplog.at_level(logging.WARNING, logger="r3v_eval.engines.graph_decode"):
        assert graph.generate(_requests()[:2], s, progress=False) == \
            gen.generate(_requests()[:2], s, progress=False)
    assert any("NoRepeatNGram" in r.getMessage() for r in caplog.records)
    assert graph.graph_decoder().stats == []
    gen.model.generation_config.no_repeat_ngram_size = None
    gen.model.generation_config.repetition_penalty = 1.3
    no_eos(gen)
    reqs = _requests()
    assert graph.generate(reqs, s, progress=False) == gen.generate(reqs, s, progress=False)
    assert graph.generate(reqs, Sampling(max_new_tokens=8), progress=False) == \
        gen.generate(reqs, Sampling(max_new_tokens=8), progress=False)
    assert len(graph.graph_decoder().stats) == 4


def test_unknown_decode_is_a_clear_error(tiny_qwen):
    with pytest.raises(ValueError, match="decode"):
        HFEngine(str(tiny_qwen), device="cpu", decode="fast")


def test_capture_once_per_slot_then_replay(tiny_qwen, monkeypatch):
    """The CUDA-graph orchestration at its boundary (no CUDA here): with capture on, each new
    slot is captured once, with the packed-GQA attention selected, and every decode step of
    every batch that reuses the slot is a replay; a fake graph that replays the eager step
    shows the replays give generate's completions."""
    from r3v_eval.engines import graph_decode
    from r3v_eval.engines.gqa_attention import PACKED_GQA

    events = []

    class FakeGraph:
        def __init__(self, slot):
            self.slot = slot

        def replay(self):
            events.append("replay")
            self.slot.run_step()

    def fake_capture(self, pool=None, warmup=3):
        text = self.model.config.get_text_config(decoder=True)
        events.append(("capture", self.key.rows, self.key.length, text._attn_implementation))
        self.graph, self.capture_s, self.compile_s = FakeGraph(self), 0.0, 0.0

    monkeypatch.setattr(graph_decode._Slot, "capture", fake_capture)
    monkeypatch.setattr("torch.cuda.graph_pool_handle", lambda: "pool")
    gen, graph = _pair(tiny_qwen, batch_size=2)
    no_eos(gen)
    decoder = graph.graph_decoder()
    decoder.cuda_graph, decoder.check_every = True, 16  # as on a GPU
    reqs = _requests()[:3] + [GenRequest("Which colour?", Image.new("RGB", (112, 112), "white"))]
    # two batches of 2 prompts with images: one shape
    s = Sampling(n=3, temperature=1.0, max_new_tokens=20, seed=4)
    assert graph.generate(reqs, s, progress=False) == gen.generate(reqs, s, progress=False)
    captures = [e for e in events if isinstance(e, tuple)]
    assert captures == [("capture", 6, 128, PACKED_GQA)]
    assert events.count("replay") == 2 * (20 - 1)  # every step of both batches
    assert all(st.captured for st in decoder.stats)
    assert decoder.stats[0].new_slot and not decoder.stats[1].new_slot
