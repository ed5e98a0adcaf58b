"""Several workers on one grid (sweep/workers.py and the work loop): real processes, real
PostgreSQL and SQLite storages, real kills."""

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from dropout_decay.cli import main as cli
from dropout_decay.data.cache import load_cache
from dropout_decay.design import Settings, check
from dropout_decay.sweep import cpu, recovery
from dropout_decay.sweep import runner as runner_module
from dropout_decay.sweep.objective import PointRunner
from dropout_decay.sweep.provenance import build_config
from dropout_decay.sweep.recovery import requeue
from dropout_decay.sweep.runner import work
from dropout_decay.sweep.storage import open_storage, open_study, sqlite_url
from dropout_decay.training.device import select_device
from dropout_decay.training.trainer import TrainConfig
from tests.conftest import TEST_VOCAB, TRAIN, patience, points

ROOT = Path(__file__).resolve().parents[2]


ENV = dict(os.environ, OMP_NUM_THREADS="1")  # one thread each: several workers share 2 cores, results stay bitwise equal


COMPARED = ("summary.csv", "summary.json", "model_selection.csv", "model_selection.json")


def grid(cache_dir, steps=200):
    """9 points: 3 seeds x 3 rates of a tiny model."""
    return ["--device", "cpu", "--use-cached-data", "--cache-dir", str(cache_dir), "--vocab-size", str(TEST_VOCAB),
            "--models", "1x2x32", "--seeds", "1", "2", "3", "--dropout-rates", "0", "0.1", "0.3",
            "--steps", str(steps), *TRAIN]


