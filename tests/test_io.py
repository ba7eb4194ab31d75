"""Tests of neuromech.io: spike tables, population tables, traces and atomic writing.

Truth here is exact: every writer must round-trip through its reader bit for bit (spike times are
written with Python's shortest round-trip repr), and a failed write must leave nothing behind.
"""

from __future__ import annotations

import os
import types

import numpy as np
import pandas as pd
import pytest

from neuromech.io import (
    SpikeWriter,
    atomic_path,
    format_train,
    parse_train,
    read_population,
    read_spikes,
    read_traces,
    read_trains,
    write_population,
    write_spikes,
    write_traces,
)

# Awkward values on purpose: non-terminating binary fractions, tiny and large magnitudes.
TRAINS = {
    3: np.array([0.1 + 0.2, 1.0 / 3.0, 12.345678901234567]),
    5: np.array([]),  # silent
    7: np.array([1e-12, 5999.999999999999]),
    11: np.array([42.0]),
}


def _blocks(trains):
    ids = np.array(list(trains))
    counts = [len(t) for t in trains.values()]
    return ids, np.concatenate(list(trains.values())), np.concatenate([[0], np.cumsum(counts)])


def _files(path):
    return sorted(p.name for p in path.iterdir())


# --------------------------------------------------------------------------------- spike tables


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("format", ["long", "spike2pop"])
def test_spike_tables_round_trip_exactly(tmp_path, suffix, format):
    path = tmp_path / f"spikes{suffix}"
    with SpikeWriter(path, format=format) as writer:
        writer.write(*_blocks(TRAINS))
    got = read_trains(path)
    expected = TRAINS if format == "spike2pop" else {k: v for k, v in TRAINS.items() if v.size}
    assert list(got) == list(expected)  # ids in order, silent ones only in the wide format
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k])
    assert _files(tmp_path) == [path.name]  # no temporary file left


def test_spike2pop_csv_text_is_the_published_format(tmp_path):
    path = tmp_path / "s.csv"
    with SpikeWriter(path, format="spike2pop") as writer:
        writer.write([1, 2], [10.5, 20.25], [0, 2, 2])
    assert path.read_text() == 'ID,spiking_times\n1,"[10.5, 20.25]"\n2,"[]"\n'


def test_long_csv_text(tmp_path):
    path = write_spikes(tmp_path / "s.csv", pd.DataFrame({"id": [4, 4], "spike_time": [1.5, 3.0]}))
    assert path.read_text() == "id,spike_time\n4,1.5\n4,3.0\n"


def test_write_spikes_from_a_result_keeps_every_id(tmp_path):
    ids, times, offsets = _blocks(TRAINS)
    result = types.SimpleNamespace(ids=ids, spike_times=times, offsets=offsets)
    path = write_spikes(tmp_path / "s.parquet", result, format="spike2pop")
    assert list(read_trains(path)) == list(TRAINS)


def test_write_spikes_from_a_table_with_explicit_ids_and_string_ids(tmp_path):
    table = pd.DataFrame({"id": ["b", "a", "b"], "spike_time": [1.0, 2.0, 3.0]})
    path = write_spikes(tmp_path / "s.csv", table, ids=["a", "b", "c"], format="spike2pop")
    got = read_trains(path)
    assert list(got) == ["a", "b", "c"]
    np.testing.assert_array_equal(got["b"], [1.0, 3.0])
    assert got["c"].size == 0
    with pytest.raises(ValueError, match="ids not in `ids`"):
        write_spikes(tmp_path / "t.csv", table, ids=["a"])


def test_read_spikes_gives_the_long_table(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('ID,spiking_times\n3,"[1.5, 2.5]"\n4,"[]"\n5,"[7]"\n')
    table = read_spikes(path)
    assert table.columns.tolist() == ["id", "spike_time"]
    assert table["id"].tolist() == [3, 3, 5] and table["spike_time"].tolist() == [1.5, 2.5, 7.0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[]", []),
        ("[ ]", []),
        ("  [1.5,2.5]  ", [1.5, 2.5]),
        ("[ 1.5 ,  2.5 ]", [1.5, 2.5]),
        ("[1.5 2.5\t3]", [1.5, 2.5, 3.0]),  # NumPy's str() of an array
        ("[1e3, -2.5E-1]", [1000.0, -0.25]),
    ],
)
def test_parse_train_accepts_the_usual_spellings(text, expected):
    np.testing.assert_array_equal(parse_train(text), expected)


@pytest.mark.parametrize("text", ["", "1.5, 2.5", "[1.5,, 2.5]", "[1.5, abc]", "[nan]", "[1.5", "[inf]"])
def test_parse_train_rejects_malformed(text):
    with pytest.raises(ValueError):
        parse_train(text)


def test_format_train_round_trips():
    for times in TRAINS.values():
        np.testing.assert_array_equal(parse_train(format_train(times)), times)


def test_malformed_wide_rows_are_reported_with_their_row_and_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('ID,spiking_times\n1,"[1.0, 2.0]"\n2,"[1.0,,2.0]"\n3,[]\n4,oops\n5,\n')
    with pytest.raises(ValueError) as info:
        read_trains(path)
    message = str(info.value)
    assert "row 2 (line 3)" in message and "row 4 (line 5)" in message and "row 5 (line 6)" in message
    assert "row 1 " not in message and "row 3 " not in message


