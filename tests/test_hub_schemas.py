"""Every hub benchmark, loaded through its own ``load_dataset`` call from files shaped exactly
like the hub's (see tests/hub_fixtures.py): same features, same repository layout."""

from __future__ import annotations

import logging

import datasets
import pytest

from r3v_eval.benchmarks import DataError, get_benchmark
import hub_fixtures as hf
from hub_fixtures import CORRUPT_PICTURE, picture


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    hf.use_mirror(monkeypatch, tmp_path)
    return tmp_path


def white_background(im) -> bool:
    """A picture written as transparent RGBA (see hub_fixtures.picture) reads as RGB on white."""
    return im.mode == "RGB" and im.getpixel((5, 5)) == (255, 255, 255)


def test_mirror_folder_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("R3V_HUB_MIRROR", str(tmp_path))
    with pytest.raises(DataError, match=r"no local copy of HuggingFaceM4/ChartQA .*hf download"):
        get_benchmark("chartqa").load("test")


# ------------------------------------------------------------------ ChartQA
def test_chartqa_hub_schema(mirror):
    rows = [
        {"image": picture(mode="RGBA"), "query": "Max value?", "label": ["41"], "human_or_machine": 0},
        {"image": picture(), "query": "Generated q?", "label": ["2"], "human_or_machine": 1},
        {"image": picture(), "query": "Is A > B?", "label": ["Yes"], "human_or_machine": 0},
    ]
    hf.write_repo(mirror, "HuggingFaceM4/ChartQA", hf.CHARTQA,
                  {None: {"train": rows, "val": rows[:1], "test": rows}})
    bench = get_benchmark("chartqa")
    problems = bench.load("test")
    assert [p.answer for p in problems] == ["41", "Yes"]  # the machine-written row is dropped
    assert white_background(problems[0].image)
    assert problems[1].meta["source"] == "human"
    assert len(bench.load("validation")) == 1  # our "validation" is the hub's "val"
    assert bench.score("Answer: 40", problems[0]).correct  # relaxed accuracy, 5%


# ------------------------------------------------------------------ TabMWP
def test_tabmwp_hub_schema_train_split(mirror):
    rows = [
        {"image": picture(), "id": "17", "question": "How much?", "options": [], "answer": "4,656"},
        {"image": picture(), "id": "18", "question": "Which is more?",
         "options": ["more", "fewer"], "answer": "fewer"},
        {"image": picture(), "id": "19", "question": "Pick one", "options": ["yes", "no"],
         "answer": "B"},
    ]
    hf.write_repo(mirror, "JiaerX/TabMWP", hf.TABMWP_JIAERX, {None: {"train": rows}})
    bench = get_benchmark("tabmwp")
    problems = bench.load("train")
    assert [p.id for p in problems] == ["tabmwp-17", "tabmwp-18", "tabmwp-19"]
    assert problems[0].choices is None and problems[0].answer == "4,656"
    assert problems[1].answer == "fewer" and problems[2].answer == "no"  # letter -> option text
    assert bench.score("Answer: 4656", problems[0]).correct
    with pytest.raises(DataError, match=r"PromptPG.*git clone --depth 1 https://github.com/lupantech"):
        bench.load("test")


# ------------------------------------------------------------------ CLEVR-Math
def clevr_rows(n: int, image=None):
    return [{"template": "subtraction", "id": f"CLEVR_x_{i:06d}.png",
             "question": f"Subtract all red cubes. How many objects are left? ({i})",
             "image": image if image is not None else picture(), "label": i % 11}
            for i in range(n)]


def test_clevr_math_test_copy_and_parquet_export(mirror):
    hf.write_repo(mirror, "ohjoonhee/CLEVR-Math-Test", hf.CLEVR_MATH,
                  {"general": {"test": clevr_rows(3)}, "multihop": {"test": clevr_rows(2)}})
    # a refs/convert/parquet export: folders per config, a partial train, and no README
    hf.write_repo(mirror, "dali-does/clevr-math", hf.CLEVR_MATH,
                  {"general": {"partial-train": clevr_rows(4), "validation": clevr_rows(1)},
                   "multihop": {"partial-train": clevr_rows(2)}}, parquet_export=True)
    bench = get_benchmark("clevr_math")
    test = bench.load("test")
    assert [p.answer for p in test] == ["0", "1", "2"]
    assert test[1].meta == {"hub_index": 1, "template": "subtraction",
                            "image_filename": "CLEVR_x_000001.png"}
    assert len(bench.load("train")) == 4  # only the general/ folder, read as "train"
    assert len(bench.load("validation")) == 1
    bench.hub_config = "multihop"
    assert len(bench.load("test")) == 2 and len(bench.load("train")) == 2


