"""The objective: train the grid point Optuna hands over and record everything on its trial.

The trial's user attrs hold its metrics (train_loss, val_loss, gap, test_loss of the last segment), one
row per segment, its evaluation trace, the worker and thread count, and, if it failed, why.
Its intermediate values are the validation losses of every evaluation: learning curves.
"""

from __future__ import annotations

import itertools
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

from ..common import check, clock, log, shield
from ..data import TokenCache
from ..design import Settings
from ..model import Arm, ModelSpec, pressure_coordinates
from ..training import Hooks, PointRun, TrainingDiverged, train
from . import cpu
from .attachments import attach_trial
from .estimate import micro_batches
from .grid import search_space, surplus_to

PROGRESS_EVERY_S = 5.0  # at most one progress line per this many seconds inside a point


@dataclass
class PointRunner:
    settings: Settings
    cache: TokenCache
    device: str
    on_start: Callable[[dict], None] = lambda point: None
    on_progress: Callable[[float], None] = lambda point_s: None  # the point's projected seconds: its steps' once
    # its first steps are timed (before any compile), then at each progress line
    threads: Callable[[], int] = lambda: 0  # sets and returns the thread count from now on
    artifacts: Path | None = None  # the run folder whose artifact store gets each trial's trace and curve
    interrupted: bool = False  # Ctrl-C arrived during a point: it is FAIL('interrupted'); stop
    specs: dict[str, ModelSpec] = field(init=False)
    arms: dict[str, Arm] = field(init=False)

    def __post_init__(self):
        self.specs = {spec.label: spec for spec in self.settings.specs()}
        self.micro = micro_batches(self.settings, self.cache.manifest["vocab_size"])
        self.arms = {a.name: a for a in self.settings.arms()}

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except KeyboardInterrupt:
            return self._interrupted(trial, [])

    def _run(self, trial: optuna.Trial) -> float:
        owner = surplus_to(trial.study, trial)
        if owner is not None:
            trial.set_user_attr("surplus_to", owner.number)
            raise optuna.TrialPruned(f"its grid point belongs to trial {owner.number}")
        point = {name: trial.suggest_categorical(name, values) for name, values in search_space(self.settings).items()}
        threads = [self.threads()]
        trial.set_user_attr("threads", threads[0])
        if self.micro[point["model"]]:
            trial.set_user_attr("micro_batch", self.micro[point["model"]])
        self.on_start(point)
        rows: list[dict] = []

        total = sum(segment.steps for segment in self.settings.segments(point))
        shown = [time.monotonic()]

        def trace(row: dict) -> None:
            rows.append(row)
            if row["kind"] == "eval":
                trial.report(row["val_loss"], row["step"])
            elif time.monotonic() - shown[0] >= PROGRESS_EVERY_S:  # a point can take minutes: say how it goes
                shown[0] = time.monotonic()
                elapsed = max(time.perf_counter() - t0, 1e-9)
                rate = row["tokens"] / elapsed
                left = (total - row["step"]) * row["tokens"] / row["step"] / rate
                log(f"    step {row['step']:,}/{total:,}  loss {row['loss']:.3f}  {rate:,.0f} tokens/s  ETA {clock(left)}")
                self.on_progress(elapsed + left)

        recheck = [time.monotonic() + 1.0]

        def between_steps() -> None:  # a lost Ctrl-C; once a second: did a worker start or end here?
            check()
            if time.monotonic() >= recheck[0]:
                recheck[0] = time.monotonic() + 1.0
                if threads[-1] != (now := self.threads()):
                    threads.append(now)
                    trial.set_user_attr("threads", threads)

        t0 = time.perf_counter()
        try:
            run = replace(self.point_run(point), compile_horizon=self.compile_horizon(trial.study, point))
            segments = train(run, self.cache, Hooks(trace, between_steps, lambda c: trial.set_user_attr("compile", c), log,
                                                     paced=self.on_progress))
        except TrainingDiverged as e:
            return self._fail(trial, rows, f"diverged: {e}")
        except KeyboardInterrupt:
            return self._interrupted(trial, rows)
        except Exception as e:  # a bug or the device gave out: keep the grid going, show the traceback
            log(traceback.format_exc().rstrip())
            return self._fail(trial, rows, f"error: {type(e).__name__}: {e}")
        return self._record(trial, segments, rows, time.perf_counter() - t0)

    def _record(self, trial: optuna.Trial, segments: list[dict], rows: list[dict], seconds: float) -> float:
        """A finished point's metrics, segments, trace and time on its trial; its value."""
        final = segments[-1]
        n_params = self.specs[trial.params["model"]].n_params(self.cache.manifest["vocab_size"])
        segments = [seg | pressure_coordinates(n_params, seg["cap"], seg["tokens"]) for seg in segments]
        self._attach(trial, rows)
        for key in ("train_loss", "val_loss", "gap", "test_loss"):
            trial.set_user_attr(key, final[key])
        trial.set_user_attr("segments", segments)
        trial.set_user_attr("trace", rows)
        trial.set_user_attr("seconds", round(seconds, 3))
        return final["val_loss"]

    def _interrupted(self, trial: optuna.Trial, rows: list[dict]) -> float:
        """Ctrl-C anywhere in the point: record why, then stop the loop."""
        shield()
        self.interrupted = True
        trial.study.stop()
        return self._fail(trial, rows, "interrupted")

    def point_run(self, point: dict) -> PointRun:
        """What training this grid point means, from the stage's settings."""
        arm = self._arm(point)
        return PointRun(self.specs[point["model"]], arm.schedule, self.settings.segments(point),
                        replace(self.settings.train, micro_batch=self.micro[point["model"]]), point["seed"],
                        self.device, order_seed=point.get("order_seed"), schedule_caps=self.settings.stream_token_caps,
                        compile=self.settings.compile)

    def compile_horizon(self, study: optuna.Study, point: dict) -> int:
        """Steps of this point's model and graph this process may expect to train: this point's
        steps for each grid point of the model not yet complete that trains through the same graph
        (static 0, where no graph is held, through its own), shared among the machine's live
        workers (what compiling a graph once can pay back over; training/compiled.py)."""
        kind = self._graph_kind(point)
        space = search_space(self.settings)
        alike = sum(self._graph_kind(dict(zip(space, values))) == kind for values in itertools.product(*space.values()))
        done = sum(self._graph_kind(t.params) == kind for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        steps = sum(segment.steps for segment in self.settings.segments(point))
        return steps * max(alike - done, 1) // cpu.live_workers()

    def _arm(self, point: dict) -> Arm:
        return self.arms[point["arm"]] if "arm" in point else self.settings.arm(point)

    def _graph_kind(self, point: dict) -> tuple:
        return point.get("model"), self._arm(point).schedule.never_drops

    def _attach(self, trial: optuna.Trial, rows: list[dict]) -> None:
        if self.artifacts is not None:
            attach_trial(trial, rows, self.artifacts)

    def _fail(self, trial: optuna.Trial, rows: list[dict], reason: str) -> float:
        """Record why, then return NaN: Optuna marks the trial FAIL without a traceback."""
        trial.set_user_attr("fail_reason", reason)
        trial.set_user_attr("trace", rows)
        if reason != "interrupted":
            self._attach(trial, rows)
        log(f"  failed: {reason}")
        return float("nan")
