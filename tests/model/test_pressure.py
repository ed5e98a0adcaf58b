"""The pressure and path arms (model/schedules.py with model/pressure.py) against the formula
worked by hand, and every bad law file refused in one line."""

import json
import math

import pytest

from dropout_decay.common.errors import UsageError
from dropout_decay.model import Arm, ArmKind, pressure_coordinates, read_pressure_law
from dropout_decay.model.schedules import parse_decay

LAW = {"A": 0.1, "B": 0.2, "D": 0.05, "C0": 0.05, "p_min": 0.02, "p_max": 0.3, "regime": {"vocab_size": 512}}


@pytest.fixture
def law_file(tmp_path):
    path = tmp_path / "pressure_law.json"
    path.write_text(json.dumps(LAW))
    return path


def test_the_pressure_rate_at_a_step_is_the_formula_at_the_caps_u_and_the_tokens_seen(law_file):
    arm = parse_decay(f"pr:pressure:{law_file}").for_stream([1000, 4000], 50_000, 100, [20, 20])
    # step 25 of 40 is in segment 1 (cap 4,000): C = 26 steps x 100 tokens seen by its end
    x, y = math.log10(50_000 / 4000), math.log10(2600 / 4000)
    by_hand = 0.1 * x + 0.2 * y + 0.05 * x * y + 0.05
    assert 0.02 < by_hand < 0.3
    assert arm.rate(25 / 39, 1) == pytest.approx(by_hand, abs=1e-12)
    # step 0 (cap 1,000): C = 100 tokens, y = -1, below p_min: clamped
    first = 0.1 * math.log10(50) + 0.2 * math.log10(0.1) + 0.05 * math.log10(50) * math.log10(0.1) + 0.05
    assert arm.rate(0.0, 0) == pytest.approx(min(max(first, 0.02), 0.3))  # step 0: C = 100 tokens
    rates = list(arm.rates_at([20, 20]))
    assert rates[0] == 0.02 and rates[19] == 0.3 and rates[20] < rates[19]  # grows within a cap (clamped), falls when the cap grows
    assert all(0.02 <= r <= 0.3 for r in rates)
    assert Arm(arm).kind is ArmKind.PRESSURE and arm.law["source"] == str(law_file)


def test_the_coordinates_are_log10_of_parameters_and_tokens_seen_per_unique_token():
    c = pressure_coordinates(50_000, 4000, 2600)
    assert c["x"] == pytest.approx(math.log10(12.5)) and c["y"] == pytest.approx(math.log10(0.65))
    assert c["tokens_per_parameter"] == 0.08 and c["passes"] == 0.65


def test_a_path_holds_one_rate_per_cap_and_refuses_another_count():
    path = parse_decay("seed:path:0.18,0.14,0.08,0.04").for_stream([1, 2, 3, 4], 10)
    assert [path.rate(0.5, k) for k in range(4)] == [0.18, 0.14, 0.08, 0.04]
    assert Arm(path).kind is ArmKind.PATH and Arm(path).twin().name == "seed@fixed"
    with pytest.raises(UsageError, match="gives 4 rates for a stream of 3 caps"):
        parse_decay("seed:path:0.18,0.14,0.08,0.04").for_stream([1, 2, 3], 10)
    with pytest.raises(UsageError, match="one rate in"):
        parse_decay("seed:path:0.18,high")
    with pytest.raises(UsageError, match="outside"):
        parse_decay("seed:path:0.18,1.5")


@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    ("{not json", "not a readable JSON law file"),
    (json.dumps({"A": 0.1}), "lacks B, D, C0, p_min, p_max, regime"),
    (json.dumps(LAW | {"B": "high"}), "must be finite numbers"),
    (json.dumps(LAW | {"p_min": 0.5}), "0 <= p_min <= p_max < 1"),
    (json.dumps([1, 2]), "lacks A"),
])
def test_a_missing_or_corrupt_law_file_is_one_line(tmp_path, content, words):
    path = tmp_path / "law.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=words) as e:
        read_pressure_law(str(path))
    assert "\n" not in str(e.value)
