"""`neuromech population` and `neuromech dics`: a round trip through files."""

import numpy as np
import pandas as pd

from neuromech.cli import main


def test_population_then_dics_round_trip(tmp_path):
    pop = tmp_path / "pop.csv"
    assert main(["population", "--model", "stg", "--gs", "-8", "--gu", "8", "-n", "7", "--seed", "2",
                 "--out", str(pop)]) == 0
    table = pd.read_csv(pop)
    assert len(table) == 7 and {"id", "g_Na", "g_leak", "g_f", "g_s", "g_u"} <= set(table.columns)
    out = tmp_path / "dics.csv"
    assert main(["dics", "--model", "stg", "--conductances", str(pop), "--out", str(out)]) == 0
    d = pd.read_csv(out)
    assert list(d.columns) == ["id", "v_th", "g_f", "g_s", "g_u"]
    np.testing.assert_allclose(d["v_th"], -51.0)
    # Recomputed from the file's conductances: the compensation tolerance is 1e-6, the CSV keeps
    # 17 significant digits, so 1e-3 (the criterion) is met with a wide margin.
    np.testing.assert_allclose(d[["g_s", "g_u"]].to_numpy(), [[-8.0, 8.0]] * 7, atol=1e-3)
    spikes = tmp_path / "spikes.csv"
    assert main(["simulate", "--model", "stg", "--conductances", str(pop), "--duration", "300",
                 "--out", str(spikes), "--no-progress"]) == 0


def test_population_bad_target_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "pop.csv"
    assert main(["population", "--model", "stg", "--gs", "nan", "--gu", "8", "-n", "3", "--out", str(out)]) == 2
    assert "finite" in capsys.readouterr().err
    assert not out.exists()


def test_population_spontaneous(tmp_path):
    """--spontaneous writes models that cannot rest, at the requested DICs."""
    from neuromech.cbm import da, equilibria

    out = tmp_path / "pop.csv"
    assert main(["population", "--model", "da", "--gs", "10.16", "--gu", "6.33", "-n", "8", "--seed", "18",
                 "--spontaneous", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    model = da()
    assert not equilibria(model, table[list(model.conductance_names)].to_numpy()).can_rest.any()
    np.testing.assert_allclose(table[["g_s", "g_u"]].to_numpy(), [[10.16, 6.33]] * 8, atol=1e-3)  # as above
    plain = tmp_path / "plain.csv"
    assert main(["population", "--model", "da", "--gs", "10.16", "--gu", "6.33", "-n", "8", "--seed", "18",
                 "--out", str(plain)]) == 0
    rest = tmp_path / "rest.csv"
    assert main(["dics", "--model", "da", "--conductances", str(plain), "--rest", "--out", str(rest)]) == 0
    d = pd.read_csv(rest)
    eq = equilibria(model, pd.read_csv(plain)[list(model.conductance_names)].to_numpy())
    assert d["can_rest"].tolist() == eq.can_rest.tolist() and d["can_rest"].any()
    # v_rest: the stable equilibrium (one per model here), empty where there is none.
    stable_v = np.where(eq.stable, eq.v, np.nan)[eq.can_rest]
    np.testing.assert_allclose(d["v_rest"][eq.can_rest], np.nanmin(stable_v, axis=1))
    assert ((d["v_rest"][eq.can_rest] > -90) & (d["v_rest"][eq.can_rest] < -40)).all()  # rest, not a plateau
    assert d["v_rest"][~eq.can_rest].isna().all()
