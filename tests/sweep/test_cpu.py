"""Cores and threads (sweep/cpu.py): workers on one machine share its cores; OMP_NUM_THREADS caps them."""





def test_workers_on_one_machine_share_its_cores(tmp_path, monkeypatch):
    import os

    import torch

    from dropout_decay.sweep import cpu

    monkeypatch.setenv("DROPOUT_DECAY_WORKERS_DIR", str(tmp_path / "workers"))
    monkeypatch.setattr(cpu, "cores", lambda: 8)
    before = torch.get_num_threads()
    try:
        cpu.register()
        assert cpu.share() == 8 and torch.get_num_threads() == 8  # alone: every core
        (tmp_path / "workers" / str(os.getppid())).touch()  # a second live worker (pytest's parent)
        (tmp_path / "workers" / "999999999").touch()  # a dead one: not counted, and cleared away
        assert cpu.live_workers() == 2 and cpu.share() == 4 and torch.get_num_threads() == 4
        assert not (tmp_path / "workers" / "999999999").exists()
        assert cpu.share(fixed=3) == 3  # --threads wins
        cpu.unregister()
        assert not (tmp_path / "workers" / str(os.getpid())).exists()
    finally:
        torch.set_num_threads(before)


def test_omp_num_threads_caps_the_cores_a_worker_counts(monkeypatch):
    from dropout_decay.sweep import cpu

    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu.cores() == 8
    for value, expected in (("3", 3), ("16", 8), ("0", 8), ("", 8), ("four", 8)):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert cpu.cores() == expected, value
