"""A workflow file and the handoff rules between its stages.

A workflow TOML has a `[workflow]` table of settings every stage shares (device, data,
training knobs) and one table per stage, `[screen]`, `[confirm]`, optionally `[probe]`, and
`[stream]`, each holding the flags of that stage with underscores; optionally a `[map]`, which
runs first and hands nothing over (a file of only `[workflow]` and `[map]` is a map workflow). What a table leaves out is
handed over from the stage before, by these rules:

* confirm: the screen's best candidate model (lowest val loss among models with an interior,
  nonzero optimum deeper than seed noise), at the token limit where it was found, over the
  screen's rates, with seeds 1 2 3;
* probe: the locked model over the confirm's rates;
* stream: the locked model; static rates {0, the rate swept just below p*, p*, the rate just
  above} (p* the confirm's optimum); two cosine decays that start above p* and end at or
  below it: 2·p* → p* and 1.5·p* → 0.5·p* (the seed's 0.30→0.14 and 0.20→0.10 for p* = 0.14);
  and, when the probe fitted a law, the calibrated arm that follows it.

A top-level `[claims]` table (`primary = [...]`, see declared.py) declares the stream's primary
claims; they are stored with the stream's study before its first trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..common import Stage, UsageError, WORKFLOW_ORDER
from .checks import check
from .settings import Settings
from .studyfiles import file_keys, read_toml, refuse_foreign

ORDER = WORKFLOW_ORDER
STREAM_EXTRA = {"calibrated"}  # stream: add the probe's calibrated arm (default: yes when there is a law)


@dataclass(frozen=True)
class WorkflowFile:
    name: str
    path: Path
    shared: dict
    tables: dict[str, dict]
    scale_model: dict | None = None  # what this workflow is a scale model of (scale.py)

    @property
    def stages(self) -> list[str]:
        return [s for s in ORDER if s in self.tables]

    @property
    def map_only(self) -> bool:
        return set(self.tables) == {Stage.MAP}

    def check_stages(self) -> Settings:
        return check_stages(self)

    def settings(self, stage: str, handed: dict, forced: set[str] = frozenset()) -> Settings:
        """A stage's settings: shared, then handed over, then the stage's own table (which wins,
        except for the `forced` keys of `handed`, which already include the table's values)."""
        table = {k: v for k, v in self.tables[stage].items() if k not in STREAM_EXTRA and k not in forced}
        merged = {**self.shared, **handed, **table, "stage": stage}
        return check(Settings.from_dict(merged, stored=False), explicit=set(merged))


def check_stages(wf: WorkflowFile) -> Settings:
    """Every stage's table checked before anything runs, with what earlier stages will hand over
    stood in for (the first screened model as the winner, the screen's rates); the screen's
    settings, whose models are the largest any stage trains (a map workflow: the map's)."""
    mapped = wf.settings(Stage.MAP, {}) if Stage.MAP in wf.tables else None
    if wf.map_only:
        return mapped
    screen = wf.settings(Stage.SCREEN, {})
    winner = {"models": [f"winner={screen.specs()[0].shape}"]}
    wf.settings(Stage.CONFIRM, winner | {"token_limits": screen.token_limits[:1] if screen.token_limits else None,
                                         "dropout_rates": screen.dropout_rates})
    if Stage.PROBE in wf.tables:
        wf.settings(Stage.PROBE, winner | {"dropout_rates": screen.dropout_rates})
    wf.settings(Stage.STREAM, winner | {"dropout_rates": [0.0, 0.1]})
    return screen


def load_workflow(name: str) -> WorkflowFile:
    path, data = read_toml(name)
    if "workflow" not in data:
        raise UsageError(f"{path} is not a workflow file (it has no [workflow] table); run a stage file with `run`")
    unknown_tables = set(data) - {"workflow", "claims", "scale_model", *ORDER}
    if unknown_tables:
        raise UsageError(f"{path}: unknown tables {', '.join(sorted(unknown_tables))} "
                         f"(expected workflow, {', '.join(ORDER)}, claims, scale_model)")
    scale_model = data.pop("scale_model", None)
    if scale_model is not None and not {"of", "winner", "of_winner"} <= set(scale_model):
        raise UsageError(f"{path}: [scale_model] needs of (a workflow file), winner and of_winner (their locked models)")
    for required in (Stage.SCREEN, Stage.CONFIRM, Stage.STREAM) if set(data) - {"workflow", Stage.MAP} else ():
        if required not in data:
            raise UsageError(f"{path}: a workflow needs a [{required}] table (or only a [map])")
    if set(data) == {"workflow"}:
        raise UsageError(f"{path}: a workflow needs stage tables: [screen], [confirm] and [stream], or a [map]")
    allowed = file_keys() - {"stage", "lock_from"}
    if "claims" in data:
        data[Stage.STREAM] = {**data[Stage.STREAM], "claims": data.pop("claims")}
    for table, values in data.items():
        extra = STREAM_EXTRA if table == Stage.STREAM else set()
        unknown = set(values) - allowed - extra - ({"name"} if table == "workflow" else set())
        if unknown:
            raise UsageError(f"{path}: [{table}] has unknown keys {', '.join(sorted(unknown))}")
        if table != "workflow":
            refuse_foreign(set(values) - extra, table, f"{path} [{table}]")
    shared = dict(data["workflow"])
    wf_name = shared.pop("name", path.stem)
    return WorkflowFile(wf_name, path, shared, {s: dict(data[s]) for s in ORDER if s in data}, scale_model)


def _rate_name(p: float) -> str:
    return f"{round(p * 100):03d}"


def derived_stream_arms(p_star: float, rates: list[float]) -> tuple[list[float], list[str], str]:
    """Static rates and decays for the stream from the confirmed optimum (see the module doc)."""
    below = [p for p in rates if 0 < p < p_star]
    above = [p for p in rates if p > p_star]
    statics = sorted({0.0, p_star, *(below[-1:]), *(above[:1])})
    decays = []
    for start, end in ((min(2 * p_star, 0.9), p_star), (min(1.5 * p_star, 0.9), 0.5 * p_star)):
        decays.append(f"decay_{_rate_name(start)}_to_{_rate_name(end)}:{start:.4g}:{end:.4g}:cosine")
    rule = (f"static {{0, the swept rate below p*, p*={p_star:g}, the swept rate above}}; cosine decays "
            "2·p* → p* and 1.5·p* → 0.5·p*")
    return statics, decays, rule
