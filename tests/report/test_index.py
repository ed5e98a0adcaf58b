"""A workflow's index.html (report/index.py) shows the declared claims before the exploratory ones."""

import json


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
