"""scripts/power.py: a pilot stream's spread turned into replicates, checked against plain pandas
and a brute-force power search with scipy's noncentral t."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]


def pilot(folder: Path) -> pd.DataFrame:
    """Static 0.1 is best at both caps; its neighbours differ from it by replicate-specific amounts."""
    rng = np.random.default_rng(3)
    rows = []
    for seed in (1, 2, 3, 4):
        for arm, base in (("static:0", 4.10), ("static:0.1", 4.00), ("static:0.2", 4.05)):
            for segment, cap in enumerate((1000, 4000)):
                loss = base - segment + rng.normal(0, 0.02)
                rows.append({"arm": arm, "seed": seed, "order_seed": 0, "segment": segment, "cap": cap,
                             "val_loss": loss, "test_loss": loss + 0.01})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return pd.DataFrame(rows)


def needed(effect: float, sd: float, alpha: float) -> int:
    for n in range(2, 101):
        crit = stats.t.ppf(1 - alpha, n - 1)
        if stats.nct.sf(crit, n - 1, effect * np.sqrt(n) / sd) >= 0.8:
            return n
    return 101


def test_the_replicates_each_claim_needs_follow_from_the_pilots_paired_spread(tmp_path):
    m = pilot(tmp_path)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "power.py"), str(tmp_path), "--effect", "0.02"],
                         capture_output=True, text=True, check=True).stdout
    last = m[m["cap"] == 4000].pivot_table(index="seed", columns="arm", values="val_loss")
    sd = max((last["static:0.1"] - last[a]).std(ddof=1) for a in ("static:0", "static:0.2"))
    block = out[out.index("cap 4,000"):out.index("cap trajectory")]
    assert "best static static:0.1" in block
    line = next(ln for ln in block.splitlines() if ln.strip().startswith("decay vs static "))
    assert float(re.search(r"sd (\d\.\d+)", line).group(1)) == round(sd, 4)
    assert int(re.search(r"n for 0\.02: (\d+)", line).group(1)) == needed(0.02, sd, 0.05 / 3)
    inter = next(ln for ln in block.splitlines() if ln.strip().startswith("interaction "))
    assert int(re.search(r"n for 0\.02: (\d+)", inter).group(1)) == needed(0.02, sd * np.sqrt(2), 0.05 / 3)
