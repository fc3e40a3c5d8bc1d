"""Turning a user-turn prompt (+ image) into the model's chat text, shared by the backends."""

from __future__ import annotations

from typing import Any, Sequence


def user_message(prompt: str, has_image: bool) -> list[dict[str, Any]]:
    """A one-turn conversation in the processor chat-template format (image first, as the
    paper's models see it)."""
    content: list[dict[str, Any]] = []
    if has_image:
        content.append({"type": "image"})
    content.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": content}]


def chat_text(processor: Any, prompt: str, has_image: bool) -> str:
    """The text the model reads, with the generation prompt of the assistant turn appended."""
    if getattr(processor, "chat_template", None) is None:
        raise ValueError(
            f"{type(processor).__name__} has no chat template; r3v needs an instruction-tuned "
            "checkpoint whose processor defines one"
        )
    return processor.apply_chat_template(
        user_message(prompt, has_image), add_generation_prompt=True, tokenize=False
    )


def chat_text_with_reply(processor: Any, prompt: str, reply: str, *,
                         has_image: bool) -> tuple[str, str]:
    """``(prefix, whole)``: the text the model reads before its reply (:func:`chat_text`), and
    the conversation with ``reply`` as the assistant turn, rendered by the same chat template
    (so the reply's end-of-turn marker is part of it). ``whole`` starts with ``prefix``."""
    prefix = chat_text(processor, prompt, has_image)
    turns = user_message(prompt, has_image) + [
        {"role": "assistant", "content": [{"type": "text", "text": reply}]}]
    whole = processor.apply_chat_template(turns, tokenize=False).rstrip()
    if not whole.startswith(prefix) or len(whole) <= len(prefix):
        raise ValueError(
            f"{type(processor).__name__}'s chat template does not render an assistant reply after "
            "its generation prompt; replies cannot be scored with it")
    return prefix, whole


def scored_replies(processor: Any, requests: Sequence[Any],
                   replies: Sequence[str]) -> tuple[list[str], list[int]]:
    """For engines that score replies: each request's whole conversation with its reply
    (:func:`chat_text_with_reply`) and how many of that text's last tokens are the reply's
    (its end-of-turn marker included), counted with the processor's tokenizer. A reply whose
    first tokens merge with the generation prompt's last ones is an error: it has no tokens
    of its own to score."""
    if len(requests) != len(replies):
        raise ValueError(f"{len(requests)} requests but {len(replies)} replies")
    tok = processor.tokenizer
    wholes, counts = [], []
    for r, reply in zip(requests, replies):
        prefix, whole = chat_text_with_reply(processor, r.prompt, reply,
                                             has_image=r.image is not None)
        head = tok(prefix, add_special_tokens=False)["input_ids"]
        ids = tok(whole, add_special_tokens=False)["input_ids"]
        if ids[:len(head)] != head:
            raise ValueError(f"the reply {reply!r} merges with the generation prompt into other "
                             "tokens; it cannot be scored apart from it")
        wholes.append(whole)
        counts.append(len(ids) - len(head))
    return wholes, counts
