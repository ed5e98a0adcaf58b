"""An arm, parsed once: its kind, its rate at a point of training, and its fixed-pool twin, whose
name is the stored `ARM@fixed` byte for byte."""

from dropout_decay.model.arms import Arm, ArmKind, base_name, is_twin, static_rate, twin_name
from dropout_decay.model.schedules import parse_decay, static


def test_each_kind_of_arm_knows_what_it_is():
    kinds = {text: Arm(parse_decay(text)).kind for text in
             ("c:0.3:0.1:cosine", "l:0.3:0.1:linear", "e:0.3:0.1:exponential", "s:0.3:0.1:step", "early:0.1:0:linear:0.17")}
    assert kinds == {"c:0.3:0.1:cosine": ArmKind.DECAY, "l:0.3:0.1:linear": ArmKind.DECAY,
                     "e:0.3:0.1:exponential": ArmKind.DECAY, "s:0.3:0.1:step": ArmKind.STEP,
                     "early:0.1:0:linear:0.17": ArmKind.EARLY}
    assert Arm(static(0.1)).kind is ArmKind.STATIC and Arm(static(0.1)).is_static


def test_a_twin_keeps_the_schedule_and_takes_the_stored_suffix():
    arm = Arm(parse_decay("d:0.3:0.1:linear"))
    twin = arm.twin()
    assert (arm.name, twin.name, twin.schedule) == ("d", "d@fixed", arm.schedule)
    assert twin.fixed_pool and not arm.fixed_pool and twin.kind is ArmKind.DECAY
    assert [twin.rate(t) for t in (0.0, 0.5, 1.0)] == [arm.rate(t) for t in (0.0, 0.5, 1.0)]
    assert arm.rate(0.5) == 0.3 + (0.1 - 0.3) * 0.5  # the linear decay, by hand
    assert Arm(static(0.1)).twin().name == "static:0.1@fixed"


def test_stored_names_tell_a_twin_from_its_arm():
    assert [is_twin(n) for n in ("d", "d@fixed", "static:0.1@fixed")] == [False, True, True]
    assert base_name("d@fixed") == base_name("d") == "d" and twin_name("d") == twin_name("d@fixed") == "d@fixed"


def test_a_static_arm_name_gives_its_rate_and_any_other_arm_none():
    assert [static_rate(n) for n in ("static:0.1", "static:0@fixed", "static:0.05", "cos", "cos@fixed", "p:path:0.2,0")] \
        == [0.1, 0.0, 0.05, None, None, None]
    assert static_rate(Arm(static(0.3)).name) == 0.3