def spawn(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dropout_decay.study", *map(str, args)], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(condition, what: str, procs=(), timeout=300):
    deadline = time.time() + patience(timeout)
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        for p in procs:
            assert p.poll() is None, f"a worker ended early while waiting for {what}: {p.stderr.read()[-2000:]}"
        time.sleep(0.2)


def study_in(url: str, name: str = "grid") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


def exists(url: str, name: str = "grid") -> bool:
    return name in optuna.study.get_all_study_names(open_storage(url))


def finish(procs) -> None:
    for p in procs:
        _, err = p.communicate(timeout=patience(300))
        assert p.returncode == 0 and "Traceback" not in err, err[-2000:]


def workers_of(study) -> set[str]:
    return {t.user_attrs["worker"] for t in study.get_trials(states=(TrialState.COMPLETE,))}


def assert_each_point_complete_once(study, size=9):
    done = points(study)
    assert len(done) == size == len(set(done)), done
    trained = [t for t in study.trials if t.state != TrialState.PRUNED]
    assert all("surplus_to" in t.user_attrs for t in study.trials if t.state == TrialState.PRUNED)
    assert all(not t.user_attrs.get("trace") for t in study.trials if t.state == TrialState.PRUNED)
    return trained


def comparable(folder: Path) -> dict:
    """Artefacts minus trial numbers, which depend on who ran what when."""
    out = {name: (folder / name).read_text() for name in COMPARED}
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    out["metrics.jsonl"] = [{k: v for k, v in r.items() if k != "trial"} for r in rows]
    return out


def in_process_study(cache_dir, tmp_path, heartbeat_s=60):
    """A 3-point screen study and its objective, built the way `screen` builds them."""
    s = Settings(stage="screen", models=["1x2x32"], seeds=[1], dropout_rates=[0.0, 0.1, 0.3], token_limits=[5000],
                 steps=20, train=TrainConfig(batch_size=4, seq_len=32, eval_batches=2, eval_every=0), device="cpu",
                 cache_dir=str(cache_dir), vocab_size=TEST_VOCAB)
    cache = load_cache(cache_dir, TEST_VOCAB)
    config = build_config(check(s), cache, select_device("cpu"), "test", None)
    study = open_study(open_storage(sqlite_url(tmp_path), heartbeat_s=heartbeat_s), "grid", config)
    return study, PointRunner(s, cache, "cpu")


ASK_AND_DIE = """
import os, sys
from dropout_decay.sweep.storage import open_storage, open_study
study = open_study(open_storage(sys.argv[1]), "grid")
study.ask()  # Optuna creates the trial and the sampler gives it a grid point; the objective never starts
os._exit(0)
"""


def _open(url: str) -> str:
    try:
        open_storage(url)
        return "ok"
    except Exception as e:  # the test reports what went wrong
        return repr(e)


def test_three_workers_on_postgres_match_a_single_sqlite_run(cache_dir, tmp_path, postgres_url):
    first = spawn("screen", *grid(cache_dir), "--storage", postgres_url, "--study-name", "grid",
                  "--output-dir", tmp_path / "w0")
    wait_for(lambda: exists(postgres_url), "the study", [first])
    others = [spawn("worker", "--storage", postgres_url, "--study", "grid", "--output-dir", tmp_path / f"w{i}")
              for i in (1, 2)]
    reference = spawn("screen", *grid(cache_dir), "--output-dir", tmp_path / "ref")
    finish([first, *others, reference])
    study = study_in(postgres_url)
    trained = assert_each_point_complete_once(study)
    assert len(trained) == 9 and len(workers_of(study)) == 3  # three processes really shared the grid
    assert cli.main(["export", "--storage", postgres_url, "--study", "grid", "--output-dir", str(tmp_path / "pg")]) == 0
    assert comparable(tmp_path / "pg") == comparable(tmp_path / "ref")


def test_sigkill_one_of_three_workers_mid_trial_and_the_grid_completes(cache_dir, tmp_path, postgres_url):
    """On PostgreSQL; the same on SQLite is tests/cli/test_jobs.py's killed job."""
    url, backend = postgres_url, "postgresql"
    (tmp_path / "run").mkdir()
    first = spawn("screen", *grid(cache_dir, steps=400), "--storage", url, "--study-name", "grid",
                  "--output-dir", tmp_path / "run")
    wait_for(lambda: (tmp_path / "run" / "study.db").exists() or backend == "postgresql", "the storage", [first])
    wait_for(lambda: exists(url), "the study", [first])
    victim, survivor = (spawn("worker", "--storage", url, "--study", "grid", "--output-dir", tmp_path / f"w{i}")
                        for i in (1, 2))
    tag = f"{os.uname().nodename}:{victim.pid}"

    def victim_mid_trial() -> bool:
        # every param, not just the tag: a trial carries its worker from birth, and its point's
        # params are suggested one at a time (a kill between two left a half-named point)
        running = study_in(url).get_trials(states=(TrialState.RUNNING,))
        return any(t.user_attrs.get("worker") == tag and set(t.params) == {"model", "seed", "dropout", "tokens"}
                   for t in running)

    wait_for(victim_mid_trial, "the victim to hold a point", [first, victim, survivor])
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    finish([first, survivor])
    study = study_in(url)
    trained = assert_each_point_complete_once(study)
    [lost] = [t for t in trained if t.state == TrialState.FAIL]
    assert lost.user_attrs["fail_reason"] == f"worker lost (pid {victim.pid} died)" and lost.user_attrs["worker"] == tag
    [retry] = [t for t in trained if t.user_attrs.get("retry_of") == lost.number]
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params
    assert len(trained) == 10  # nine points plus the one retry: no duplicate tail


def test_a_worker_that_only_waits_for_the_last_point_leaves_its_cores_to_the_one_training_it(cache_dir, tmp_path, monkeypatch):
    """At a grid's end one worker trains the last point while the other waits. The waiting one
    must not count as live, or the last point trains on cores // 2 threads with half the cores idle."""
    monkeypatch.setenv("DROPOUT_DECAY_WORKERS_DIR", str(tmp_path / "workers"))  # only the two workers of this test
    cpu.registry().mkdir()
    study, runner = in_process_study(cache_dir, tmp_path)
    runner.threads = lambda: cpu.share(None)  # as drive() sets it
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # another worker here...
    threads_before = torch.get_num_threads()
    try:
        held = study.ask()  # ...holding the last point, registered as a worker registers itself
        held.set_user_attr("worker", f"{socket.gethostname()}:{other.pid}")
        (cpu.registry() / str(other.pid)).touch()
        while_waiting = []

        def wait(seconds):  # work() sleeps only while it waits for points others hold
            while_waiting.append((cpu.live_workers(), seconds))
            study._storage.set_trial_state_values(held._trial_id, TrialState.COMPLETE, [1.0])  # the other one finishes

        monkeypatch.setattr(runner_module.time, "sleep", wait)
        status = work(study, runner, say=lambda _: None)
    finally:
        other.kill()
        other.wait()
        torch.set_num_threads(threads_before)
    both = max(1, cpu.cores() // 2)
    assert [t.user_attrs["threads"] for t in study.trials if t.number != held.number] == [both, both]  # while both train
    assert while_waiting == [(1, 1.0)]  # then only the other counts, and we look again within a second
    assert status.complete == 3 and not (cpu.registry() / str(os.getpid())).exists()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # study.ask() stands in for the other machine
def test_a_point_whose_heartbeat_went_stale_on_another_machine_is_retried(cache_dir, tmp_path):
    study, runner = in_process_study(cache_dir, tmp_path, heartbeat_s=1)
    ghost = study.ask()  # a point taken by a worker on another machine, which then died
    ghost.set_user_attr("worker", "elsewhere:4242")
    study._storage.record_heartbeat(ghost._trial_id)
    time.sleep(2.5)  # silent for longer than the grace period (2 heartbeats)
    status = work(study, runner, poll_s=0.1, say=lambda _: None)
    assert status.complete == 3 and status.failed == 0
    trained = assert_each_point_complete_once(study, size=3)
    [lost] = [t for t in trained if t.state == TrialState.FAIL]
    assert lost.number == ghost.number
    [retry] = [t for t in trained if t.user_attrs.get("retry_of") == ghost.number]
    assert retry.user_attrs["retry_reason"] == "worker lost (heartbeat stale)" and retry.state == TrialState.COMPLETE


def test_a_worker_killed_as_its_trial_is_created_leaves_a_point_the_next_run_retries(cache_dir, tmp_path):
    """Killed between study.ask() and the objective: before the trial was tagged with its worker
    at birth, such a trial stayed RUNNING for ever, and its point with it."""
    study, runner = in_process_study(cache_dir, tmp_path)
    child = subprocess.Popen([sys.executable, "-c", ASK_AND_DIE, sqlite_url(tmp_path)], cwd=ROOT)
    assert child.wait() == 0
    [ghost] = study.get_trials(states=(TrialState.RUNNING,))
    assert ghost.user_attrs.get("worker", "").endswith(f":{child.pid}")
    assert recovery.reclaim_dead_local(study) == 1  # at once, not after a timeout
    status = work(study, runner, poll_s=0.1, say=lambda _: None)
    assert status.complete == 3 and status.failed == 0 and status.running == 0
    trained = assert_each_point_complete_once(study, size=3)
    assert [t.number for t in trained if t.state == TrialState.FAIL] == [ghost.number]
    [retry] = [t for t in trained if t.user_attrs.get("retry_of") == ghost.number]
    assert retry.user_attrs["retry_reason"] == f"worker lost (pid {child.pid} died)" and retry.state == TrialState.COMPLETE


def test_a_trial_that_never_got_a_worker_is_given_up_after_a_while(cache_dir, tmp_path, monkeypatch):
    """The last backstop: a RUNNING trial with no worker tag (no host, no pid to check) is lost
    once it is older than any start-up takes, on whichever machine the next worker runs."""
    study, runner = in_process_study(cache_dir, tmp_path)
    orphan = study._storage.create_new_trial(study._study_id)  # no sampler, no tag, no heartbeat
    monkeypatch.setattr(recovery, "UNTAGGED_S", 3600)
    assert recovery.reclaim_dead_local(study) == 0  # young: it may be a worker starting right now
    monkeypatch.setattr(recovery, "UNTAGGED_S", 0)
    assert recovery.reclaim_dead_local(study) == 1
    lost = study._storage.get_trial(orphan)
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_reason"] == "worker lost (died as the trial was created)"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_two_workers_drawing_one_point_train_it_once(cache_dir, tmp_path):
    """The tail race, made deterministic: a point queued twice (two workers re-queued the same
    failure) is trained by the lower-numbered trial; the other yields without training."""
    study, runner = in_process_study(cache_dir, tmp_path)
    died = study.ask()
    study.tell(died, state=TrialState.FAIL)
    for _ in range(2):
        requeue(study, study.trials[0], "worker lost")
    work(study, runner, say=lambda _: None)
    first, second = study.trials[1:3]
    assert first.state == TrialState.COMPLETE and first.system_attrs["grid_id"] == study.trials[0].system_attrs["grid_id"]
    assert second.state == TrialState.PRUNED and second.user_attrs["surplus_to"] == first.number
    assert second.params == {} and "trace" not in second.user_attrs
    assert_each_point_complete_once(study, size=3)


def test_workers_started_together_on_a_new_storage_all_open_it(tmp_path):
    """Four processes create one new SQLite storage's schema at once, ten times over."""
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        for i in range(10):
            (tmp_path / str(i)).mkdir()
            results = pool.map(_open, [sqlite_url(tmp_path / str(i))] * 4, chunksize=1)
            assert results == ["ok"] * 4, results


def test_a_worker_joining_mid_point_makes_the_running_point_give_up_threads(cache_dir, tmp_path, monkeypatch):
    """Threads are re-shared inside a point (once a second of its clock), and the trial records
    each count it used: a point that started alone must not keep every core once a second
    worker starts, or both run oversubscribed until it ends."""
    from dropout_decay.sweep import objective

    clock = iter(range(0, 10_000, 2))  # every reading is two seconds later
    monkeypatch.setattr(objective.time, "monotonic", lambda: next(clock))
    counts = iter([2, 2, 1])  # alone at the start, alone at the first check, then a second worker
    study, runner = in_process_study(cache_dir, tmp_path)
    runner.threads = lambda: next(counts, 1)
    work(study, runner, say=lambda _: None)
    first, *rest = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.number)
    assert first.user_attrs["threads"] == [2, 1] and all(t.user_attrs["threads"] == 1 for t in rest)
