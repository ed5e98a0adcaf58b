"""Answers from results, as pure functions of tables: the static optimum and its selection, the
probe's optima, paired comparisons and claims. May import: model (the law), common."""
