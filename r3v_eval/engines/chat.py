"""Turning a user-turn prompt (+ image) into the model's chat text, shared by the backends."""

from __future__ import annotations

from typing import Any


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
