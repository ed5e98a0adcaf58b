"""One exception type for every mistake a user can make, so CLIs print one line and exit 2."""


class UsageError(Exception):
    """Bad input: a flag, a spec, a corpus or a cache the run cannot use. The message is one line."""
