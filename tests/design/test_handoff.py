"""Handoffs (design/handoff.py): a stream locks its model from a confirm run."""

import json

from dropout_decay.cli import main as cli
from tests.conftest import TEST_VOCAB, TRAIN


def test_stream_locks_from_a_confirm_run(cache_dir, tmp_path):
    confirm = tmp_path / "c"
    (confirm).mkdir()
    (confirm / "config.json").write_text(json.dumps({"stage": "confirm"}))
    (confirm / "model_selection.json").write_text(json.dumps([
        {"model": "winner", "model_shape": "1x2x32", "candidate": True, "best_val_loss": 3.0, "best_p": 0.1,
         "plateau": [0.1], "verdict": "interior"}]))
    out = tmp_path / "t"
    assert cli.main(["stream", "--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir),
                     "--vocab-size", str(TEST_VOCAB), "--models", "2x2x32", "--lock-from", str(confirm),
                     "--seeds", "1", "--dropout-rates", "0", "--decays", "d:0.2:0.1:step",
                     "--stream-token-caps", "2000", "4000", "--stage-steps", "3", "--output-dir", str(out), *TRAIN]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["lock"]["source"] == "confirm run" and config["lock"]["model"] == "winner=1x2x32"
    assert config["models"][0]["shape"] == "1x2x32"
