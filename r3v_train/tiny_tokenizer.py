"""The tokenizers of the tiny models (:mod:`r3v_train.tiny`): a byte-level BPE trained on
generated text, each family's special tokens, and chat templates written as the real models'
templates render a conversation."""

from __future__ import annotations

import functools

from r3v_train._tokenizer_corpus import corpus_lines

VOCAB_SIZE = 4096  # BPE target (upper bound; the corpus yields ~2.65k)

# Qwen2's pre-tokenizer pattern: words with their leading space, every digit on its own.
_QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
LLAVA_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")
# Gemma 3's ids 0-3 are <pad>, <eos>, <bos>, <unk>, as in the real tokenizer
GEMMA_SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                        "<start_of_image>", "<end_of_image>", "<image_soft_token>")

_QWEN_DEFAULT_SYSTEM = (
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
)
_QWEN_TEMPLATE_HEAD = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% set ns = namespace(body='') %}"
    "{% for message in messages %}"
)
_QWEN_TEMPLATE_BODY = (
    "{% if message['content'] is string %}{% set ns.body = message['content'] %}"
    "{% else %}{% set ns.body = '' %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}"
    "{% set ns.body = ns.body + 'Picture ' + image_count.value | string + ': ' %}"
    "{% endif %}"
    "{% set ns.body = ns.body + '<|vision_start|><|image_pad|><|vision_end|>' %}"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}"
    "{% set ns.body = ns.body + 'Video ' + video_count.value | string + ': ' %}"
    "{% endif %}"
    "{% set ns.body = ns.body + '<|vision_start|><|video_pad|><|vision_end|>' %}"
    "{% elif 'text' in content %}{% set ns.body = ns.body + content['text'] %}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ ns.body }}<|im_end|>{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ ns.body }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: Qwen2-VL / Qwen2.5-VL: ChatML with the default system prompt
QWEN_CHAT_TEMPLATE = _QWEN_TEMPLATE_HEAD + _QWEN_DEFAULT_SYSTEM + _QWEN_TEMPLATE_BODY
#: Qwen3-VL: the same turns without a default system prompt (as Qwen3-VL's own template)
QWEN3_CHAT_TEMPLATE = _QWEN_TEMPLATE_HEAD + _QWEN_TEMPLATE_BODY

# each message's text (text parts joined) and number of pictures, for the one-marker templates
_TEXT_AND_IMAGE_COUNT = (
    "{% if message['content'] is string %}{% set text = message['content'] %}{% set n_img = 0 %}"
    "{% else %}"
    "{% set text = message['content'] | selectattr('type', 'equalto', 'text') "
    "| map(attribute='text') | join('\n') %}"
    "{% set n_img = message['content'] | selectattr('type', 'equalto', 'image') | list | length %}"
    "{% endif %}"
)

LLAVA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}" + _TEXT_AND_IMAGE_COUNT +
    "{% if message['role'] == 'system' %}{{ text + ' ' }}"
    "{% elif message['role'] == 'user' %}USER: {{ '<image>\n' * n_img }}{{ text + ' ' }}"
    "{% else %}ASSISTANT:{% generation %} {{ text }}{{ eos_token }}{% endgeneration %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}" + _TEXT_AND_IMAGE_COUNT +
    "{% if message['role'] == 'assistant' %}"
    "<start_of_turn>model\n{% generation %}{{ text }}<end_of_turn>{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "<start_of_turn>user\n{{ '<start_of_image>' * n_img }}{{ text }}<end_of_turn>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@functools.lru_cache(maxsize=4)
def tokenizer_json(special_tokens: tuple[str, ...], vocab_size: int) -> str:
    """Train the byte-level BPE (deterministic) and return its ``tokenizer.json`` text."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(seed=0), trainer=trainer)
    return tok.to_str()


def build_tokenizer(arch: str):
    """The tokenizer of a tiny ``arch`` model, its chat template set."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if arch == "llava":
        backend = Tokenizer.from_str(tokenizer_json(LLAVA_SPECIAL_TOKENS, VOCAB_SIZE))
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
            extra_special_tokens=["<image>"],
            model_max_length=4096, padding_side="left", clean_up_tokenization_spaces=False,
        )
        tokenizer.chat_template = LLAVA_CHAT_TEMPLATE
    elif arch == "gemma3":
        backend = Tokenizer.from_str(tokenizer_json(GEMMA_SPECIAL_TOKENS, VOCAB_SIZE))
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>",
            extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                  "image_token": "<image_soft_token>",
                                  "start_of_turn": "<start_of_turn>",
                                  "end_of_turn": "<end_of_turn>"},
            model_max_length=8192, padding_side="left", clean_up_tokenization_spaces=False,
        )
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    else:
        backend = Tokenizer.from_str(tokenizer_json(QWEN_SPECIAL_TOKENS, VOCAB_SIZE))
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            eos_token="<|im_end|>", pad_token="<|endoftext|>",
            extra_special_tokens=[t for t in QWEN_SPECIAL_TOKENS
                                  if t not in ("<|im_end|>", "<|endoftext|>")],
            model_max_length=32768, padding_side="left", clean_up_tokenization_spaces=False,
        )
        tokenizer.chat_template = QWEN3_CHAT_TEMPLATE if arch == "qwen3_vl" else QWEN_CHAT_TEMPLATE
    return tokenizer
