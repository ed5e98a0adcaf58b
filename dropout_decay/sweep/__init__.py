"""The Optuna machinery: settings and stage files, the grid and its sampler, storages, workers,
recovery, the objective, provenance, replay and time estimates. May import: training and below."""