def test_clevr_math_missing_copy_is_a_clear_error(mirror):
    hf.write_repo(mirror, "ohjoonhee/CLEVR-Math-Test", hf.CLEVR_MATH,
                  {"general": {"test": clevr_rows(1)}})
    (mirror / "dali-does" / "clevr-math").mkdir(parents=True)
    with pytest.raises(DataError, match=r"split 'train' from dali-does/clevr-math, folder 'general', "
                                        r"revision 'refs/convert/parquet'.*canonical local schema"):
        get_benchmark("clevr_math").load("train")


# ------------------------------------------------------------------ GeoQA (Chinese port)
def test_geoqa_zh_hub_schema(mirror):
    def row(i, split, label):
        return {"id": i, "subject": f"如图,∠A={40 + i}°,求∠B", "choices": ["30°", "40°", "50°", "60°"],
                "label": label, "formal_point": ["三角形内角和"], "answer": "解析...",
                "comment": "", "original_split": split, "image": picture(mode="RGBA")}
    rows = [row(0, "train", 1), row(1, "test", 2), row(2, "dev", 0), row(3, "test", 3)]
    hf.write_repo(mirror, "hz2475/geoQA", hf.GEOQA_ZH, {None: {"train": rows}})
    bench = get_benchmark("geoqa_zh")
    test = bench.load("test")
    assert [(p.id, p.answer) for p in test] == [("1", "C"), ("3", "D")]
    assert test[0].meta["language"] == "zh" and test[0].meta["original_split"] == "test"
    assert white_background(test[0].image)
    assert [p.id for p in bench.load("validation")] == ["2"]


# ------------------------------------------------------------------ M3CoT
def test_m3cot_hub_schema(mirror):
    def row(i, choices, answer, context=""):
        return {"id": f"m3-{i}", "category": "science", "image_id": f"img{i}", "question": "Which?",
                "choices": choices, "context": context, "answer": answer, "rationale": "Because.",
                "split": "test", "image": picture(), "domain": "science", "topic": "physics"}
    # letters out of order as options: M3CoT's answer is a letter by definition
    rows = [row(0, ["cat", "dog"], "B", "A farm."), row(1, ["B", "A", "C"], "A")]
    hf.write_repo(mirror, "LightChen2333/M3CoT", hf.M3COT,
                  {None: {"train": rows, "validation": rows, "test": rows}})
    problems = get_benchmark("m3cot").load("test")
    assert problems[0].question == "Context: A farm.\nWhich?" and problems[0].answer == "B"
    assert problems[1].answer == "A"  # the first option, whose text is "B"
    assert get_benchmark("m3cot").score("Answer: (A)", problems[1]).correct


# ------------------------------------------------------------------ MMMU
def mmmu_row(subject, i, options="['1', '2', '3']", question="<image 1> How many?",
             answer="B", qtype="multiple-choice", **images):
    row = {"id": f"validation_{subject}_{i}", "question": question, "options": options,
           "explanation": "", "img_type": "['Diagrams']", "answer": answer,
           "topic_difficulty": "Easy", "question_type": qtype, "subfield": "x"}
    row.update({f"image_{k}": None for k in range(1, 8)})
    row.update(images)
    return row


def test_mmmu_hub_schema_every_image_and_dev_plus_validation(mirror):
    red, blue = picture((255, 0, 0), (10, 6)), picture((0, 0, 255), (8, 9))
    acc = {"dev": [mmmu_row("Accounting", 1, image_1=red)],
           "validation": [mmmu_row("Accounting", 2, question="Compare <image 1> and <image 2>.",
                                   image_1=red, image_2=blue),
                          mmmu_row("Accounting", 3, options="[]", question="Value of <image 1>?",
                                   answer="6.5", qtype="open", image_1=red)]}
    art = {"dev": [mmmu_row("Art", 1, image_1=red)],
           "validation": [mmmu_row("Art", 2, options="['<image 1>', '<image 2>']",
                                   question="Which painting is older?", answer="A",
                                   image_1=red, image_2=blue)]}
    hf.write_repo(mirror, "MMMU/MMMU", hf.MMMU, {"Accounting": acc, "Art": art})
    bench = get_benchmark("mmmu")
    bench.subjects = ("Accounting", "Art")
    val = bench.load()  # validation by default
    assert [p.id for p in val] == ["validation_Accounting_2", "validation_Accounting_3",
                                   "validation_Art_2"]
    assert val[0].image.size == (10 + 10 + 8, 9)  # both referenced pictures, side by side
    assert val[2].meta["image_refs"] == [1, 2] and val[2].image.size == (28, 9)
    assert val[1].choices is None and bench.score("Answer: 6.5", val[1]).correct
    assert len(bench.load("dev+validation")) == 5  # R3V's 1,050-question set, in miniature
    bench.image_mode = "first"
    assert bench.load()[0].image.size == (10, 6)


