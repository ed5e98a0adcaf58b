"""A workflow's index.html (report/index.py) shows the declared claims before the exploratory ones."""

import json

import pytest

from dropout_decay.cli import main as cli
from tests.conftest import TEST_VOCAB

CAPS = [3000, 6000, 12000]


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
