"""Settings (design/settings.py): a stream's arms and twins, a twin's segments, stage-only
settings refused elsewhere, fingerprints of stored studies kept."""

import json
from dataclasses import replace

import numpy as np
import pytest

from dropout_decay.cli import main as cli
from dropout_decay.common.errors import UsageError
from dropout_decay.design import Settings, check
from dropout_decay.model.schedules import parse_decay
from tests.conftest import CAPS, TEST_VOCAB, TRAIN, metrics


def test_the_stream_grid_holds_every_arm_its_fixed_twin_and_matched_statics(evidence_stream):
    config = json.loads((evidence_stream / "config.json").read_text())
    settings = config["settings"]
    # cosine 0.3 -> 0.1 averages 0.2 over the run; early 0.1 -> 0 by a quarter of it averages about 0.0125
    assert settings["dropout_rates"][:2] == [0.0, 0.1] and len(settings["dropout_rates"]) == 4
    assert settings["dropout_rates"][2:] == pytest.approx([0.0125, 0.2], abs=0.002)
    arms = config["grid"]["arm"]
    assert len(arms) == 12 and all(a + "@fixed" in arms for a in arms if not a.endswith("@fixed"))
    assert config["grid"]["order_seed"] == [0, 1] and config["grid_size"] == 2 * 2 * 12
    assert settings["claims"]["primary"][0] == "cos beats every static at last"


def test_a_fixed_twin_trains_on_the_final_cap_throughout_with_its_twins_schedule(evidence_stream):
    m = metrics(evidence_stream)
    fixed = m[m["arm"].str.endswith("@fixed")]
    assert set(fixed["cap"]) == {CAPS[-1]}
    growing = m[~m["arm"].str.endswith("@fixed")]
    assert sorted(set(growing["cap"])) == CAPS
    twin = fixed.assign(arm=fixed["arm"].str.removesuffix("@fixed")).set_index(["arm", "seed", "order_seed", "segment"])
    same = growing.set_index(["arm", "seed", "order_seed", "segment"]).loc[twin.index]
    assert np.array_equal(twin["dropout_in_force"].to_numpy(), same["dropout_in_force"].to_numpy())
    assert np.array_equal(twin["step"].to_numpy(), same["step"].to_numpy())
    seg0 = m[(m["segment"] == 0) & (m["arm"] == "static:0.1")].set_index(["seed", "order_seed"])["test_loss"]
    seg0_fixed = m[(m["segment"] == 0) & (m["arm"] == "static:0.1@fixed")].set_index(["seed", "order_seed"])["test_loss"]
    assert not np.allclose(seg0.sort_index(), seg0_fixed.sort_index())  # other data, other losses


def test_stream_only_settings_are_refused_elsewhere_and_as_is_order_has_no_order_seeds(cache_dir, tmp_path, capsys):
    base = ["screen", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir), "--vocab-size", str(TEST_VOCAB),
            "--models", "1x2x32", "--dropout-rates", "0", "0.1", "0.3", "--output-dir", str(tmp_path / "r"), *TRAIN]
    assert cli.main([*base, "--fixed-pool-controls"]) == 2
    assert "--fixed-pool-controls does not apply to a screen (it is a flag of stream)" in capsys.readouterr().err
    assert cli.main([*base, "--order-seeds", "0", "1", "--document-order", "as-is"]) == 2
    assert "a corpus kept --document-order as-is has no other order" in capsys.readouterr().err
    with pytest.raises(UsageError, match="UNTIL must be a fraction of the run in"):
        parse_decay("e:0.1:0:linear:1.5")


def test_fixed_pool_controls_can_twin_only_the_arms_named(cache_dir, tmp_path, capsys):
    from dropout_decay.design.settings import Settings

    s = check(Settings(stage="stream", models=["winner=1x2x32"], dropout_rates=[0.0, 0.1], decays=["d:0.3:0.1:cosine"],
                       fixed_pool_controls=["d", "static:0.1"], device="cpu"))
    assert [a.name for a in s.arms()] == ["static:0", "static:0.1", "d", "static:0.1@fixed", "d@fixed"]
    assert check(Settings(stage="stream", models=["winner=1x2x32"], fixed_pool_controls=[])).fixed_pool_controls is True
    assert check(Settings(stage="stream", models=["winner=1x2x32"], fixed_pool_controls=None)).fixed_pool_controls is False
    base = ["stream", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir), "--vocab-size", str(TEST_VOCAB),
            "--models", "winner=1x2x32", "--dropout-rates", "0", "0.1", "--decays", "d:0.3:0.1:cosine",
            "--stream-token-caps", *map(str, CAPS), "--output-dir", str(tmp_path / "r"), "--dry-run", *TRAIN]
    assert cli.main([*base, "--fixed-pool-controls", "d", "static:0.2"]) == 2
    assert "--fixed-pool-controls names static:0.2, not arms of this stream" in capsys.readouterr().err
    assert cli.main([*base, "--fixed-pool-controls", "d", "static:0"]) == 0
    assert "grid 15 points = 1 model x 3 seed x 5 arm" in capsys.readouterr().out


def test_a_study_stored_without_micro_batches_keeps_its_fingerprint():
    stored = Settings.from_dict({"stage": "screen", "models": ["1x2x32"], "train": {"batch_size": 8}}, stored=True)
    old = dict(stored.to_dict())
    old["train"] = {k: v for k, v in old["train"].items() if k != "micro_batch"}
    old.pop("memory_budget")
    assert Settings.from_dict(old, stored=True).fingerprint({}) == stored.fingerprint({})
    assert replace(stored, train=replace(stored.train, micro_batch=4)).fingerprint({}) != stored.fingerprint({})
