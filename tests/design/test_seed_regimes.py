"""Pressure coordinates by cap beside the seed's published streams (design/seed_regimes.py)."""

import math

import pytest

from dropout_decay.design import pressure_side_by_side
from dropout_decay.design.seed_regimes import SEED_STREAMS, coordinates


def test_coordinates_by_hand_for_the_decisive_streams_caps():
    # 3x4x96 at vocab 1024: 2*1024*96 + 12*3*96^2 = 528,384 parameters; 625 steps of 1,024 tokens a cap
    cells = coordinates(528_384, [40_000, 160_000, 640_000, 2_560_000], 640_000)
    assert [c["passes"] for c in cells] == pytest.approx([16, 8, 3, 1])
    assert [c["segment_passes"] for c in cells] == pytest.approx([16, 4, 1, 0.25])
    assert [c["x"] for c in cells] == pytest.approx([1.1209, 0.5188, -0.0833, -0.6853], abs=1e-4)
    assert [c["y"] for c in cells] == pytest.approx([math.log10(16), math.log10(8), math.log10(3), 0.0])


def test_the_seeds_streams_match_their_published_parameters_and_passes():
    tiny, owt = SEED_STREAMS
    for s in SEED_STREAMS:  # the published counts are 2*V*W + 12*L*W^2 at V = 4096
        depth, _, width = map(int, s.model.split("x"))
        assert s.parameters == 2 * 4096 * width + 12 * depth * width**2
    # "about 33 -> 4 passes per stage" (TinyStories) and "33 -> 2" (OpenWebText-10K) at 8,192 tokens a step
    assert [round(c["segment_passes"]) for c in coordinates(tiny.parameters, list(tiny.prefixes), 2000 * 8192)] == [33, 16, 8, 4]
    assert [round(c["segment_passes"]) for c in coordinates(owt.parameters, list(owt.prefixes), 1000 * 8192)] == [33, 16, 8, 4, 2]
    lines = pressure_side_by_side("3x4x96", 528_384, [40_000, 160_000], 640_000)
    assert "40,000: x 1.12 y 1.20 (16 passes, 16 in its segment)" in lines[1]
    assert "seed TinyStories 12x8x320 (17,367,040 parameters): 500,000: x 1.54 y 1.52" in lines[2]
    assert "assumed" in lines[-1]
