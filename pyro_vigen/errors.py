"""The library's one exception for bad input, told apart from its own bugs.

Example::

    from pyro_vigen.errors import UserError
    from pyro_vigen.infer import VAETrainConfig
    try:
        VAETrainConfig(batch_size=0)
    except UserError as e:
        e.field              # 'batch_size'
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """Bad input: a setting, a data file, a run directory; the message says what to change.

    A :class:`ValueError`, so that code catching those keeps working. The command line
    prints it as one line, naming the flag of ``field``; any other exception is a bug
    of the library and keeps its traceback.

    :param str message: what is wrong, naming settings by their config field
        (``batch_size``), not by a command-line flag.
    :param str field: the config field (or keyword argument) whose value is wrong, if
        one is; ``None`` otherwise.
    """

    # Also for subclasses whose other base's __init__ runs instead (ImportError's).
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