def test_malformed_long_rows_are_reported(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,spike_time\n1,2.5\n1,x\n2,\n")
    with pytest.raises(ValueError, match=r"row 2 \(line 3\): 'x'; row 3 \(line 4\): ''"):
        read_spikes(path)


def test_wide_parquet_with_string_cells_is_read(tmp_path):
    path = tmp_path / "s.parquet"
    pd.DataFrame({"ID": [1, 2], "spiking_times": ["[1.0, 2.0]", "[]"]}).to_parquet(path)
    got = read_trains(path)
    np.testing.assert_array_equal(got[1], [1.0, 2.0])
    assert got[2].size == 0


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("s.csv", "", "is empty"),
        ("s.csv", "a,b\n1,2\n", "not a spike table"),
        ("s.csv", 'ID,spiking_times\n1,"[]"\n1,"[2.0]"\n', "duplicated: 1"),
        ("s.txt", "id,spike_time\n", "unsupported table file type"),
    ],
)
def test_bad_spike_tables(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_trains(path)


def test_empty_spike_tables_round_trip(tmp_path):
    for name in ("e.csv", "e.parquet"):
        with SpikeWriter(tmp_path / name):
            pass
        assert read_spikes(tmp_path / name).empty


# --------------------------------------------------------------------------------- populations


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_population_round_trip(tmp_path, suffix):
    table = pd.DataFrame({"g_Na": [120.0, 0.1 + 0.2], "id": [7, 9], "g_K": [36.0, 1.0 / 3.0]})
    path = write_population(tmp_path / f"pop{suffix}", table)
    got = read_population(path)
    assert got.columns.tolist() == ["id", "g_Na", "g_K"]  # id first
    pd.testing.assert_frame_equal(got, table[["id", "g_Na", "g_K"]], check_dtype=False)


def test_population_without_id_is_numbered_by_row(tmp_path):
    path = tmp_path / "pop.csv"
    path.write_text("g_Na,g_K\n1,2\n3,4\n5,6\n")
    assert read_population(path)["id"].tolist() == [0, 1, 2]


def test_population_ID_column_is_accepted_and_string_ids_kept(tmp_path):
    path = tmp_path / "pop.csv"
    path.write_text("ID,g_Na\ncell_a,1\ncell_b,2\n")
    assert read_population(path)["id"].tolist() == ["cell_a", "cell_b"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "is empty"),
        ("id,g_Na,g_K\n", "no models: a header"),
        ("id,g_Na\n1,2\n2,3\n1,4\n", "ids must be unique; duplicated: 1"),
        ("id,g_Na\n1,2\n,3\n", r"missing ids at row 2 \(line 3\)"),
    ],
)
def test_bad_population_files(tmp_path, content, message):
    path = tmp_path / "pop.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_population(path)


def test_unreadable_population_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_population(tmp_path / "missing.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(IsADirectoryError):
        read_population(tmp_path / "dir.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="as Parquet"):
        read_population(tmp_path / "bad.parquet")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match="as CSV"):
        read_population(tmp_path / "bin.csv")


# ---------------------------------------------------------------------------------------- traces


def test_traces_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    time = np.arange(5) * 0.1
    states = rng.normal(size=(2, 5, 3))
    path = write_traces(tmp_path / "v.npz", time, states[..., 0], ids=["a", "b"], states=states,
                        state_names=("V", "m", "h"))
    got = read_traces(path)
    np.testing.assert_array_equal(got.time, time)
    np.testing.assert_array_equal(got.voltage, states[..., 0])
    np.testing.assert_array_equal(got.states, states)
    assert got.ids.tolist() == ["a", "b"] and got.state_names == ("V", "m", "h")
    assert _files(tmp_path) == ["v.npz"]


def test_voltage_only_traces_default_ids(tmp_path):
    got = read_traces(write_traces(tmp_path / "v.npz", [0.0, 0.1], [[1.0, 2.0]]))
    assert got.ids.tolist() == [0] and got.state_names == ("V",) and got.states is None


def test_bad_traces(tmp_path):
    with pytest.raises(ValueError, match=r"\*.npz"):
        write_traces(tmp_path / "v.npy", [0.0], [[1.0]])
    with pytest.raises(ValueError, match="shape"):
        write_traces(tmp_path / "v.npz", [0.0, 0.1], [[1.0, 2.0, 3.0]])
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(ValueError, match="not a NumPy .npz archive"):
        read_traces(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="missing time, voltage, ids"):
        read_traces(tmp_path / "other.npz")
    assert _files(tmp_path) == ["junk.npz", "other.npz"]


# ---------------------------------------------------------------------------------------- atomic


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "s.csv"
    with pytest.raises(RuntimeError):
        with SpikeWriter(path) as writer:
            writer.write(*_blocks(TRAINS))
            raise RuntimeError("crash mid-way")
    assert _files(tmp_path) == []
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("crash")
    assert path.read_text() == "old" and _files(tmp_path) == ["s.csv"]


def test_atomic_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_path_needs_an_existing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_path(tmp_path / "no" / "a.txt"):
            pass
