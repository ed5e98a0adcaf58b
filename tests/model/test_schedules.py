"""Dropout schedules (model/schedules.py) against their closed forms, at interior points where the
shapes differ."""

import math

import pytest

from dropout_decay.common.errors import UsageError
from dropout_decay.model.law import formula, predict
from dropout_decay.model.schedules import parse_decay, parse_decays, static

A, B = 0.30, 0.14


@pytest.mark.parametrize("t", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
def test_every_shape_matches_its_closed_form(t):
    rates = {shape: parse_decay(f"d:{A}:{B}:{shape}").rate(t) for shape in ("cosine", "linear", "exponential")}
    assert rates["linear"] == pytest.approx(A + (B - A) * t)
    assert rates["cosine"] == pytest.approx(B + (A - B) * (1 + math.cos(math.pi * t)) / 2)
    assert rates["exponential"] == pytest.approx(A * (B / A) ** t)


def test_shapes_differ_where_they_should():
    cos, lin = parse_decay(f"d:{A}:{B}:cosine"), parse_decay(f"d:{A}:{B}:linear")
    assert cos.rate(0.25) > lin.rate(0.25) and cos.rate(0.75) < lin.rate(0.75)  # slow start, fast middle
    assert parse_decay(f"d:{A}:{B}:exponential").rate(0.5) == pytest.approx(math.sqrt(A * B))
    assert cos.rate(-0.5) == A and cos.rate(1.5) == pytest.approx(B)  # progress is clamped


def test_step_holds_one_rate_per_segment():
    s = parse_decay("d:0.30:0.12:step").for_stream([1, 2, 3, 4], n_params=1)
    assert [s.rate(t, k) for t, k in ((0.0, 0), (0.2, 0), (0.3, 1), (0.6, 2), (0.99, 3), (1.0, 3))] == pytest.approx(
        [0.30, 0.30, 0.24, 0.18, 0.12, 0.12])
    assert parse_decay("d:0.30:0.12:step").rate(0.5) == pytest.approx(0.30)  # a single segment holds START


def test_a_calibrated_schedule_follows_the_law_at_each_cap_clipped_to_the_probed_rates():
    law = {"form": "log-linear", "params": {"a": 0.1, "b": 0.05}, "p_range": [0.0, 0.3]}
    s = parse_decay("cal:calibrated:unused.json", {"cal": law}).for_stream([1000, 10_000, 100_000, 1_000_000], n_params=1000)
    expected = [min(max(0.1 - 0.05 * math.log(c / 1000), 0.0), 0.3) for c in (1000, 10_000, 100_000, 1_000_000)]
    assert [s.rate(0.0, k) for k in range(4)] == pytest.approx(expected)
    assert expected[-1] == 0.0 and s.start == pytest.approx(0.1) and s.end == 0.0  # falls to zero, never below
    both = parse_decays(["cal:calibrated:unused.json", "hand:0.3:0.1:linear"], {"cal": law})  # a config's stored law
    assert [d.law for d in both] == [law, None]
    clipped = parse_decay("c:calibrated:x", {"c": law | {"p_range": [0.05, 0.08]}}).for_stream([1000, 1_000_000], 1000)
    assert [clipped.rate(0, 0), clipped.rate(1, 1)] == pytest.approx([0.08, 0.05])
    steeper = parse_decay("c:calibrated:x", {"c": law | {"params": {"a": 0.3, "b": 0.05}}})
    three = steeper.for_stream([1000, 10_000, 1_000_000], 1000)
    assert (three.start, three.end) == pytest.approx((0.3, 0.0)) and three.rates[1] == pytest.approx(0.3 - 0.05 * math.log(10))
    power = {"form": "power", "params": {"a": 0.2, "b": 0.5}}
    assert predict(power, 4.0) == pytest.approx(0.1) and formula(power) == "p*(D) = 0.2·D^(−0.5)"


def test_static_schedule():
    s = static(0.14)
    assert s.is_static and s.name == "static:0.14" and s.rate(0.0) == s.rate(1.0) == 0.14


@pytest.mark.parametrize(
    "spec, message",
    [("d:0.3:1.0:cosine", "outside"), ("d:-0.1:0.1:linear", "outside"), ("d:0.3:0.1:sigmoid", "unknown shape"),
     ("d:0.3:0.1", "NAME:START:END:SHAPE"), ("d:x:0.1:linear", "numbers"), ("d:0.3:0:exponential", "above 0"),
     ("static_x:0.3:0.1:linear", "name"), ("9d:0.3:0.1:linear", "name")],
)
def test_bad_decays(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_decay(spec)


def test_duplicate_decay_names_and_bad_static():
    with pytest.raises(UsageError) as e:
        parse_decays(["b:0.3:0.1:linear", "a:0.3:0.1:linear", "a:0.2:0.1:cosine", "b:0.2:0.1:cosine"])
    assert str(e.value) == "duplicate decay name(s): a, b"
    with pytest.raises(UsageError) as e:
        parse_decay("d:0.3:0.1")
    assert str(e.value) == ("bad decay 'd:0.3:0.1': expected NAME:START:END:SHAPE[:UNTIL], e.g. "
                            "decay_030_to_014:0.30:0.14:cosine or early:0.1:0:linear:0.17, or NAME:calibrated:PROBE_JSON, "
                            "NAME:path:R1,R2,... or NAME:pressure:LAW_JSON")
    with pytest.raises(UsageError, match="outside"):
        static(1.0)


def test_a_calibrated_decay_reads_its_law_from_probe_json_or_says_why_not(tmp_path):
    import json

    law = {"form": "power", "a": 0.06, "b": 0.15, "p_range": [0.05, 0.1]}
    good, lawless, broken = tmp_path / "good.json", tmp_path / "lawless.json", tmp_path / "broken.json"
    good.write_text(json.dumps({"law": law}))
    lawless.write_text(json.dumps({"law": {"form": None, "reason": "no cap has an interior optimum"}}))
    broken.write_text("{not json")
    s = parse_decay(f"cal:calibrated:{good}")
    assert (s.name, s.shape, s.start, s.end) == ("cal", "calibrated", 0.1, 0.05)
    assert s.law == law | {"source": str(good)}  # the law travels with the schedule, and where it came from
    with pytest.raises(UsageError) as e:
        parse_decay(f"cal:calibrated:{lawless}")
    assert str(e.value) == f"decay 'cal:calibrated:{lawless}': {lawless} has no law to follow (no cap has an interior optimum)"
    with pytest.raises(UsageError) as e:
        parse_decay(f"cal:calibrated:{tmp_path / 'none.json'}")
    assert str(e.value) == (f"decay 'cal:calibrated:{tmp_path / 'none.json'}': cannot read probe results "
                            f"{tmp_path / 'none.json'} (FileNotFoundError)")
    with pytest.raises(UsageError, match=r"cannot read probe results .*broken.json \(JSONDecodeError\)"):
        parse_decay(f"cal:calibrated:{broken}")
    colon = tmp_path / "run 10:42" / "probe.json"  # a path may hold colons (a time in a folder name)
    colon.parent.mkdir()
    colon.write_text(json.dumps({"law": law}))
    assert parse_decay(f"cal:calibrated:{colon}").law["source"] == str(colon)
    (tmp_path / "empty.json").write_text("{}")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match=r"list.json has no law to follow \(it holds no fitted law\)$"):
        parse_decay(f"cal:calibrated:{tmp_path / 'list.json'}")
    with pytest.raises(UsageError, match=r"has no law to follow \(it holds no fitted law\)$"):
        parse_decay(f"cal:calibrated:{tmp_path / 'empty.json'}")