# ------------------------------------------------------------------ MathVista
def mathvista_row(pid, choices, answer, qtype="multi_choice", atype="text", precision=None):
    return {"pid": pid, "question": "What is shown?", "image": f"images/{pid}.jpg",
            "decoded_image": picture(), "choices": choices, "unit": None, "precision": precision,
            "answer": answer, "question_type": qtype, "answer_type": atype,
            "metadata": {"category": "math-targeted-vqa", "context": "chart", "grade": "college",
                         "img_height": 8, "img_width": 12, "language": "english",
                         "skills": ["arithmetic reasoning"], "source": "X", "split": "testmini",
                         "task": "figure question answering"},
            "query": "Hint: ... Question: What is shown?"}


def test_mathvista_hub_schema_text_first_gold(mirror):
    rows = [mathvista_row("1", ["B", "A", "D", "C"], "A"),  # letters out of order: gold is text
            mathvista_row("2", None, "2.5", "free_form", "float", 1.0),
            mathvista_row("3", None, "7", "free_form", "integer")]
    hf.write_repo(mirror, "AI4Math/MathVista", hf.MATHVISTA,
                  {None: {"testmini": rows, "test": rows[:1]}})
    bench = get_benchmark("mathvista")
    problems = bench.load()  # testmini by default
    assert [p.id for p in problems] == ["1", "2", "3"]
    assert bench.score("Answer: (B)", problems[0]).correct  # option B's text is the gold "A"
    assert not bench.score("Answer: (A)", problems[0]).correct
    assert problems[1].meta["precision"] == 1 and bench.score("Answer: 2.46", problems[1]).correct
    assert problems[0].meta["metadata"]["skills"] == ["arithmetic reasoning"]


# ------------------------------------------------------------------ skips
def test_unreadable_pictures_below_the_limit_are_skipped_and_named(mirror, caplog):
    rows = clevr_rows(150)
    rows[7]["image"] = CORRUPT_PICTURE
    hf.write_repo(mirror, "ohjoonhee/CLEVR-Math-Test", hf.CLEVR_MATH, {"general": {"test": rows}})
    bench = get_benchmark("clevr_math")
    with caplog.at_level(logging.WARNING):
        problems = bench.load("test")
    assert len(problems) == 149 and "clevr_math-000007" not in {p.id for p in problems}
    assert bench.last_load.kept == 149 and len(bench.last_load.skipped) == 1
    assert "row 7" in bench.last_load.skipped[0] and "unreadable image" in bench.last_load.skipped[0]
    assert "1 of 150 rows" in caplog.text and "row 7" in caplog.text


def test_too_many_bad_rows_fail_the_load_and_name_them(mirror):
    rows = clevr_rows(50)
    rows[3]["image"] = CORRUPT_PICTURE
    hf.write_repo(mirror, "ohjoonhee/CLEVR-Math-Test", hf.CLEVR_MATH, {"general": {"test": rows}})
    with pytest.raises(DataError, match=r"(?s)1 of 50 rows read from ohjoonhee/CLEVR-Math-Test.*above the 1% limit.*"
                                         r"ohjoonhee/CLEVR-Math-Test row 3: unreadable image broken.png"):
        get_benchmark("clevr_math").load("test")


def test_fixture_features_match_what_datasets_reads_back(mirror):
    """The fixture's files carry the card's types (ClassLabel, Image, lists, structs)."""
    hf.write_repo(mirror, "HuggingFaceM4/ChartQA", hf.CHARTQA,
                  {None: {"test": [{"image": picture(), "query": "q", "label": ["1"],
                                    "human_or_machine": 0}]}})
    ds = datasets.load_dataset(str(mirror / "HuggingFaceM4/ChartQA"), split="test")
    assert ds.features == hf.CHARTQA
