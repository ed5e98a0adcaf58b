"""Stages as a type: each stored name reads back as its member, serialises byte for byte as the
name, and answers every question the code used to ask of a string."""

import json

import pytest

from dropout_decay.common.errors import UsageError
from dropout_decay.common.stages import STAGE_NAMES, Stage, stage_of


def test_a_stage_is_its_stored_name_in_json_in_fstrings_and_as_a_key():
    assert STAGE_NAMES == ("screen", "confirm", "probe", "stream", "map")
    for name in STAGE_NAMES:
        stage = Stage(name)
        assert stage == name and f"{stage}" == name and json.dumps({stage: stage}) == json.dumps({name: name})
        assert {name: 1}[stage] == 1


def test_each_question_has_the_answer_the_strings_gave():
    assert [s.sweeps_statics for s in Stage] == [True, True, False, False, False]
    assert [s.arm_key for s in Stage] == ["dropout", "dropout", "dropout", "arm", "dropout"]
    assert [s.is_stream for s in Stage] == [False, False, False, True, False]
    assert [s.counts_passes for s in Stage] == [False, False, True, False, True]
    assert [s.default_seeds for s in Stage] == [[1, 2], [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]]
    assert [s.exact_seeds for s in Stage] == [None, 3, None, None, None]


def test_an_unknown_stage_is_one_line_naming_the_choices():
    with pytest.raises(UsageError, match=r"unknown stage 'scren' \(choose from screen, confirm, probe, stream, map\)"):
        stage_of("scren")
