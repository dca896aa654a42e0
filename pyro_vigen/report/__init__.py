"""Reports: figures, the HTML/Markdown report, and the ``compare`` main job."""

from .claims import check_claims, claims_table
from .compare import compare, configurations
from .document import command_for, write_report
from .runs import RunRecord, read_runs, summarise

__all__ = [
    "RunRecord",
    "check_claims",
    "claims_table",
    "command_for",
    "compare",
    "configurations",
    "read_runs",
    "summarise",
    "write_report",
]
