"""Load files (CSV / JSON, good and bad) and the synthetic load generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.inputs.loads import (
    DEEPSEEK_V3_SAMPLE,
    ExpertLoads,
    LoadFileError,
    _capped_probabilities,
    loads_to_json,
    parse_csv_loads,
    read_loads,
    synth_loads,
)


def test_shipped_deepseek_v3_matrix():
    # 58 MoE layers x 256 experts; 20,267 tokens x top-8 = 162,136 per row (README beside the file)
    loads = read_loads(DEEPSEEK_V3_SAMPLE)
    assert (loads.num_layers, loads.num_experts) == (58, 256)
    assert all(loads.layer_total_tokens(i) == 162_136 for i in range(58))
    assert loads.tokens[0][:3] == (712.0, 554.0, 309.0)


def test_csv_with_and_without_comment(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("1,2,3\n4,5.5,6\n")
    commented = tmp_path / "commented.csv"
    commented.write_text("# source: a test\n1,2,3\n\n4,5.5,6\n")
    a, b = read_loads(plain), read_loads(commented)
    assert a.tokens == b.tokens == ((1.0, 2.0, 3.0), (4.0, 5.5, 6.0))
    assert a.source == str(plain)


def test_json_object_and_bare_list(tmp_path):
    obj = tmp_path / "obj.json"
    obj.write_text(json.dumps({"layers": [[1, 2], [3, 4.5]], "note": "ignored"}))
    bare = tmp_path / "bare.json"
    bare.write_text("[[1, 2], [3, 4.5]]")
    assert read_loads(obj).tokens == read_loads(bare).tokens == ((1.0, 2.0), (3.0, 4.5))


def test_json_round_trip(tmp_path):
    loads = synth_loads(experts=8, layers=3, top_k=2, seed=4, tokens=50)
    path = tmp_path / "loads.json"
    path.write_text(json.dumps(loads_to_json(loads)))
    assert read_loads(path).tokens == loads.tokens


def test_unknown_suffix_is_sniffed(tmp_path):
    as_json = tmp_path / "loads.dat"
    as_json.write_text("[[1, 2]]")
    as_csv = tmp_path / "loads.counts"
    as_csv.write_text("1,2\n")
    assert read_loads(as_json).tokens == read_loads(as_csv).tokens == ((1.0, 2.0),)


@pytest.mark.parametrize("text, location, value", [
    ("# c\n1,2,3\n4,x,6\n", "line 3, column 2 (layer 1, expert 1)", "'x'"),
    ("1,2,-3\n", "line 1, column 3 (layer 0, expert 2)", "'-3'"),
    ("1,nan,3\n", "line 1, column 2 (layer 0, expert 1)", "'nan'"),
    ("1,2,3\n4,,6\n", "line 2, column 2 (layer 1, expert 1)", "''"),
    ("1,2,3\n4,5\n", "line 2 (layer 1)", "'2 columns'"),
])
def test_bad_csv_names_the_place_and_value(tmp_path, text, location, value):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(LoadFileError) as err:
        read_loads(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {location}: got {value}, expected ")
    assert err.value.location == location


def test_ragged_csv_says_what_width_is_expected(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("# c\n1,2,3\n4,5\n")
    with pytest.raises(LoadFileError, match="expected 3 columns, like line 2"):
        read_loads(path)


@pytest.mark.parametrize("doc, location", [
    ({"layers": [[1, 2], [3, "a"]]}, "layers[1][1]"),
    ({"layers": [[1, 2], [3, True]]}, "layers[1][1]"),
    ({"layers": [[1, 2], [3]]}, "layers[1]"),
    ({"layers": [[1, -2]]}, "layers[0][1]"),
    ([[1, 2], "row"], "$[1]"),
    ({"rows": [[1]]}, "top level"),
    ({"layers": []}, "layers"),
])
def test_bad_json_names_the_place(tmp_path, doc, location):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(LoadFileError) as err:
        read_loads(path)
    assert err.value.location == location
    assert f": {location}: got " in str(err.value)


def test_json_syntax_error_gives_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"layers": [[1, 2],\n [3, 4]')
    with pytest.raises(LoadFileError, match=r"line 2, column \d+: got .*expected valid JSON"):
        read_loads(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(LoadFileError, match="expected an existing .csv or .json load file"):
        read_loads(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(LoadFileError, match="no data rows"):
        read_loads(empty)


def test_expert_loads_validates_shape():
    with pytest.raises(ValueError, match="layer 1 has 1 experts"):
        ExpertLoads(tokens=((1.0, 2.0), (3.0,)))
    with pytest.raises(ValueError):
        ExpertLoads(tokens=((1.0, -2.0),))
    assert parse_csv_loads("0,0\n").num_experts == 2


def test_synth_is_deterministic_and_shaped():
    a = synth_loads(experts=64, layers=5, top_k=4, skew=1.0, seed=7, tokens=1000)
    b = synth_loads(experts=64, layers=5, top_k=4, skew=1.0, seed=7, tokens=1000)
    c = synth_loads(experts=64, layers=5, top_k=4, skew=1.0, seed=8, tokens=1000)
    assert a.tokens == b.tokens != c.tokens
    assert (a.num_layers, a.num_experts) == (5, 64)
    assert "skew=1.0" in a.source


def test_synth_skew_zero_is_uniform_and_skew_raises_the_peak():
    # skew 0: every expert has q = top_k / experts = 1/32 of 20,267 tokens -> 633 +- 25 (binomial sd)
    flat = np.array(synth_loads(skew=0.0, seed=0).tokens)
    assert np.allclose(flat.mean(axis=1), 20_267 * 8 / 256, rtol=0.01)
    assert (flat.max(axis=1) / flat.mean(axis=1)).max() < 1.25
    peaks = []
    for skew in (0.0, 1.0, 2.0):
        x = np.array(synth_loads(skew=skew, seed=0).tokens)
        peaks.append(float((x.max(axis=1) / x.mean(axis=1)).mean()))
        assert x.max() <= 20_267  # an expert gets a token at most once
        assert np.allclose(x.sum(axis=1).mean(), 20_267 * 8, rtol=0.01)
    assert peaks[0] < peaks[1] < peaks[2]


def test_synth_rejects_bad_parameters():
    with pytest.raises(ValueError, match="top_k"):
        synth_loads(experts=4, top_k=5)
    with pytest.raises(ValueError, match="skew"):
        synth_loads(skew=-1.0)


@settings(max_examples=40, deadline=None)
@given(p=st.lists(st.floats(1e-6, 1.0), min_size=2, max_size=40), k=st.integers(1, 40))
def test_capped_probabilities_sum_to_top_k(p, k):
    k = min(k, len(p))
    arr = np.array(p) / sum(p)
    q = _capped_probabilities(arr, k)
    assert np.all(q <= 1.0 + 1e-12) and np.all(q >= 0)
    assert abs(q.sum() - k) < 1e-6
