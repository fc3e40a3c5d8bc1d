"""Local copies of hub data set repositories, written the way the hub holds them.

Each benchmark's schema below is its data set card's ``dataset_info.features`` (column names and
``datasets`` types: ``Image`` vs a path string, a list vs a string of options, ``ClassLabel``).
:func:`write_repo` writes rows with those features as Parquet files at the hub's paths
(``data/<split>-00000-of-00001.parquet``, or ``<config>/<split>-...`` for per-config
repositories, or a ``refs/convert/parquet`` export's ``<config>/<split>/0000.parquet``) with
the README front matter (``configs`` / ``dataset_info``) the hub generates. With
``R3V_HUB_MIRROR`` pointing at the root, a loader's own ``load_dataset`` call reads them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import datasets
import yaml
from datasets import ClassLabel, Features, Image, Sequence, Value
from PIL import Image as PILImage

S = Value("string")

CHARTQA = Features({"image": Image(), "query": S, "label": Sequence(S),
                    "human_or_machine": ClassLabel(names=["human", "machine"])})
TABMWP_JIAERX = Features({"image": Image(), "id": S, "question": S, "options": Sequence(S),
                          "answer": S})
CLEVR_MATH = Features({"template": S, "id": S, "question": S, "image": Image(),
                       "label": Value("int64")})
GEOQA_ZH = Features({"id": Value("int64"), "subject": S, "choices": Sequence(S),
                     "label": Value("int64"), "formal_point": Sequence(S), "answer": S,
                     "comment": S, "original_split": S, "image": Image()})
M3COT = Features({"id": S, "category": S, "image_id": S, "question": S, "choices": Sequence(S),
                  "context": S, "answer": S, "rationale": S, "split": S, "image": Image(),
                  "domain": S, "topic": S})
MMMU = Features({"id": S, "question": S, "options": S, "explanation": S,
                 **{f"image_{k}": Image() for k in range(1, 8)},
                 "img_type": S, "answer": S, "topic_difficulty": S, "question_type": S,
                 "subfield": S})
MATHVISTA = Features({
    "pid": S, "question": S, "image": S, "decoded_image": Image(), "choices": Sequence(S),
    "unit": S, "precision": Value("float64"), "answer": S, "question_type": S,
    "answer_type": S,
    "metadata": {"category": S, "context": S, "grade": S, "img_height": Value("int64"),
                 "img_width": Value("int64"), "language": S, "skills": Sequence(S),
                 "source": S, "split": S, "task": S},
    "query": S,
})


def picture(color=(200, 30, 30), size=(12, 8), mode="RGB") -> PILImage.Image:
    """A small picture; mode "RGBA" gives a fully transparent background with one opaque pixel."""
    if mode == "RGBA":
        im = PILImage.new("RGBA", size, (0, 0, 0, 0))
        im.putpixel((0, 0), (*color, 255))
        return im
    return PILImage.new(mode, size, color)


def png_bytes(im: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


CORRUPT_PICTURE = {"bytes": b"\x89PNG\r\n\x1a\n but not really", "path": "broken.png"}


def write_repo(root: Path, repo_id: str, features: Features,
               splits: dict[str | None, dict[str, list[dict[str, Any]]]],
               parquet_export: bool = False) -> Path:
    """Write ``splits`` ({config or None: {split: rows}}) as the hub repository ``repo_id``."""
    repo = root / repo_id
    configs, infos = [], []
    for config, by_split in splits.items():
        folder = config or "data"
        files = []
        for split, rows in by_split.items():
            if parquet_export:
                rel = f"{folder}/{split}/0000.parquet"
            else:
                rel = f"{folder}/{split}-00000-of-00001.parquet"
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_list(rows, features=features).to_parquet(str(repo / rel))
            files.append({"split": split, "path": f"{folder}/{split}-*"})
        configs.append({"config_name": config or "default", "data_files": files})
        info = datasets.DatasetInfo(features=features)._to_yaml_dict()
        infos.append({"config_name": config or "default", **info})
    if not parquet_export:  # an export branch holds no README
        front = yaml.safe_dump({"configs": configs, "dataset_info": infos}, sort_keys=False)
        (repo / "README.md").write_text(f"---\n{front}---\n# {repo_id}\n", encoding="utf-8")
    return repo


def use_mirror(monkeypatch, root: Path) -> None:
    """Point the loaders at ``root`` and keep ``datasets``' cache inside it."""
    monkeypatch.setenv("R3V_HUB_MIRROR", str(root))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", root / ".cache")
