"""Training records -> the rows TRL trains on, and their exact token lengths.

Records are plain: ``prompt``, ``completion`` (or ``chosen`` / ``rejected``) and ``image`` (a PIL
image, a path, an object with ``load_image()``, or ``None``), as dicts or objects. Lengths are
counted up front with the processor (image tokens included) so that over-budget examples are
dropped, never truncated, and batches are grouped by length (:class:`LengthGroupedSampler`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

def _field(record: Any, name: str, index: int, required: bool = True) -> Any:
    if isinstance(record, dict):
        if name in record:
            return record[name]
    elif hasattr(record, name):
        return getattr(record, name)
    if required:
        raise ValueError(f"example {index}: missing field {name!r} "
                         f"(got {type(record).__name__})")
    return None


def _image_of(record: Any, index: int) -> Any:
    """The record's image as a PIL RGB image, a checked file path (str), or None."""
    from PIL import Image

    image = _field(record, "image", index, required=False)
    if image is None:
        return None
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"example {index}: image file not found: {path}")
        return str(path)
    if hasattr(image, "load_image"):  # a Problem-like object
        return _image_of({"image": image.load_image()}, index)
    raise ValueError(f"example {index}: image must be a PIL image, a file path or None, "
                     f"got {type(image).__name__}")


def normalize_records(records: Iterable[Any], text_fields: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for i, record in enumerate(records):
        row = {}
        for name in text_fields:
            text = _field(record, name, i)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"example {i}: {name!r} must be a non-empty string, got {text!r}")
            row[name] = text
        row["image"] = _image_of(record, i)
        rows.append(row)
    if not rows:
        raise ValueError("no training examples")
    return rows


def _conversation(row: dict[str, Any], text_fields: Sequence[str]) -> dict[str, Any]:
    conv: dict[str, Any] = {"prompt": [{"role": "user", "content": row["prompt"]}]}
    for name in text_fields[1:]:
        conv[name] = [{"role": "assistant", "content": row[name]}]
    return conv


def build_dataset(rows: list[dict[str, Any]], text_fields: Sequence[str]):
    """TRL conversational prompt-completion (or preference) rows with an ``images`` column."""
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    try:
        from datasets import List as ListFeature
    except ImportError:  # datasets < 4
        from datasets import Sequence as ListFeature

    turn = ListFeature({"role": Value("string"), "content": Value("string")})
    features = Features({**{name: turn for name in text_fields},
                         "images": ListFeature(ImageFeature())})
    data = {name: [] for name in features}
    for row in rows:
        for key, value in _conversation(row, text_fields).items():
            data[key].append(value)
        data["images"].append([] if row["image"] is None else [row["image"]])
    return Dataset.from_dict(data, features=features)


# ====================================================================== lengths
def _image_size(image: Any) -> tuple[int, int]:
    """(height, width) without decoding the pixels."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.height, image.width
    with Image.open(image) as im:
        return im.height, im.width


def sequence_lengths(processor: Any, rows: list[dict[str, Any]],
                     text_fields: Sequence[str] = ("prompt", "completion")) -> list[int]:
    """Tokens each example occupies in a collated batch (image tokens included): prompt plus the
    longest of its completions, rendered with TRL's own chat-template code."""
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    tok = processor.tokenizer
    rendered: dict[str, list[str]] = {name: [] for name in text_fields}
    for row in rows:
        conv = _conversation(row, text_fields)
        images = [] if row["image"] is None else ["<image>"]  # placeholders: only counted
        example = {"prompt": prepare_multimodal_messages(conv["prompt"], images=images)}
        for name in text_fields[1:]:
            example[name] = prepare_multimodal_messages(conv[name])
        for name, text in apply_chat_template(example, processor).items():
            if name in rendered:
                rendered[name].append(text)
    # Gemma 3-style processors replace the image marker by a fixed text (newlines, markers and
    # the soft tokens) before tokenising: expand it the same way, so the count is exact
    expansion = getattr(processor, "full_image_sequence", None)
    marker = getattr(processor, "image_token", None)
    expanded_in_text = bool(expansion and marker)
    if expanded_in_text:
        rendered["prompt"] = [text.replace(marker, expansion) for text in rendered["prompt"]]
    counts = {name: [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
              for name, texts in rendered.items()}
    lengths = [counts["prompt"][i] + max(counts[n][i] for n in text_fields[1:])
               for i in range(len(rows))]
    with_image = [i for i, row in enumerate(rows) if row["image"] is not None]
    if with_image and not expanded_in_text:
        for i, extra in zip(with_image, _image_token_counts(processor, rows, with_image)):
            lengths[i] += extra - 1  # the placeholder token is expanded to `extra` tokens
    return lengths


def _image_token_counts(processor: Any, rows: list[dict[str, Any]], idx: list[int]) -> list[int]:
    sizes = [_image_size(rows[i]["image"]) for i in idx]
    try:
        return list(processor._get_num_multimodal_tokens(image_sizes=sizes).num_image_tokens)
    except (AttributeError, NotImplementedError, TypeError):
        pass
    # Processors without the size formula: run the processor on each image (exact, slower).
    from PIL import Image

    token = getattr(processor, "image_token", None) or "<image>"
    token_id = processor.tokenizer.convert_tokens_to_ids(token)
    out = []
    for i in idx:
        image = rows[i]["image"]
        image = Image.open(image).convert("RGB") if isinstance(image, str) else image
        ids = processor(text=[token], images=[image], return_tensors="pt")["input_ids"][0]
        out.append(int((ids == token_id).sum()))
    return out


class LengthGroupedSampler:
    """Indices such that consecutive ``batch_size`` slices hold examples of similar length.

    Each epoch: shuffle (seeded by ``seed + epoch``, so every process and a resumed run see the
    same order), cut into mega-batches of ``mega_batches x batch_size``, sort each by length,
    cut into batches and shuffle the batches within the mega-batch. Unlike transformers'
    sampler, small data sets still get grouped (its mega-batch shrinks to one batch), and long
    batches are not all placed first.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0,
                 mega_batches: int = 50) -> None:
        self.lengths = list(lengths)
        self.batch_size = max(1, int(batch_size))
        self.seed = int(seed)
        self.mega = max(1, int(mega_batches)) * self.batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        import torch

        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        out: list[int] = []
        for start in range(0, len(order), self.mega):
            chunk = sorted(order[start:start + self.mega], key=lambda i: self.lengths[i])
            batches = [chunk[j:j + self.batch_size] for j in range(0, len(chunk), self.batch_size)]
            for b in torch.randperm(len(batches), generator=g).tolist():
                out.extend(batches[b])
        return iter(out)
