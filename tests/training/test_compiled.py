"""Compiled training (training/compiled.py): the same masks and, to a stated tolerance, the same
losses as eager; one graph per shape whatever the schedule does; auto's measured check; eager
when compiling fails; no more memory than eager; recorded, but not part of a study's identity.

Every test here trains 1x2x32 on batches of 4 x 32 tokens, so the graphs compiled by the first
test that needs them serve the rest (what a process of one shape does)."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch._dynamo

from dropout_decay.cli import main as cli
from dropout_decay.data import load_cache
from dropout_decay.design import Settings
from dropout_decay.model import GPT, parse_decays, parse_model_spec, static
from dropout_decay.training import compiled
from dropout_decay.training.compiled import PROBE_STEPS, CompileChoice, compiled_loss
from dropout_decay.training.trainer import Hooks, PointRun, Segment, TrainConfig, train
from tests.conftest import TEST_VOCAB, TRAIN, load, tiny

TOLERANCE = 1e-4  # nats: compiled and eager losses of one point, every evaluation of a 60-step stream
SPEC = parse_model_spec("1x2x32")
CFG = TrainConfig(batch_size=4, seq_len=32, eval_batches=2, eval_every=10, log_every=10)
[DECAY] = parse_decays(["d:0.3:0.05:cosine"])  # a new rate every step
SEGMENTS = [Segment(2000, 20), Segment(4000, 20), Segment(8000, 20)]
ROOT = Path(__file__).resolve().parents[2]


def run(cache_dir, mode: str, seed: int = 1, spec=SPEC):
    choices, said = [], []
    rows = train(PointRun(spec, DECAY, SEGMENTS, CFG, seed, "cpu", compile=mode), load_cache(cache_dir, TEST_VOCAB),
                 Hooks(compiled=choices.append, say=said.append))
    return rows, choices[0], said


def unique_graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]  # torch's own count, not ours


def test_compiled_matches_eager_and_a_decaying_rate_never_recompiles(cache_dir):
    spec = parse_model_spec("1x2x48")  # a shape no other test compiles
    eager, choice, _ = run(cache_dir, "off", spec=spec)
    assert choice == {"mode": "off", "compiled": False, "from_step": None, "reason": "off: eager"}
    graphs = unique_graphs()
    first, choice, _ = run(cache_dir, "on", spec=spec)
    assert choice["compiled"] and choice["from_step"] == 0
    assert unique_graphs() == graphs + 2  # 60 rates through three caps: one training graph, one evaluation graph
    again, _, _ = run(cache_dir, "on", spec=spec)  # another point of the same shape, in the same process
    other_seed, _, _ = run(cache_dir, "on", seed=2, spec=spec)
    assert unique_graphs() == graphs + 2  # two more points: no new graph
    # on several threads a compiled point repeats to rounding only (sweep/replay.py), on one bitwise
    assert [r["val_loss"] for r in again] == pytest.approx([r["val_loss"] for r in first], abs=TOLERANCE)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one, _, _ = run(cache_dir, "on", spec=spec)
        one_again, _, _ = run(cache_dir, "on", spec=spec)
    finally:
        torch.set_num_threads(threads)
    assert [r["val_loss"] for r in one_again] == [r["val_loss"] for r in one]
    for e, c in zip(eager, first):
        for key in ("train_loss", "val_loss", "test_loss"):
            assert c[key] == pytest.approx(e[key], abs=TOLERANCE) and c[key] != e[key] or c[key] == e[key]
    assert abs(other_seed[-1]["val_loss"] - first[-1]["val_loss"]) > 10 * TOLERANCE  # the tolerance can tell points apart


def training_at(spec, p: float) -> tuple[GPT, torch.Tensor]:
    """A model in training mode at rate p with every weight drawn (the zero-initialised
    projections would hide the attention's masks), and a batch of 4 x 33 tokens."""
    x = torch.randint(0, TEST_VOCAB, (4, 33), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = GPT(spec, TEST_VOCAB, 32)
    with torch.no_grad():
        for weight in model.parameters():
            weight.normal_(0, 0.3)
    model.train()
    model.set_dropout(p)
    return model, x


def test_the_compiled_forward_drops_exactly_what_the_eager_forward_drops(cache_dir):
    model, x = training_at(SPEC, 0.3)

    def loss(fn, seed):
        torch.manual_seed(seed)
        return float(fn(model, x[:, :-1], x[:, 1:]))

    eager = loss(lambda m, a, b: m(a, b), 5)
    assert loss(compiled_loss, 5) == pytest.approx(eager, abs=1e-5)  # same generator state: same masks
    assert abs(loss(compiled_loss, 6) - eager) > 1e-2  # other masks move the loss far more than rounding


def test_auto_stays_eager_on_a_short_point_and_on_mps_and_compiles_when_the_rest_pays(cache_dir, monkeypatch):
    monkeypatch.setattr(compiled, "_HERE", compiled._Process())  # a process that has compiled nothing yet
    short, choice, _ = run(cache_dir, "auto")
    assert not choice["compiled"] and choice["reason"].startswith("auto: eager")
    assert not CompileChoice("auto", "mps", SPEC, 10**6).compiled  # never on MPS unless asked
    assert CompileChoice("on", "mps", SPEC, 10).compiled
    monkeypatch.setattr(compiled, "compile_guess_s", lambda spec: 0.0)  # as if compiling were free
    rows, choice, _ = run(cache_dir, "auto")
    assert choice["compiled"] and choice["from_step"] == 1 + PROBE_STEPS
    assert rows[-1]["val_loss"] == pytest.approx(short[-1]["val_loss"], abs=TOLERANCE)
    assert CompileChoice("auto", "cpu", SPEC, 10).from_step == 0  # this process holds the shape's graphs now
    # a static-0 point trains through the same graph, with nothing dropped (no p = 0 graph held)
    assert CompileChoice("auto", "cpu", SPEC, 10, drops=False).from_step == 0
    monkeypatch.setattr(compiled, "_HERE", compiled._Process())  # none held: a short static-0 point stays eager
    assert not CompileChoice("auto", "cpu", SPEC, 10, drops=False).compiled


def test_a_step_at_p_0_takes_the_graph_that_draws_masks_with_nothing_dropped_and_compiles_nothing(cache_dir, monkeypatch):
    monkeypatch.setattr(compiled, "_HERE", compiled._Process())
    spec = parse_model_spec("1x2x40")  # a shape no other test compiles
    model, x = training_at(spec, 0.3)
    compiled_loss(model, x[:, :-1], x[:, 1:])  # the process now holds the graph that draws masks
    graphs = unique_graphs()
    model.set_dropout(0.0)
    eager = model(x[:, :-1], x[:, 1:])
    eager.backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    state = torch.get_rng_state()
    loss = compiled_loss(model, x[:, :-1], x[:, 1:])
    loss.backward()
    assert torch.equal(torch.get_rng_state(), state)  # no bits drawn: the generators stay where eager p = 0 leaves them
    assert unique_graphs() == graphs  # nothing compiled
    assert float(loss) == pytest.approx(float(eager), abs=1e-5)
    for got, want in zip((p.grad for p in model.parameters()), eager_grads):
        assert torch.allclose(got, want, atol=1e-5)
    # over whole points: a static-0 point after a decaying one, in the same process
    decay = train(PointRun(spec, DECAY, SEGMENTS, CFG, 1, "cpu", compile="on"), load_cache(cache_dir, TEST_VOCAB))
    graphs = unique_graphs()
    zero = [train(PointRun(spec, static(0.0), SEGMENTS, CFG, 1, "cpu", compile=mode), load_cache(cache_dir, TEST_VOCAB))
            for mode in ("on", "off")]
    assert unique_graphs() == graphs
    assert [r["val_loss"] for r in zero[0]] == pytest.approx([r["val_loss"] for r in zero[1]], abs=TOLERANCE)
    assert abs(zero[0][-1]["val_loss"] - decay[-1]["val_loss"]) > 10 * TOLERANCE


def test_a_compile_that_fails_trains_eager_from_the_same_state_and_says_so_once(cache_dir, monkeypatch):
    eager, _, _ = run(cache_dir, "off")

    def no_compiler(*args):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

    monkeypatch.setattr(compiled, "_HERE", compiled._Process(function=no_compiler))
    rows, choice, said = run(cache_dir, "on")
    assert rows == eager  # bitwise: the failed step ran again eager from the same generator state
    assert not choice["compiled"] and "compiling failed (RuntimeError: InvalidCxxCompiler" in choice["reason"]
    assert said == ["  compiling failed, training eager from here: RuntimeError: InvalidCxxCompiler: No working C++ "
                    "compiler found"]
    _, choice, said = run(cache_dir, "on")  # the next point does not try again
    assert not choice["compiled"] and "failed earlier in this process" in choice["reason"] and said == []


MEMORY = """
import json, sys, torch
from dropout_decay.model import GPT, parse_model_spec
from dropout_decay.training.compiled import compiled_loss
from dropout_decay.training.trainer import TrainConfig, make_optimizer, optimizer_step

def rss(field):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))

torch.manual_seed(0)
model = GPT(parse_model_spec("12x8x384"), 4096, 256)
model.set_dropout(0.1)
opt = make_optimizer(model, TrainConfig(), "cpu")
x = torch.randint(0, 4096, (2, 257))
out = {}
for name, loss in (("eager", None), ("compiled", compiled_loss)):
    for _ in range(2):
        optimizer_step(model, opt, x, None, 1.0, loss)  # warm-up (and the compile)
    before = rss("VmRSS:")
    open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark
    optimizer_step(model, opt, x, None, 1.0, loss)
    out[name] = rss("VmHWM:") - before
print(json.dumps(out))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_a_compiled_step_at_the_seeds_shape_takes_no_more_memory_than_an_eager_one():
    # every tensor above 64 KiB gets its own mapping, returned when freed: the peak over the
    # RSS before a step is then what the step itself holds at once
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", MEMORY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    peak = json.loads(done.stdout.splitlines()[-1])
    # DropKey's float mask alone, if the graph kept it, would add 12 layers x 2 x 8 x 256 x 256 x 4 bytes
    float_mask = 12 * 2 * 8 * 256 * 256 * 4
    assert peak["eager"] > float_mask  # the measurement can see a difference of that size
    assert peak["compiled"] <= peak["eager"] * 1.02, peak


def test_compile_is_recorded_but_a_study_begun_eager_resumes_compiled(cache_dir, tmp_path, capsys):
    assert Settings(stage="screen", compile="on").fingerprint({}) == Settings(stage="screen").fingerprint({})
    out = tmp_path / "run"
    assert cli.main(["screen", *tiny(cache_dir, out), "--compile", "off"]) == 0
    study = load(out)
    assert json.loads((out / "config.json").read_text())["settings"]["compile"] == "off"
    assert all(t.user_attrs["compile"]["reason"] == "off: eager" for t in study.trials)
    assert cli.main(["screen", *tiny(cache_dir, out), "--compile", "on"]) == 0  # the same study: nothing to train
    assert len(load(out).trials) == len(study.trials)
    capsys.readouterr()
    assert cli.main(["replay", str(out), "--compile", "on", "--seeds", "1"]) == 0
    said = capsys.readouterr().out
    assert "0/3 points bitwise identical (3 compared compiled with eager" in said, said
    rows = json.loads(next(out.glob("*-replay-1/replay.json")).read_text())
    assert all(not r["alike"] and not r["identical"] and abs(r["delta_val_loss"]) < TOLERANCE for r in rows)


def test_a_bad_compile_setting_is_one_line(tmp_path, capsys):
    from dropout_decay.common import UsageError
    from dropout_decay.design import check

    with pytest.raises(UsageError, match="--compile must be one of auto, on, off, got 'yes'"):
        check(replace(Settings(stage="screen"), compile="yes"))
    assert cli.main(["screen", "--compile", "yes", *TRAIN]) == 2
    assert "argument --compile: invalid choice: 'yes'" in capsys.readouterr().err


def test_a_compiled_run_on_several_threads_is_not_expected_to_replay_bitwise():
    import optuna

    from dropout_decay.sweep.replay import reproducible

    def trial(compiled, threads):
        attrs = {"threads": threads, **({"compile": {"compiled": True, "from_step": 0}} if compiled else {})}
        return optuna.trial.create_trial(value=1.0, user_attrs=attrs)

    assert reproducible(trial(False, 2)) and reproducible(trial(True, 1))  # eager anywhere; compiled on one thread
    assert not reproducible(trial(True, 2)) and not reproducible(trial(True, [1, 2]))
