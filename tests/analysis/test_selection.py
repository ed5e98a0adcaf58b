"""Model selection (analysis/selection.py): the summary and the selection recomputed with plain
pandas on a real screen, and selection's verdicts, numbers and edge cases on constructed curves."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from dropout_decay.analysis.selection import select_curve
from dropout_decay.cli import main as cli
from tests.conftest import (
    tiny,
)


def curve(means, std, seeds=3):
    """A static curve over rates 0, 0.1, 0.2, 0.3, 0.5: seeds spread by `std` (one value, or one per rate) around each mean."""
    stds = std if isinstance(std, list) else [std] * len(means)
    offsets = [-1.0, 0.0, 1.0][:seeds] if seeds > 1 else [0.0]
    return pd.DataFrame([{"dropout": p, "seed": i, "val_loss": m + o * s}
                         for p, m, s in zip([0.0, 0.1, 0.2, 0.3, 0.5], means, stds) for i, o in enumerate(offsets)])


def test_summary_and_selection_match_plain_pandas_on_a_real_screen(cache_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out, "--seeds", "1", "2", "3")]) == 0
    metrics = pd.read_json(out / "metrics.jsonl", lines=True)
    assert len(metrics) == 9 and not metrics.duplicated(["seed", "dropout"]).any()
    expected = metrics.groupby("dropout")["val_loss"].agg(["mean", "std", "count"])
    summary = pd.read_csv(out / "summary.csv").set_index("dropout")
    assert np.allclose(summary["val_loss_mean"], expected["mean"]) and np.allclose(summary["val_loss_std"], expected["std"])
    assert list(summary["n"]) == list(expected["count"])
    gaps = metrics.groupby("dropout")["gap"].mean()
    assert np.allclose(summary["gap_mean"], gaps)
    assert np.allclose(metrics["gap"], metrics["val_loss"] - metrics["train_loss"], atol=1e-9)
    [sel] = json.loads((out / "model_selection.json").read_text())
    means = expected["mean"]
    assert sel["best_p"] == means.idxmin() and sel["best_val_loss"] == pytest.approx(means.min())
    assert sel["plateau"] == [p for p, m in means.items() if m <= means.min() + 0.01]
    assert sel["seed_std"] == pytest.approx(math.sqrt((expected["std"] ** 2).mean()))
    dip = min(means.iloc[0], means.iloc[-1]) - means.min()
    assert sel["dip_depth"] == pytest.approx(dip)
    assert set(summary["device"]) == {"cpu"} and not summary["mps_compliant"].any()  # off-MPS, and says so
    assert set(metrics["stage"]) == {"screen"}
    assert "quadratic_fit" not in pd.read_csv(out / "model_selection.csv").columns  # flattened into quad_*


@pytest.mark.parametrize("seeds", [1, 3])
def test_selection_edges_and_boundaries(seeds):
    top = select_curve(curve([4.2, 4.1, 4.0, 3.9, 3.8], 0.01, seeds), delta=0.01)
    assert (top["interior"], top["candidate"], top["best_p"]) == (False, False, 0.5)
    assert top["verdict"].startswith("optimum at the largest rate swept")
    assert top["quadratic_fit"]["points"] == [0.2, 0.3, 0.5]  # at the top edge: the three highest rates
    zero = select_curve(curve([3.8, 3.9, 4.0, 4.1, 4.2], 0.01, seeds), delta=0.01)
    assert (zero["interior"], zero["nonzero"], zero["candidate"]) == (False, False, False)
    exact = [4.0, 3.75, 3.5, 3.75, 4.5]  # binary-exact, so the boundary is exactly on delta
    edge = select_curve(curve(exact, 0.125, seeds), delta=0.25)
    assert edge["plateau"] == [0.1, 0.2, 0.3]  # 3.75 is exactly 0.25 above 3.5: inclusive
    tight = select_curve(curve(exact, 0.125, seeds), delta=0.0)
    assert tight["plateau"] == [0.2] and tight["plateau_low"] == tight["plateau_high"] == 0.2
    assert edge["candidate"] and edge["interior"] and edge["nonzero"]
    assert edge["deeper_than_noise"] is (None if seeds == 1 else True)
    assert edge["verdict"] == ("interior nonzero optimum at p=0.2 (dip 0.5000; seed noise unknown with 1 seed)"
                               if seeds == 1 else "interior nonzero optimum at p=0.2 (dip 0.5000 = 4.0 seed std)")
    assert edge["std_val_loss"] == ([None] * 5 if seeds == 1 else pytest.approx([0.125] * 5))  # JSON-safe, no NaN
    second = select_curve(curve([4.2, 4.1, 4.0, 3.9, 4.3], 0.01, seeds), delta=0.01)
    assert (second["best_p"], second["interior"]) == (0.3, True)  # one below the top is still inside
    fit = edge["quadratic_fit"]  # through (0.1, 3.75), (0.2, 3.5), (0.3, 3.75): 25 (p - 0.2)^2 + 3.5
    assert (fit["a"], fit["b"], fit["c"], fit["vertex_p"]) == pytest.approx((25.0, -10.0, 4.5, 0.2))
    assert fit["points"] == [0.1, 0.2, 0.3]
    assert edge["dip_over_std"] == (None if seeds == 1 else pytest.approx(4.0))
    mirror = select_curve(curve(exact[::-1], 0.125, seeds), delta=0.25)  # now the high end is the shallow side
    assert (mirror["rise_to_lowest_rate"], mirror["rise_to_highest_rate"], mirror["dip_depth"]) == (1.0, 0.5, 0.5)
    shallow = select_curve(curve([4.0, 3.755, 3.75, 3.755, 4.5], 0.01, seeds), delta=0.01)["quadratic_fit"]
    assert (shallow["a"], shallow["vertex_p"]) == pytest.approx((0.5, 0.2))  # a curvature below 1 still has a vertex
    two = select_curve(curve([4.0, 3.9], 0.01, seeds).query("dropout < 0.15"), delta=0.01)
    assert two["quadratic_fit"] == {"a": None, "b": None, "c": None, "vertex_p": None, "points": [0.0, 0.1]}


def test_a_dip_exactly_one_seed_std_deep_is_not_deeper_than_noise():
    level = select_curve(curve([4.0, 3.75, 3.5, 3.75, 4.5], 0.5, 3), delta=0.01)  # binary-exact: dip = std = 0.5
    assert (level["dip_depth"], level["seed_std"]) == (0.5, 0.5)
    assert level["deeper_than_noise"] is False and not level["candidate"]


def test_noise_decides_a_shallow_dip_with_three_seeds():
    shallow = select_curve(curve([4.000, 3.995, 3.990, 3.995, 4.000], 0.02, 3), delta=0.01)
    assert shallow["deeper_than_noise"] is False and not shallow["candidate"]
    assert "within seed noise" in shallow["verdict"]


@pytest.mark.parametrize(
    "means, verdict, candidate",
    [
        ([4.0, 3.9, 3.8, 3.9, 4.1], "interior nonzero optimum at p=0.2", True),
        ([3.8, 3.9, 4.0, 4.1, 4.2], "optimum at p=0", False),
        ([4.2, 4.1, 4.0, 3.9, 3.8], "optimum at the largest rate", False),
        ([4.000, 3.995, 3.990, 3.995, 4.000], "within seed noise", False),
    ],
)
def test_model_selection_verdicts(means, verdict, candidate):
    sel = select_curve(curve(means, [0.02] * 5), delta=0.01)
    assert sel["verdict"].startswith(verdict) or verdict in sel["verdict"]
    assert sel["candidate"] is candidate
    assert sel["best_val_loss"] == pytest.approx(min(means))
    assert sel["seed_std"] == pytest.approx(0.02)


def test_model_selection_numbers_on_an_interior_curve():
    sel = select_curve(curve([4.0, 3.9, 3.8, 3.805, 4.1], [0.01] * 5), delta=0.01)
    assert sel["best_p"] == 0.2 and sel["interior"] and sel["nonzero"]
    assert sel["plateau"] == [0.2, 0.3] and (sel["plateau_low"], sel["plateau_high"]) == (0.2, 0.3)
    assert sel["dip_depth"] == pytest.approx(0.2) and sel["dip_over_std"] == pytest.approx(20.0)
    q = sel["quadratic_fit"]
    assert q["points"] == [0.1, 0.2, 0.3] and q["a"] > 0 and 0.2 < q["vertex_p"] < 0.3
    one_seed = select_curve(curve([4.0, 3.9, 3.8, 3.9, 4.1], [0.0] * 5, seeds=1), delta=0.01)
    assert one_seed["seed_std"] is None and one_seed["deeper_than_noise"] is None and one_seed["candidate"]
