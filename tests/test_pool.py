import json
import logging

import pytest

from r3v_train import pool as pool_mod
from r3v_train.pool import PoolError, Sample, SamplePool, group_by_question

from helpers import write_jsonl


def S(t, qid, i, correct=True, extracted="4", reply=None, style="qwen"):
    if not correct and extracted == "4":
        extracted = "5"
    return Sample(t, qid, i, style, reply or f"Solution:\n1. reply {qid} t{t} i{i}\n\nAnswer:\n"
                  f"{extracted}", extracted, correct)


def lines(path):
    return path.read_bytes().decode().splitlines()


def test_append_and_read_round_trip(tmp_path):
    pool = SamplePool(tmp_path / "pool")
    a = [S(0, "q1", 0), S(0, "q1", 1, correct=False), S(0, "q2", 0, correct=False, extracted=None)]
    b = [S(1, "q1", 0, correct=False), S(1, "q2", 0)]
    assert pool.append(a) == 3
    assert pool.append(b) == 2
    assert (tmp_path / "pool" / "iter_0.jsonl").is_file()
    assert (tmp_path / "pool" / "iter_1.jsonl").is_file()
    assert pool.iterations() == [0, 1]
    # a fresh instance reads back exactly what was written
    again = SamplePool(tmp_path / "pool")
    assert again.read_iteration(0) == a
    assert again.read_iteration(1) == b
    assert again.samples() == a + b
    assert again.samples(up_to_iteration=0) == a
    assert again.read_iteration(7) == []
    row = json.loads(lines(again.path(0))[2])
    assert row == {"iteration": 0, "question_id": "q2", "sample_index": 0, "prompt_style": "qwen",
                   "reply": a[2].reply, "extracted": None, "correct": False}


def test_stats_per_iteration_and_overall(tmp_path):
    pool = SamplePool(tmp_path)
    pool.append([S(0, "q1", 0), S(0, "q1", 1, correct=False),
                 S(0, "q2", 0, correct=False, extracted=None), S(0, "q2", 1, correct=False)])
    pool.append([S(1, "q2", 0)])
    st = pool.stats(0)
    assert st["n"] == 4 and st["positives"] == 1 and st["negatives"] == 3
    assert st["unparseable"] == 1 and st["accuracy"] == 0.25
    assert st["questions"] == 2 and st["questions_solved"] == 1
    overall = pool.stats()
    assert overall["n"] == 5 and overall["positives"] == 2 and overall["questions_solved"] == 2
    assert pool.stats(3) == {"n": 0, "positives": 0, "negatives": 0, "unparseable": 0,
                             "accuracy": 0.0, "questions": 0, "questions_solved": 0}


def test_by_question_orders_by_iteration_then_sample_index(tmp_path):
    pool = SamplePool(tmp_path)
    # appended out of order on purpose
    pool.append([S(2, "q1", 1), S(2, "q1", 0)])
    pool.append([S(0, "q1", 2), S(0, "q2", 0), S(0, "q1", 0)])
    pool.append([S(1, "q1", 0)])
    groups = pool.by_question()
    assert [s.recency for s in groups["q1"]] == [(0, 0), (0, 2), (1, 0), (2, 0), (2, 1)]
    assert [s.recency for s in groups["q2"]] == [(0, 0)]
    assert [s.recency for s in pool.by_question(up_to_iteration=1)["q1"]] == [(0, 0), (0, 2),
                                                                               (1, 0)]
    assert group_by_question([S(1, "a", 0), S(0, "a", 5)])["a"][-1].recency == (1, 0)


def test_done_keys_let_a_resumed_stage_skip_finished_samples(tmp_path):
    pool = SamplePool(tmp_path)
    pool.append([S(1, "q1", 0), S(1, "q1", 1), S(1, "q2", 0)])
    pool.append([S(0, "q9", 0)])
    assert pool.done_keys(1) == {("q1", 0), ("q1", 1), ("q2", 0)}
    assert pool.done_keys(0) == {("q9", 0)}
    assert pool.done_keys(2) == set()
    todo = [(q, i) for q in ("q1", "q2") for i in range(3)
            if (q, i) not in SamplePool(tmp_path).done_keys(1)]
    assert todo == [("q1", 2), ("q2", 1), ("q2", 2)]


def test_appending_a_stored_key_raises_and_writes_nothing(tmp_path):
    pool = SamplePool(tmp_path)
    pool.append([S(0, "q1", 0)])
    before = pool.path(0).read_bytes()
    with pytest.raises(PoolError, match="already in the pool"):
        pool.append([S(0, "q2", 0), S(0, "q1", 0)])
    with pytest.raises(PoolError, match="already in the pool"):
        pool.append([S(0, "q3", 0), S(0, "q3", 0)])
    assert pool.path(0).read_bytes() == before
    assert SamplePool(tmp_path).done_keys(0) == {("q1", 0)}


