"""Where a stream stands in dropout pressure, cap by cap, beside the seed's published streams.

x = log10(P / U) and y = log10(C / U), with U the cap and C the tokens the optimiser has seen
since step 0 (model/pressure.py). The seed's later project published two crossing streams
(shared/seed/published_regimes.md): its parameters, prefixes and steps a stage are stated there;
its batch (taken as the seed README's 32 x 256 = 8,192 tokens a step) and the prefixes between
the first and the last (taken as doubling) are not, so those two are assumptions, said so
wherever these numbers are printed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SEED_TOKENS_PER_STEP = 32 * 256  # the seed README's batch; an assumption for the published streams


@dataclass(frozen=True)
class PublishedStream:
    name: str
    model: str
    parameters: int
    prefixes: tuple[int, ...]
    steps_per_stage: int


SEED_STREAMS = (
    PublishedStream("seed TinyStories", "12x8x320", 17_367_040, (500_000, 1_000_000, 2_000_000, 4_000_000), 2_000),
    PublishedStream("seed OpenWebText-10K", "16x8x384", 31_457_280,
                    (250_000, 500_000, 1_000_000, 2_000_000, 4_000_000), 1_000),
)


def coordinates(parameters: int, caps: list[int], tokens_per_segment: int) -> list[dict]:
    """Per cap, at the end of its segment: x, y, passes over the cap since step 0 and in the
    segment alone."""
    out = []
    for i, cap in enumerate(caps):
        seen = (i + 1) * tokens_per_segment
        out.append({"cap": cap, "x": math.log10(parameters / cap), "y": math.log10(seen / cap),
                    "passes": seen / cap, "segment_passes": tokens_per_segment / cap})
    return out


def describe(label: str, parameters: int, caps: list[int], tokens_per_segment: int) -> str:
    cells = " | ".join(f"{c['cap']:,}: x {c['x']:.2f} y {c['y']:.2f} ({c['passes']:.3g} passes, {c['segment_passes']:.3g} "
                       "in its segment)" for c in coordinates(parameters, caps, tokens_per_segment))
    return f"  {label} ({parameters:,} parameters): {cells}"


def pressure_side_by_side(model: str, parameters: int, caps: list[int], tokens_per_segment: int) -> list[str]:
    """Lines for a stream's dry run: its pressure coordinates by cap, then the seed's streams'."""
    lines = ["pressure coordinates at the end of each cap (x = log10(P/U), y = log10(C/U), C = tokens seen since step 0):",
             describe(f"here {model}", parameters, caps, tokens_per_segment)]
    lines += [describe(f"{s.name} {s.model}", s.parameters, list(s.prefixes), s.steps_per_stage * SEED_TOKENS_PER_STEP)
              for s in SEED_STREAMS]
    lines.append(f"  (the seed's: {SEED_TOKENS_PER_STEP:,} tokens a step and doubling prefixes assumed; published_regimes.md "
                 "states neither)")
    return lines
