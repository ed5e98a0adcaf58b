"""The map stage from the command line on the test corpus: its cells recomputed from metrics.jsonl
with plain pandas, a stream whose pressure arm follows the map's law (checked against the
formula by hand), a backtest over the two stored studies, and the bad inputs, each one line."""

import json
import math

import pandas as pd
import pytest

from dropout_decay.cli import main as cli

from ..conftest import TEST_VOCAB

TINY = ["--device", "cpu", "--use-cached-data", "--vocab-size", str(TEST_VOCAB), "--batch-size", "8", "--seq-len", "32",
        "--lr", "0.003", "--min-lr-ratio", "1", "--warmup-steps", "5", "--eval-batches", "2", "--eval-every", "0",
        "--compile", "off"]
MAP = ["map", "--models", "1x4x64", "--seeds", "1", "--dropout-rates", "0", "0.2", "0.6",
       "--token-limits", "1500", "3000", "--passes", "2", "16", *TINY]


@pytest.fixture(scope="module")
def mapped(cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("map") / "run"
    assert cli.main([*MAP, "--cache-dir", str(cache_dir), "--output-dir", str(out)]) == 0
    return out


def clamped_law(law, x, y):
    return min(max(law["A"] * x + law["B"] * y + law["D"] * x * y + law["C0"], law["p_min"]), law["p_max"])


def test_map_csv_is_what_plain_pandas_finds_in_metrics_jsonl(mapped):
    metrics = pd.read_json(mapped / "metrics.jsonl", lines=True)
    config = json.loads((mapped / "config.json").read_text())
    params = config["models"][0]["parameters"]
    means = metrics.groupby(["cap", "segment", "dropout"])["val_loss"].mean().unstack("dropout")
    cells = pd.read_csv(mapped / "map.csv")
    assert len(cells) == 4 and sorted(cells["passes"]) == [2, 2, 16, 16]
    for row in cells.itertuples():
        curve = means.loc[(row.unique_tokens, 0 if row.passes == 2 else 1)]
        assert row.p_star == curve.idxmin()
        assert row.gain == pytest.approx(curve.min() - curve[0.0], abs=1e-9)
        seen = metrics[(metrics["cap"] == row.unique_tokens) & (metrics["segment"] == (0 if row.passes == 2 else 1))]
        assert row.tokens_seen == seen["tokens"].iloc[0] == math.ceil(row.passes * row.unique_tokens / 256) * 256
        assert row.x == pytest.approx(math.log10(params / row.unique_tokens))
        assert row.y == pytest.approx(math.log10(row.tokens_seen / row.unique_tokens))
    assert (cells["p_star"] > 0).any() and (cells["p_star"] == 0).any()  # both sides of the boundary
    # the dashboard note carries both heatmaps as tables, U down and passes across
    import optuna
    from optuna_dashboard import get_note
    storage = optuna.storages.RDBStorage(f"sqlite:///{mapped / 'study.db'}")
    [name] = optuna.study.get_all_study_names(storage)
    note = get_note(optuna.load_study(study_name=name, storage=storage))
    first = cells[cells["unique_tokens"] == 1500].sort_values("passes")
    g = lambda v: "–" if pd.isna(v) else f"{v:g}"  # noqa: E731  (one seed: no interval)
    assert "| 1x4x64: U \\ passes | 2 | 16 |" in note
    assert f"| 1,500 | {g(first.p_star.iloc[0])} [{g(first.p_star_low.iloc[0])}, {g(first.p_star_high.iloc[0])}] |" in note
    assert f"| 1,500 | {first.gain.iloc[0]:+.3f} | {first.gain.iloc[1]:+.3f} |" in note
    page = (mapped / "report.html").read_text()
    assert "best static rate p* per cell" in page and "at p = 0 (nats; below 0: dropout helps" in page
    law = json.loads((mapped / "pressure_law.json").read_text())
    assert law["D"] == 0 and law["regime"]["vocab_size"] == TEST_VOCAB and law["regime"]["lr_schedule"] == "constant after warm-up"
    assert set(law["held_out"]) == {"law", "best_static", "one_variable_law", "method"}
    assert (law["p_min"], law["p_max"]) == (0.0, 0.6)


def test_a_pressure_arm_follows_the_maps_law_by_hand_and_a_backtest_predicts_the_stream(mapped, cache_dir, tmp_path, capsys):
    law_path = mapped / "pressure_law.json"
    law = json.loads(law_path.read_text())
    stream = tmp_path / "stream"
    args = ["stream", *TINY, "--cache-dir", str(cache_dir), "--models", "winner=1x4x64", "--seeds", "1",
            "--dropout-rates", "0", "0.2", "--decays", f"pr:pressure:{law_path}", "seed:path:0.3,0.1",
            "--stream-token-caps", "1500", "3000", "--stage-steps", "20", "--fixed-pool-controls", "pr"]
    assert cli.main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "seed by cap: 1,500: 0.300 | 3,000: 0.100" in out and "pr by cap: 1,500: " in out
    assert "pressure coordinates at the end of each cap" in out and "seed OpenWebText-10K 16x8x384" in out
    assert cli.main([*args, "--output-dir", str(stream)]) == 0
    params = json.loads((stream / "config.json").read_text())["models"][0]["parameters"]
    metrics = pd.read_json(stream / "metrics.jsonl", lines=True)
    growing = {0: 1500, 1: 3000}
    for row in metrics[metrics["arm"].isin(["pr", "pr@fixed"])].itertuples():
        u = growing[row.segment]  # the twin follows the growing stream's caps on the final pool
        assert row.dropout_in_force == pytest.approx(clamped_law(law, math.log10(params / u), math.log10(row.tokens / u)))
    assert sorted(metrics[metrics["arm"] == "seed"]["dropout_in_force"]) == pytest.approx([0.1, 0.3])

    bt = tmp_path / "backtest"
    assert cli.main(["backtest", str(mapped), "--predict", str(stream), "--output-dir", str(bt)]) == 0
    rows = pd.read_csv(bt / "backtest.csv")
    assert list(rows["unique_tokens"]) == [1500, 3000] and rows["other_regime"].isna().all()
    for r in rows.itertuples():
        assert r.predicted_p_star == pytest.approx(clamped_law(json.loads((bt / "pressure_law.json").read_text()), r.x, r.y))
        ends = metrics[(metrics["cap"] == r.unique_tokens) & metrics["arm"].isin(["static:0", "static:0.2"])]
        assert r.observed_p_star == float(ends.loc[ends["val_loss"].idxmin(), "arm"].split(":")[1])
    assert (bt / "backtest.html").is_file()

    other = tmp_path / "other"  # another peak learning rate: another regime
    other_args = [a if a != "0.003" else "0.002" for a in args]
    capsys.readouterr()
    assert cli.main([*other_args, "--output-dir", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pressure arm pr" in err[0] and "another regime" in err[0] and "lr 0.003 vs 0.002" in err[0]
    static_only = [a for a in other_args if a not in (f"pr:pressure:{law_path}", "--fixed-pool-controls", "pr")]
    assert cli.main([*static_only, "--output-dir", str(other)]) == 0
    capsys.readouterr()
    assert cli.main(["backtest", str(mapped), "--predict", str(other), "--output-dir", str(bt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "from another regime" in err[0] and "--allow-other-regime" in err[0]
    assert cli.main(["backtest", str(mapped), "--predict", str(other), "--output-dir", str(bt), "--allow-other-regime"]) == 0
    assert pd.read_csv(bt / "backtest.csv")["other_regime"].str.contains("lr 0.003 vs 0.002").all()


@pytest.mark.parametrize("change, words", [
    (["--token-limits", "1500", "--passes", "4"], "a map of one cell"),
    (["--min-lr-ratio", "0.1"], "pass --min-lr-ratio 1"),
    (["--passes", "16", "2"], "increasing positive numbers"),
    (["--passes", "2", "2.01"], "two counts share a step"),
])
def test_a_map_that_cannot_mean_what_it_says_is_one_line(cache_dir, tmp_path, capsys, change, words):
    args = [*MAP, "--cache-dir", str(cache_dir), "--output-dir", str(tmp_path / "bad"), *change, "--dry-run"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "bad").exists()


def test_a_workflow_of_one_map_runs_and_is_done(cache_dir, tmp_path):
    toml = tmp_path / "one_map.toml"
    toml.write_text(f"""[workflow]
device = "cpu"
vocab_size = {TEST_VOCAB}
cache_dir = "{cache_dir}"
use_cached_data = true
batch_size = 8
seq_len = 32
lr = 0.003
min_lr_ratio = 1.0
warmup_steps = 5
eval_batches = 2
eval_every = 0
compile = "off"
[map]
models = ["1x2x32"]
seeds = [1]
dropout_rates = [0.0, 0.2, 0.4]
token_limits = [1500]
passes = [2, 4]
""")
    out = tmp_path / "wf"
    assert cli.main(["workflow", str(toml), "--output-dir", str(out)]) == 0
    record = json.loads((out / "workflow.json").read_text())
    assert record["status"] == "done" and record["stages"]["map"]["complete"] == 3
    assert (out / "map" / "map.csv").is_file() and "best static rate p* per cell" in (out / "index.html").read_text()
