"""The nanochat-derived GPT, its dropout masks, and the schedules that set the dropout rate while
it trains (with the law p*(D) a calibrated schedule follows). May import: common."""
