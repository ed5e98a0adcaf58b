"""Everything derived from a study's storage: artefact files, report.html, a workflow's index,
SVG figures, dashboard notes and serving. May import: analysis, sweep and below.

The names below are what the subpackage offers the others, which import them from here."""

from .analysed import Analysis, analyse
from .artefacts import export
from .backtest_files import write_backtest
from .dashboard import free_port, serve
from .index import index_figures, write_index
from .notes import refresh_note

__all__ = [
    "Analysis",
    "analyse",
    "export",
    "free_port",
    "index_figures",
    "refresh_note",
    "serve",
    "write_backtest",
    "write_index",
]
