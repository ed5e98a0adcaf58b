"""`workflow CONFIG`: screen -> select -> confirm -> (probe) -> lock -> stream, in one resumable folder.

Every stage is its own Optuna study in one storage (`<run>/study.db` unless `--storage`),
named `<workflow>-<stage>`, with its artefacts in `<run>/<stage>/`. A stage's settings are
decided once: when its study exists, its stored config is used as it is, so a rerun after a
kill resumes every stage where it stopped and never changes an earlier decision. The handoffs
(plan.py) are recorded in the next stage's config and in `<run>/workflow.json`; `index.html`
shows them beside the answer.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import replace
from pathlib import Path

import optuna

from ..analysis import claims
from ..common import Stage, check_output_dir, log, write_json
from ..design import WorkflowFile, best_candidate, derived_stream_arms, load_workflow, lock_record, lowest_loss
from ..model import formula
from ..report import index_figures, write_index
from ..sweep import HEARTBEAT_S, open_storage, sqlite_url
from ..training import select_device
from .drive import StagePlan, StageResult, jobs_memory, new_run_dir, resolve_stage, run_stage, runs_dir
from .dryrun import print_plan
from .parsing import Parser, add_machine_flags, check_run_flags, prog

ADVICE = ["more steps per token (a larger `steps`, or smaller `token_limits`, in the file's [screen]) so the models overfit",
          "a larger model, which overfits a fixed token limit sooner",
          "rates between the swept ones if the curve is flat, or above the largest if it still falls",
          "or name the stream's arms (`dropout_rates` and `decays` in [stream]) to ask whether a decay beats "
          "every static rate anyway, with the lowest-loss model"]


def workflow_command(rest: list[str], argv: list[str]) -> int:
    ap = Parser(prog=f"{prog()} workflow", description=__doc__.splitlines()[0])
    ap.add_argument("config", help="a workflow file: a name in studies/ (e.g. cpu_workflow) or a path to a TOML")
    ap.add_argument("--output-dir", help="the workflow folder (default: the previous run of this file, else runs/<name>-<time>)")
    ap.add_argument("--storage", help="Optuna storage URL for every stage (default: sqlite:///<output-dir>/study.db)")
    ap.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, help=f"seconds between worker heartbeats (default {HEARTBEAT_S})")
    add_machine_flags(ap)
    ap.add_argument("--device", help="mps, cpu or cuda for every stage, instead of the file's [workflow] device "
                                      "(stages already begun keep the device they were created with)")
    ap.add_argument("--retry-failed", action="store_true", help="also re-queue points that failed deterministically (e.g. diverged)")
    ap.add_argument("--dry-run", action="store_true", help="print the whole plan and a time estimate, train nothing")
    args = ap.parse_args(rest)
    check_run_flags(args)
    wf = load_workflow(args.config)
    for key in ("device", "compile"):  # this machine's choice, for every stage
        if getattr(args, key):
            wf = replace(wf, shared={**wf.shared, key: getattr(args, key)})
    screen = wf.check_stages()  # every table, with placeholders for what the stages will hand over
    jobs_memory(screen, screen.vocab_size, screen.device, args.jobs)  # before a folder, a storage or the data is made
    if args.dry_run:
        return print_plan(wf, args.threads)
    out = folder(wf, args.output_dir)
    check_output_dir(out)
    return Workflow(wf, out, args, shlex.join(argv)).run()


def file_hash(wf: WorkflowFile) -> str:
    return hashlib.sha256(wf.path.read_bytes()).hexdigest()[:16]


def folder(wf: WorkflowFile, output_dir: str | None) -> Path:
    """The given folder, else the latest one this same workflow file made (to resume), else a new one."""
    if output_dir:
        return Path(output_dir)
    previous = []
    for record in runs_dir().glob(f"{wf.name}-*/workflow.json"):
        try:
            if json.loads(record.read_text()).get("config_sha256") == file_hash(wf):
                previous.append(record.parent)
        except (OSError, ValueError):
            continue
    return max(previous, default=None) or new_run_dir(wf.name)


class Workflow:
    """One run of a workflow file; `run()` does (or resumes) every stage in order."""

    def __init__(self, wf: WorkflowFile, out: Path, args, command: str):
        self.wf, self.out, self.args, self.command = wf, out, args, command
        self.url = args.storage or sqlite_url(out)
        if not args.storage:
            out.mkdir(parents=True, exist_ok=True)
        self.storage = open_storage(self.url, args.heartbeat)
        out.mkdir(parents=True, exist_ok=True)
        self.record = {"workflow": wf.name, "config_file": str(wf.path.resolve()), "config_sha256": file_hash(wf),
                       "command": command, "output_dir": str(out.resolve()), "stages": {}, "decisions": [],
                       "stopped": None, "status": "running"}
        self.figures: dict[str, str] = {}

    def run(self) -> int:
        self.device = select_device(self.wf.shared.get("device", "mps"))
        self.record |= {"device": self.device.name, "mps_compliant": self.device.mps_compliant, "note": self.device.note}
        if Stage.MAP in self.wf.tables:
            mapped = self.stage(Stage.MAP, {})
            if mapped.code:
                return mapped.code
            self.decide("map", "pressure law", mapped.analysis.map["description"])
            if self.wf.map_only:
                return self.done()
        screen = self.stage(Stage.SCREEN, {})
        if screen.code:
            return screen.code
        best = self.select(screen, Stage.SCREEN)
        if best is None:
            return self.stop(Stage.SCREEN, "no screened model has an interior, nonzero optimum deeper than seed noise")
        confirm = self.stage(Stage.CONFIRM, {"models": [f"winner={best['model_shape']}"], "token_limits": [best["cap"]],
                                             "dropout_rates": screen.settings.dropout_rates},
                             {"selected": best["model"], "shape": best["model_shape"], "token_limit": best["cap"],
                              "evidence": best["verdict"]})
        if confirm.code:
            return confirm.code
        locked = self.select(confirm, Stage.CONFIRM)
        if locked is None:
            return self.stop(Stage.CONFIRM, "with 3 seeds the winner's optimum is not interior, nonzero and deeper than seed noise")
        lock = lock_record(locked, "workflow confirm stage", study=confirm.study.study_name)
        self.decide("lock", lock["model"], f"confirm: {locked['verdict']}; plateau {locked['plateau']}")
        code, calibration = self.probe(lock, confirm.settings.dropout_rates)
        if code:
            return code
        return self.stream(lock, locked["best_p"], confirm.settings.dropout_rates, calibration)

    def probe(self, lock: dict, rates: list[float]) -> tuple[int, str | None]:
        """The probe, when the file has one: its exit code and the calibrated arm it adds to the
        stream (None: no arm)."""
        if Stage.PROBE not in self.wf.tables:
            return 0, None
        probe = self.stage(Stage.PROBE, {"models": [lock["model"]], "dropout_rates": rates}, {"lock": lock["model"]})
        if probe.code:
            return probe.code, None
        law = probe.analysis.probe["law"]
        self.decide("probe law", law.get("form") or "none", law.get("reason") or formula(law))
        if law.get("form") and self.wf.tables[Stage.STREAM].get("calibrated", True):
            return 0, f"calibrated:calibrated:{self.out / Stage.PROBE / 'probe.json'}"
        return 0, None

    def stream(self, lock: dict, best_p: float, rates: list[float], calibration: str | None) -> int:
        statics, decays, rule = derived_stream_arms(best_p, rates)
        table = self.wf.tables[Stage.STREAM]
        decays = table.get("decays", decays) + ([calibration] if calibration else [])
        statics = table.get("dropout_rates", statics)
        stream = self.stage(Stage.STREAM, {"models": [lock["model"]], "dropout_rates": statics, "decays": decays},
                            {"lock": lock, "rule": rule}, lock=lock)
        if stream.code:
            return stream.code
        chosen = stream.settings  # what the stream study holds, even if it was created by an earlier version
        self.decide("stream arms", f"static {chosen.dropout_rates}, decays {[d.split(':')[0] for d in chosen.decays]}",
                    "from the config" if self.names_stream_arms() else f"derived: {rule}")
        entry = self.record["stages"][Stage.STREAM]
        entry["claims"] = claims(stream.analysis.comparison or [])
        entry["primary"] = stream.analysis.primary or []
        return self.done()

    def done(self) -> int:
        self.record["status"] = "done"
        self.save()
        log(f"workflow {self.wf.name}: done; {self.out / 'index.html'}")
        return 0

    def stage(self, stage: Stage, handed: dict, handoff: dict | None = None, lock: dict | None = None) -> StageResult:
        """Create (or find) the stage's study, train what is left, export (its `code`: 0 done,
        1 points failed, 130 interrupted).
        A study that exists keeps its stored settings: decisions, once made, stay made."""
        name = f"{self.wf.name}-{stage}"
        resolved = None
        if name not in optuna.study.get_all_study_names(self.storage):
            settings = self.wf.settings(stage, handed, forced={"decays"} if stage.is_stream else set())
            resolved = resolve_stage(settings, self.device, self.command, lock, self.args.threads, handoff=handoff)
        entry = self.record["stages"].setdefault(stage, {})

        def opened(study, config: dict) -> None:
            entry.update({"study": name, "grid_size": config["grid_size"], "folder": str(stage),
                          "report": f"{stage}/report.html", "handoff": config.get("handoff")})
            self.save()

        done = run_stage(StagePlan(self.storage, self.url, name, self.out / stage, self.device,
                                   f"workflow {self.wf.name}: {stage}", resolved, root=self.out,
                                   threads=self.args.threads, jobs=self.args.jobs, retry_failed=self.args.retry_failed,
                                   on_open=opened))
        entry |= {"complete": done.status.complete, "failed": done.status.failed,
                  "seconds_this_run": round(done.seconds, 1), "trained_seconds": round(sum(done.status.durations), 1)}
        if done.code:
            self.record["status"] = "interrupted" if done.code == 130 else "failed"
            self.save()
            if done.code == 1:  # drive() said which points failed and why
                log(f"workflow {self.wf.name}: stopped at {stage}: {done.status.failed} point(s) of {name} failed; "
                    "fix the cause and rerun the workflow with the same folder and --retry-failed")
            return done
        self.figures[stage] = index_figures(stage, done.analysis)
        self.save()
        return done

    def select(self, done: StageResult, stage: Stage) -> dict | None:
        selection = done.analysis.selection or []
        self.record["stages"][stage]["selection"] = [
            {k: r[k] for k in ("model", "model_shape", "cap", "best_p", "plateau", "dip_over_std", "candidate", "verdict")}
            for r in selection]
        best = best_candidate(selection)
        why = best["verdict"] if best else "; ".join(f"{r['model']}: {r['verdict']}" for r in selection)
        if best is None and self.names_stream_arms():
            best = lowest_loss(selection)
            why = (f"no interior, nonzero optimum ({why}); the stream names its own rates and decays, so "
                   f"the model with the lowest val loss goes on: {best['model']} at p={best['best_p']:g}")
        self.decide(f"select after {stage}", best["model"] if best else "none", why)
        return best

    def names_stream_arms(self) -> bool:
        """Does the stream's table name its static rates and decays, so no p* is needed to derive them?"""
        return {"dropout_rates", "decays"} <= set(self.wf.tables[Stage.STREAM])

    def decide(self, step: str, chosen: str, why: str) -> None:
        self.record["decisions"] = [d for d in self.record["decisions"] if d["step"] != step]
        self.record["decisions"].append({"step": step, "chosen": chosen, "why": why})
        self.save()

    def stop(self, after: str, reason: str) -> int:
        self.record |= {"status": "stopped", "stopped": {"after": after, "reason": reason, "advice": ADVICE}}
        self.save()
        log(f"workflow {self.wf.name}: stopped after {after}: {reason}. Nothing downstream would answer the "
            f"question honestly. Try: {'; '.join(ADVICE)}. Details: {self.out / 'index.html'}")
        return 0

    def save(self) -> None:
        write_json(self.out / "workflow.json", self.record)
        write_index(self.out, self.record, self.figures)
