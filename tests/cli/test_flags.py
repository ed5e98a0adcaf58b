"""Every numeric flag of every stage at its edges (zero, negative, beyond 64 bits, not finite, not
a number) is refused in one line at parse time, or accepted where that value means something: the
sweep issue 32 asks for, run on the parser and the checks alone (nothing is built or trained)."""

import pytest

from dropout_decay.cli.flags import settings_from_args
from dropout_decay.cli.parsing import check_run_flags, stage_parser
from dropout_decay.common.errors import UsageError

BASE = {"screen": [], "confirm": ["--seeds", "1", "2", "3"], "probe": ["--passes", "2", "--token-limits", "1000", "2000", "4000"],
        "stream": ["--models", "winner=1x2x32", "--stream-token-caps", "2000", "4000"]}
EDGES = {"zero": "0", "negative": "-1", "beyond 64 bits": str(2**64), "NaN": "nan", "infinite": "inf", "a word": "x"}
# value -> the flags at which it still means something (everything else must be refused)
ALLOWED = {
    "zero": {"--warmup-steps", "--weight-decay", "--grad-clip", "--eval-every", "--plateau-delta", "--min-lr-ratio",
             "--grid-seed", "--order-seed", "--seeds", "--order-seeds"},
    "beyond 64 bits": {"--lr", "--weight-decay", "--grad-clip", "--memory-budget", "--plateau-delta"},  # floats: huge, finite
}
INT_FLAGS = {"--steps", "--stage-steps", "--batch-size", "--seq-len", "--warmup-steps", "--eval-batches", "--eval-every",
             "--dropout-masks", "--micro-batch", "--log-every", "--grid-seed", "--order-seed", "--vocab-size"}
FLOAT_FLAGS = {"--lr", "--min-lr-ratio", "--weight-decay", "--grad-clip", "--memory-budget", "--plateau-delta", "--passes"}
LIST_FLAGS = {"--seeds", "--token-limits", "--stream-token-caps", "--order-seeds", "--dropout-rates"}
RUN_FLAGS = {"--heartbeat", "--threads"}


def parsed(stage: str, flag: str, value: str):
    ap = stage_parser(stage, stage)
    args = BASE[stage] + ["--device", "cpu"]
    if flag in LIST_FLAGS:
        extra = [flag, value, "1"] if flag in ("--seeds", "--order-seeds") else [flag, value]
        if flag == "--dropout-rates":
            extra = [flag, "0", "0.1", value]
        if flag in ("--token-limits",) and stage == "probe":
            extra = [flag, value, "2000", "4000"]
        if flag == "--stream-token-caps":
            extra = [flag, value, "4000"]
        args = args + extra
    else:
        args = args + [flag, value]
    namespace = ap.parse_args(args)
    check_run_flags(namespace)
    return settings_from_args(stage, namespace)


def flags_of(stage: str) -> set[str]:
    ap = stage_parser(stage, stage)
    names = {s for a in ap._actions for s in a.option_strings}  # noqa: SLF001 (argparse's own list of flags)
    return names & (INT_FLAGS | FLOAT_FLAGS | LIST_FLAGS | RUN_FLAGS)


CASES = [(stage, flag, edge) for stage in BASE for flag in sorted(flags_of(stage)) for edge in EDGES
         if not (stage == "confirm" and flag == "--seeds")]


def test_the_sweep_covers_every_numeric_flag_of_every_stage():
    assert {f for _, f, _ in CASES} == INT_FLAGS | FLOAT_FLAGS | LIST_FLAGS | RUN_FLAGS


@pytest.mark.parametrize("stage, flag, edge", CASES)
def test_a_numeric_flag_at_its_edge_is_one_line_or_means_something(stage, flag, edge):
    value = EDGES[edge]
    allowed = flag in ALLOWED.get(edge, set()) and not (flag == "--seeds" and stage == "confirm")
    if edge == "zero" and flag == "--token-limits" and stage != "probe":
        allowed = False
    try:
        parsed(stage, flag, value)
    except UsageError as e:
        assert not allowed, f"{flag} {value} on a {stage} should mean something: {e}"
        assert "\n" not in str(e) and len(str(e)) < 400
        return
    assert allowed, f"{flag} {value} on a {stage} was accepted"
