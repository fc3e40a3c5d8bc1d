"""One way to open every benchmark picture: transparency onto white, unreadable files named."""

import io

import pytest
from PIL import Image, ImageFile

from r3v_eval.answers import letter_of
from r3v_eval.benchmarks import DataError, Problem, get_benchmark
from r3v_eval.benchmarks.images import open_image, to_rgb
from r3v_eval.lmms.task import doc_to_visual

from helpers import write_jsonl


def transparent(mode):
    """A picture of ``mode`` whose pixel (1, 1) is fully transparent and (0, 0) opaque red."""
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    im.putpixel((0, 0), (255, 0, 0, 255))
    if mode == "LA":
        return im.convert("LA")
    if mode == "P":  # a palette picture with a transparent colour (index 0)
        im = Image.new("P", (4, 4), 0)
        im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        im.putpixel((0, 0), 1)
        im.info["transparency"] = 0
    return im


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_becomes_white_not_black(mode):
    im = transparent(mode)
    assert im.convert("RGB").getpixel((1, 1)) == (0, 0, 0)  # the plain conversion's defect
    rgb = to_rgb(im)
    assert rgb.mode == "RGB" and rgb.getpixel((1, 1)) == (255, 255, 255)
    assert rgb.getpixel((0, 0))[0] > 70  # the opaque pixel keeps its colour (grey in LA)


def test_every_path_to_a_picture_uses_it(tmp_path):
    im = transparent("RGBA")
    im.save(tmp_path / "a.png")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    for value in (im, str(tmp_path / "a.png"), {"bytes": buf.getvalue(), "path": None},
                  {"bytes": None, "path": str(tmp_path / "a.png")}):
        assert open_image(value, "here").getpixel((1, 1)) == (255, 255, 255)
    p = Problem(id="p", question="q", answer="1", benchmark="chartqa", image=str(tmp_path / "a.png"))
    assert p.load_image().getpixel((1, 1)) == (255, 255, 255)
    assert doc_to_visual({"image": im})[0].getpixel((1, 1)) == (255, 255, 255)


def test_unreadable_pictures_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as importing lmms-eval does
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(DataError, match=r"row 3: unreadable image .*bad\.png"):
        open_image(str(tmp_path / "bad.png"), "row 3")
    good = io.BytesIO()
    Image.effect_noise((64, 64), 80).save(good, format="PNG")
    with pytest.raises(DataError, match=r"row 4: unreadable image cut\.png"):
        open_image({"bytes": good.getvalue()[:1000], "path": "cut.png"}, "row 4")  # truncated
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the setting is left as it was
    with pytest.raises(DataError, match="row 5: empty image cell"):
        open_image({"bytes": None, "path": None}, "row 5")


def test_local_rows_with_unreadable_pictures_are_skipped_at_load(tmp_path, caplog):
    Image.new("RGB", (4, 4), "red").save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    rows = [{"id": f"q{i}", "question": "How many?", "answer": "3", "image": "ok.png"}
            for i in range(120)]
    rows[5]["image"] = "bad.png"
    write_jsonl(tmp_path / "test.jsonl", rows)
    bench = get_benchmark("chartqa")
    problems = bench.load("test", source=tmp_path)
    assert len(problems) == 119 and bench.last_load.rows == 120
    assert "test.jsonl:6: unreadable image" in bench.last_load.skipped[0]
    assert "test.jsonl:6" in caplog.text
    bench.max_skipped_fraction = 0.0
    with pytest.raises(DataError, match=r"1 of 120 rows .* above the 0% limit"):
        bench.load("test", source=tmp_path)


def test_gold_letter_reads_option_text_first():
    assert letter_of("A", ["B", "A", "D", "C"]) == "B"
    assert letter_of("A", ["B", "A", "D", "C"], letter_first=True) == "A"
    assert letter_of("C", ["yes", "no", "maybe"]) == "C"
