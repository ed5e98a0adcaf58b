"""An answer that is evidence: the held-out test split, order seeds, fixed-pool controls,
matched statics and declared claims, each checked on a real (tiny) stream or cache, and the
stream's interaction and claims recomputed with pandas and scipy from metrics.jsonl alone."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from tokenizers import Tokenizer

import dropout_decay.data.build as build_mod
from conftest import TEST_VOCAB, TRAIN, load
from dropout_decay.cli import main as cli
from dropout_decay.common.errors import UsageError
from dropout_decay.data.batches import fixed_batches
from dropout_decay.data.build import build_cache
from dropout_decay.data.cache import load_cache
from dropout_decay.data.corpus import load_corpus
from dropout_decay.data.layout import Layout
from dropout_decay.model.schedules import parse_decay
from test_data import VOCAB, documents_of, index_of, numbered_corpus

CAPS = [3000, 6000, 12000]


def test_a_test_document_never_reaches_training_validation_batches_or_the_tokenizer(tmp_path, monkeypatch):
    sampled = []
    original = build_mod.train_tokenizer

    def recording(texts, *args, **kwargs):  # the tokenizer's training sample, as the build hands it over
        sampled.extend(texts)
        return original(sampled, *args, **kwargs)

    monkeypatch.setattr(build_mod, "train_tokenizer", recording)
    cache = build_cache(tmp_path / "c", VOCAB, load_corpus(str(numbered_corpus(tmp_path / "corpus"))), Layout("shuffled", 0))
    test = {index_of(d) for d in documents_of(cache, "test")}
    assert len(test) == 6 and cache.manifest["test_documents"] == 6
    assert test.isdisjoint(index_of(d) for d in sampled) and len(sampled) == cache.manifest["train_documents"]
    assert test.isdisjoint(index_of(d) for d in documents_of(cache, "train"))
    assert test.isdisjoint(index_of(d) for d in documents_of(cache, "val"))
    tok = Tokenizer.from_file(str(cache.paths.tokenizer))
    for order_seed in (0, 1, 7):  # no order seed brings one into a training pool
        pool = cache.train_pool(None, order_seed)
        starts = np.flatnonzero(pool == cache.manifest["bos_id"])
        docs = {index_of(tok.decode(list(map(int, pool[a + 1:b])))) for a, b in zip(starts, [*starts[1:], pool.size])}
        assert docs.isdisjoint(test) and len(docs) == cache.manifest["train_documents"]
    # every validation batch window lies inside the validation slice, which holds no test token
    val_start = cache.n_train
    windows = np.concatenate([b.numpy().ravel() for b in fixed_batches(cache.val, 4, 2, 16)])
    assert set(windows) <= set(np.asarray(cache.tokens[val_start:val_start + cache.n_val]))
    assert cache.test.size == cache.manifest["test_tokens"] > 0


def test_an_order_seed_changes_which_documents_fill_the_first_cap_and_nothing_else(tmp_path):
    cache = build_cache(tmp_path / "c", VOCAB, load_corpus(str(numbered_corpus(tmp_path / "corpus"))), Layout("shuffled", 0))
    tok = Tokenizer.from_file(str(cache.paths.tokenizer))

    def docs(pool):
        starts = np.flatnonzero(pool == cache.manifest["bos_id"])
        texts = [tok.decode(list(map(int, pool[a + 1:b]))) for a, b in zip(starts, [*starts[1:], pool.size])]
        return [index_of(t) for t in texts if t.startswith("document ") and " begins" in t[:20]]  # a cut last one aside

    cap = cache.n_train // 4
    own, other = cache.train_pool(cap, 0), cache.train_pool(cap, 1)
    assert isinstance(own, np.memmap) and own.size == other.size == cap  # the cache's own order is a view
    assert set(docs(own)) != set(docs(other))
    assert sorted(docs(cache.train_pool(None, 1))) == sorted(docs(cache.train_pool(None, 0)))  # the same documents
    assert np.array_equal(cache.train_pool(2 * cap, 1)[:cap], other)  # nested within an order seed
    # the seed's own shuffle, restricted to the training documents: recomputed from the layout alone
    seq = np.random.default_rng(1).permutation(60)
    train_ids = set(Layout("shuffled", 0).split(60)[0])
    assert docs(cache.train_pool(None, 1)) == [int(d) for d in seq if d in train_ids]  # file i is document i


def stream_file(tmp_path, cache_dir, claims=True) -> str:
    lines = ['stage = "stream"', 'device = "cpu"', "use_cached_data = true", f'cache_dir = "{cache_dir}"',
             f"vocab_size = {TEST_VOCAB}", 'models = ["winner=1x2x32"]', "seeds = [1, 2]", "order_seeds = [0, 1]",
             "dropout_rates = [0.0, 0.1]", 'decays = ["cos:0.3:0.1:cosine", "early:0.1:0:linear:0.25"]',
             f"stream_token_caps = {CAPS}", "stage_steps = 10", "fixed_pool_controls = true", "matched_statics = true",
             "batch_size = 4", "seq_len = 32", "eval_batches = 2", "eval_every = 5", "log_every = 5"]
    if claims:
        lines += ["[claims]", 'primary = ["cos beats every static at last", "cos helps more as data grows at last", '
                  '"early beats static:0 at 6000"]']
    path = tmp_path / "evidence.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def evidence_stream(cache_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evidence")
    out = tmp / "run"
    assert cli.main(["run", stream_file(tmp, cache_dir), "--output-dir", str(out)]) == 0
    return out


def metrics(out) -> pd.DataFrame:
    return pd.DataFrame([json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()])


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


def test_order_seeds_are_replicates_whose_losses_differ(evidence_stream):
    m = metrics(evidence_stream)
    assert set(m["order_seed"]) == {0, 1} and m["test_loss"].notna().all() and m["val_loss"].notna().all()
    a = m[(m["arm"] == "static:0") & (m["segment"] == 0)].set_index(["seed", "order_seed"])["train_loss"]
    assert a[(1, 0)] != a[(1, 1)] and a[(2, 0)] != a[(2, 1)]


def scipy_pairs(m: pd.DataFrame) -> dict:
    """Per segment and decay: (best static on validation, test-loss diffs per replicate), growing stream."""
    out = {}
    growing = m[~m["arm"].str.endswith("@fixed")]
    for seg, at in growing.groupby("segment"):
        val = at.pivot_table(index=["seed", "order_seed"], columns="arm", values="val_loss")
        test = at.pivot_table(index=["seed", "order_seed"], columns="arm", values="test_loss")
        statics = [a for a in val.columns if a.startswith("static:")]
        best = min(statics, key=lambda a: (val[a].mean(), a))
        out[seg] = (best, statics, test)
    return out


def test_interaction_and_claims_recomputed_with_scipy_from_metrics_alone(evidence_stream):
    m = metrics(evidence_stream)
    pairs = scipy_pairs(m)
    fixed = m[m["arm"].str.endswith("@fixed")]
    interaction = json.loads((evidence_stream / "interaction.json").read_text())
    assert {(r["decay_arm"], r["segment"]) for r in interaction} == {(d, s) for d in ("cos", "early") for s in range(3)}
    for decay in ("cos", "early"):
        ps, rows = [], sorted((r for r in interaction if r["decay_arm"] == decay), key=lambda r: r["segment"])
        for r in rows:
            best, _, test = pairs[r["segment"]]
            ftest = fixed[fixed["segment"] == r["segment"]].pivot_table(index=["seed", "order_seed"], columns="arm",
                                                                          values="test_loss")
            did = (test[decay] - test[best]) - (ftest[decay + "@fixed"] - ftest[best + "@fixed"])
            assert r["best_static"] == best and r["n"] == 4 and r["metric"] == "test_loss"
            assert r["mean_diff"] == pytest.approx(did.mean(), abs=1e-12)
            low, high = stats.t.interval(0.95, 3, loc=did.mean(), scale=stats.sem(did))
            assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high))
            ps.append(stats.ttest_1samp(did, 0.0, alternative="less").pvalue)
            assert r["p_better"] == pytest.approx(ps[-1])
        adjusted = [min(1.0, max((3 - i) * sorted(ps)[i] for i in range(k + 1))) for k in range(3)]
        order = np.argsort(ps, kind="stable")
        assert [rows[j]["p_holm"] for j in order] == pytest.approx(adjusted)
    claims = json.loads((evidence_stream / "claims.json").read_text())
    for decay in ("cos", "early"):
        rows = sorted((c for c in claims if c["decay_arm"] == decay), key=lambda c: c["segment"])
        p_iut = []
        for c in rows:
            _, statics, test = pairs[c["segment"]]
            p = {s: stats.ttest_1samp(test[decay] - test[s], 0.0, alternative="less").pvalue for s in statics}
            deciding = max(p, key=p.get)
            p_iut.append(p[deciding])
            assert c["p_iut"] == pytest.approx(p[deciding]) and c["deciding_static"] == deciding and c["n"] == 4
            sd = (test[decay] - test[deciding]).std(ddof=1)
            crit = stats.t.ppf(1 - 0.05 / 3, 3)
            grid = np.linspace(0, 20 * sd, 200_001)  # a brute-force search, not the code's root finder
            power = stats.nct.sf(crit, 3, grid * 2 / sd)
            assert c["mde_80"] == pytest.approx(grid[np.argmax(power >= 0.8)], abs=1e-4 * sd)
        order = np.argsort(p_iut, kind="stable")
        holm = [min(1.0, max((3 - i) * np.sort(p_iut)[i] for i in range(k + 1))) for k in range(3)]
        assert [rows[j]["p_iut_holm"] for j in order] == pytest.approx(holm)


def test_declared_claims_are_stored_before_training_and_judged_as_one_family(evidence_stream):
    primary = json.loads((evidence_stream / "primary.json").read_text())
    assert [r["claim"] for r in primary] == ["cos beats every static at last", "cos helps more as data grows at last",
                                             "early beats static:0 at 6000"]
    claims = {c["decay_arm"]: c for c in json.loads((evidence_stream / "claims.json").read_text()) if c["segment"] == 2}
    interaction = {r["decay_arm"]: r for r in json.loads((evidence_stream / "interaction.json").read_text()) if r["segment"] == 2}
    pairs = scipy_pairs(metrics(evidence_stream))
    test = pairs[1][2]
    p = [claims["cos"]["p_iut"], interaction["cos"]["p_better"],
         stats.ttest_1samp(test["early"] - test["static:0"], 0.0, alternative="less").pvalue]
    assert [r["p"] for r in primary] == pytest.approx(p)
    order = np.argsort(p, kind="stable")
    holm = [min(1.0, max((3 - i) * np.sort(p)[i] for i in range(k + 1))) for k in range(3)]
    assert [primary[j]["p_holm"] for j in order] == pytest.approx(holm)
    assert all(r["holds"] == (r["p_holm"] < 0.05) and r["declared"] == "primary" for r in primary)
    assert primary[2]["cap"] == 6000 and all(math.isfinite(r["mde_80"]) for r in primary)
    config = load(evidence_stream).user_attrs["config"]  # stored as the study was created, before any trial
    assert config["settings"]["claims"]["primary"] == [r["claim"] for r in primary]
    from dataclasses import replace

    from dropout_decay.design.settings import Settings
    stored = Settings.from_dict(config["settings"])
    other = replace(stored, claims={"primary": ["early beats every static at last"]})
    data = {"any": "data"}
    assert stored.fingerprint(data) != other.fingerprint(data)  # other claims are another experiment, never this one
    report = (evidence_stream / "report.html").read_text()
    assert report.index("Primary claims, declared before the run") < report.index("Exploratory")


@pytest.mark.parametrize("claim, message", [
    ("cos beats everything", "is not one of"),
    ("nope beats every static at last", "the stream has no arm 'nope'"),
    ("cos beats every static at 5000", "5,000 is not one of the stream's caps"),
])
def test_a_bad_claim_is_refused_before_anything_trains(cache_dir, tmp_path, capsys, claim, message):
    text = open(stream_file(tmp_path, cache_dir, claims=False)).read() + f'[claims]\nprimary = ["{claim}"]\n'
    (tmp_path / "bad.toml").write_text(text)
    assert cli.main(["run", str(tmp_path / "bad.toml"), "--output-dir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run" / "study.db").exists()


def test_stream_only_settings_are_refused_elsewhere_and_as_is_order_has_no_order_seeds(cache_dir, tmp_path, capsys):
    base = ["screen", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir), "--vocab-size", str(TEST_VOCAB),
            "--models", "1x2x32", "--dropout-rates", "0", "0.1", "0.3", "--output-dir", str(tmp_path / "r"), *TRAIN]
    assert cli.main([*base, "--fixed-pool-controls"]) == 2
    assert "--fixed-pool-controls does not apply to a screen (it is a flag of stream)" in capsys.readouterr().err
    assert cli.main([*base, "--order-seeds", "0", "1", "--document-order", "as-is"]) == 2
    assert "a corpus kept --document-order as-is has no other order" in capsys.readouterr().err
    with pytest.raises(UsageError, match="UNTIL must be a fraction of the run in"):
        parse_decay("e:0.1:0:linear:1.5")


def test_a_fixed_twin_of_a_calibrated_decay_keeps_the_growing_streams_per_cap_rates(cache_dir):
    """The law is evaluated at the growing caps (`schedule_caps`), not at the fixed pool's."""
    from dropout_decay.model.gpt import parse_model_spec
    from dropout_decay.model.law import predict
    from dropout_decay.training.trainer import Hooks, PointRun, Segment, TrainConfig, train

    law = {"form": "log-linear", "params": {"a": 0.1, "b": 0.02}, "p_range": [0.0, 0.3]}
    spec, cache = parse_model_spec("1x2x32"), load_cache(cache_dir, TEST_VOCAB)
    cfg = TrainConfig(batch_size=2, seq_len=16, eval_batches=1, eval_every=0, log_every=5)
    fixed = [Segment(CAPS[-1], 5) for _ in CAPS]
    rows = train(PointRun(spec, parse_decay("cal:calibrated:x", {"cal": law}), fixed, cfg, 1, schedule_caps=CAPS), cache)
    n = spec.n_params(TEST_VOCAB)
    assert [r["dropout_in_force"] for r in rows] == pytest.approx([predict(law, c / n) for c in CAPS])
    assert [r["cap"] for r in rows] == [CAPS[-1]] * 3


def test_fixed_pool_controls_can_twin_only_the_arms_named(cache_dir, tmp_path, capsys):
    from dropout_decay.design.settings import Settings, check

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


def test_a_workflow_index_shows_the_declared_claims_before_the_exploratory_ones(evidence_stream, tmp_path):
    from dropout_decay.report.index import write_index

    stream = {"study": "s", "grid_size": 48, "complete": 48, "report": "stream/report.html",
              "claims": json.loads((evidence_stream / "claims.json").read_text()),
              "primary": json.loads((evidence_stream / "primary.json").read_text())}
    record = {"workflow": "w", "status": "done", "config_file": "w.toml", "decisions": [], "stages": {"stream": stream}}
    write_index(tmp_path, record, {})
    page = (tmp_path / "index.html").read_text()
    assert page.index("Primary claims, declared before the run") < page.index("Does a decay beat every static rate?")
    assert "On test loss; Holm across the declared claims" in page and "Δ = test(decay) − test(static), paired by replicate" in page
    assert "cos helps more as data grows at last" in page