def test_each_append_is_one_write_then_fsync(tmp_path, monkeypatch):
    calls = []
    real = pool_mod.os.fsync
    monkeypatch.setattr(pool_mod.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    pool = SamplePool(tmp_path)
    pool.append([S(0, "q1", i) for i in range(5)])
    assert calls  # the data reached the disk before append returned
    assert len(lines(pool.path(0))) == 5
    assert pool.path(0).read_bytes().endswith(b"\n")


def test_truncated_last_line_is_ignored_then_repaired(tmp_path, caplog):
    pool = SamplePool(tmp_path)
    pool.append([S(0, "q1", 0), S(0, "q1", 1)])
    path = pool.path(0)
    half = S(0, "q1", 2).to_json()
    with open(path, "ab") as fh:  # a crash in the middle of writing the third line
        fh.write(half[: len(half) // 2].encode())
    with caplog.at_level(logging.WARNING, logger="r3v_train.pool"):
        resumed = SamplePool(tmp_path)
        got = resumed.read_iteration(0)
    assert [s.sample_index for s in got] == [0, 1]
    assert resumed.done_keys(0) == {("q1", 0), ("q1", 1)}
    assert resumed.torn_count == 1 and str(path) in resumed.torn_lines
    assert "torn final line" in caplog.text
    # the resumed stage redraws sample 2 and appends it: the fragment is cut off first
    resumed.append([S(0, "q1", 2, correct=False), S(0, "q2", 0)])
    assert resumed.torn_count == 0
    raw = lines(path)
    assert len(raw) == 4 and all(json.loads(x) for x in raw)
    fresh = SamplePool(tmp_path)
    assert [(s.question_id, s.sample_index, s.correct) for s in fresh.read_iteration(0)] == [
        ("q1", 0, True), ("q1", 1, True), ("q1", 2, False), ("q2", 0, True)]
    assert fresh.torn_count == 0


def test_torn_tail_of_nul_bytes_is_ignored_and_cut(tmp_path):
    pool = SamplePool(tmp_path)
    pool.append([S(0, "q1", 0)])
    with open(pool.path(0), "ab") as fh:
        fh.write(b"\x00" * 40)
    assert len(SamplePool(tmp_path).read_iteration(0)) == 1
    again = SamplePool(tmp_path)
    again.append([S(0, "q1", 1)])
    assert b"\x00" not in again.path(0).read_bytes()
    assert len(SamplePool(tmp_path).read_iteration(0)) == 2


def test_complete_last_record_without_newline_is_kept(tmp_path):
    path = tmp_path / "iter_0.jsonl"
    path.write_text(S(0, "q1", 0).to_json() + "\n" + S(0, "q1", 1).to_json())
    pool = SamplePool(tmp_path)
    assert pool.done_keys(0) == {("q1", 0), ("q1", 1)}
    assert pool.torn_count == 0
    pool.append([S(0, "q1", 2)])
    assert len(lines(path)) == 3
    assert [s.sample_index for s in SamplePool(tmp_path).read_iteration(0)] == [0, 1, 2]


def test_corrupt_middle_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "iter_3.jsonl"
    good = [S(3, "q1", i).to_json() for i in range(3)]
    path.write_text(good[0] + "\n" + good[1][:20] + "\n" + good[2] + "\n")
    with pytest.raises(PoolError, match=r"iter_3\.jsonl:2: malformed"):
        SamplePool(tmp_path).samples()
    pool = SamplePool(tmp_path)
    with pytest.raises(PoolError, match=r"iter_3\.jsonl:2"):
        pool.append([S(3, "q9", 0)])  # never appends after a corrupt middle
    assert path.read_text().count("\n") == 3


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(correct="yes"), "'correct' must be true or false"),
    (lambda r: r.pop("reply"), "missing field"),
    (lambda r: r.update(extra=1), "unknown field"),
    (lambda r: r.update(sample_index=-1), "'sample_index'"),
    (lambda r: r.update(iteration=1), "record of iteration 1"),
    (lambda r: r.update(extracted=None), "unparseable is always wrong"),
])
def test_invalid_record_is_an_error_naming_the_line(tmp_path, mutate, message):
    rows = [S(0, "q1", i).to_dict() for i in range(3)]
    mutate(rows[1])
    write_jsonl(tmp_path / "iter_0.jsonl", rows)
    with pytest.raises(PoolError, match=r"iter_0\.jsonl:2") as err:
        SamplePool(tmp_path).read_iteration(0)
    assert message in str(err.value)


def test_duplicate_key_in_a_file_is_an_error(tmp_path):
    row = S(0, "q1", 0).to_json()
    write_jsonl(tmp_path / "iter_0.jsonl", [row, S(0, "q2", 0).to_json(), row])
    with pytest.raises(PoolError, match=r"iter_0\.jsonl:3: duplicate .* line 1"):
        SamplePool(tmp_path).samples()


def test_sample_validation():
    with pytest.raises(PoolError, match="unparseable"):
        Sample(0, "q", 0, "qwen", "hmm", None, True)
    with pytest.raises(PoolError, match="iteration"):
        Sample(True, "q", 0, "qwen", "x", "1", True)
    s = Sample(0, "q", 0, "qwen", "hmm", None, False)
    assert s.negative and s.unparseable and not s.positive
    assert Sample.from_dict(s.to_dict()) == s


def test_other_instance_sees_new_appends_and_odd_files_are_ignored(tmp_path):
    a, b = SamplePool(tmp_path), SamplePool(tmp_path)
    a.append([S(0, "q1", 0)])
    assert b.done_keys(0) == {("q1", 0)}
    b.append([S(0, "q1", 1)])
    assert a.done_keys(0) == {("q1", 0), ("q1", 1)}
    (tmp_path / "iter_01.jsonl").write_text("junk")
    (tmp_path / "notes.txt").write_text("junk")
    assert a.iterations() == [0]
    with pytest.raises(ValueError):
        a.path(-1)
