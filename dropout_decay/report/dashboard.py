"""optuna-dashboard on loopback for a run's storage, with the run's artifact store.

It serves on 127.0.0.1 only: the dashboard can edit studies and has no authentication.
Each study's verdict note (notes.py) and its artifacts (trace, config, plots: artifacts.py)
are already in the storage and the artifact store when it starts.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from ..common import UsageError


def free_port(port: int) -> int:
    """`port` if it can be bound on 127.0.0.1 (0: any free one), else a one-line refusal."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is outside 1..65535 (0 picks a free port)")
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
            return probe.getsockname()[1]
    except OSError as e:
        raise UsageError(f"cannot serve on 127.0.0.1:{port}: {e.strerror}; pick another --port") from None


def serve(storage, port: int, artifact_dir: Path | None = None) -> None:
    """Blocks until Ctrl-C. The server runs in a daemon thread and the main thread only waits,
    so a Ctrl-C always lands in the wait: one that landed inside a request (as it did when it
    came while a response was being written) left the server hung for good."""
    from wsgiref.simple_server import make_server

    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import wsgi

    store = FileSystemArtifactStore(str(artifact_dir)) if artifact_dir and artifact_dir.is_dir() else None
    server = make_server("127.0.0.1", port, wsgi(storage, artifact_store=store))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        threading.Event().wait()
    finally:
        server.server_close()
