"""What to run: every setting and its checks, stage and workflow files, declared claims, the
handoffs between stages and scale models. Knows nothing of Optuna (an import-linter contract
forbids it), so a design can be read, checked and printed without a storage. May import:
training and below."""
