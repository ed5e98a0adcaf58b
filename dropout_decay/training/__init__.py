"""Train one grid point: a fresh model through its segments on the chosen device (the MPS gate).
May import: model, data, common."""
