"""report.html (report/page.py) is self-contained, with a trace for every arm and model."""

from dropout_decay.cli import main as cli
from tests.conftest import ARMS, constructed_stream, tiny


def test_report_is_self_contained_with_a_trace_for_every_arm_and_model(cache_dir, tmp_path):
    folder = constructed_stream(cache_dir, tmp_path / "stream")
    stream = folder.joinpath("report.html").read_text()
    assert '<script src="plotly.min.js">' in stream and "plotly.js" not in stream.lower()  # one copy beside it
    assert (folder / "plotly.min.js").stat().st_size > 3_000_000  # opens offline
    for arm in ARMS:
        assert f'"name":"{arm}"' in stream
    assert "best static rate, paired by replicate" in stream and "decay arms against the best static rate" in stream
    out = tmp_path / "screen"
    assert cli.main(["screen", *tiny(cache_dir, out), "--models", "a=1x2x32", "b=1x4x32"]) == 0
    screen = (out / "report.html").read_text()
    for model in ("a", "b"):
        assert f'"name":"{model} mean"' in screen
    assert screen.count('"name":"optimum"') == 2 and screen.count('"name":"seed 1"') == 2
