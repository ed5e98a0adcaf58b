"""The data pipeline: corpus files -> document layout (train / validation split) -> BPE tokenizer ->
uint16 token cache -> training and evaluation batches. May import: common."""
