"""Reports: figures, the HTML/Markdown report, and the ``compare`` main job."""

from .compare import CONFIGURATIONS, compare
from .document import command_for, write_report
from .runs import RunRecord, read_runs, summarise

__all__ = [
    "CONFIGURATIONS",
    "RunRecord",
    "command_for",
    "compare",
    "read_runs",
    "summarise",
    "write_report",
]
