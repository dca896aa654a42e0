"""Run storage: the run directory's files, checkpoints and atomic writes.

Below training: :mod:`pyro_vigen.infer` writes run directories through it, and
:mod:`pyro_vigen.diagnostics` and :mod:`pyro_vigen.report` read and add to them through
it, without importing a training module to learn the files' format.
"""

from .atomic import atomic_path, atomic_write
from .checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .history import History, read_history
from .run_dir import CHECKPOINT, CONFIG, DIAGNOSTICS, HISTORY, METRICS, SAMPLES, RunDir

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "CheckpointError",
    "DIAGNOSTICS",
    "HISTORY",
    "History",
    "METRICS",
    "RunDir",
    "SAMPLES",
    "atomic_path",
    "atomic_write",
    "load_checkpoint",
    "read_history",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]
