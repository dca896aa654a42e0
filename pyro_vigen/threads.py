"""How many intra-op threads torch computes with: the library's one thread policy.

torch starts with one intra-op thread per core, and those threads wait for each other
at every operation whenever another process holds a core. Measured on 2 cores: beside
three other busy processes, ``pyro-vigen train gan --data ring8 --steps 1000`` took
179 s at torch's default two threads and 2.3 s at one (76x); beside a single other
training, the two-thread run took 2.9x to 3.7x its time alone. The library's nets are
small and gain little from a second thread even on an idle machine: nothing for the
toy MLPs (2-128-128-2), 1.3x to 1.5x for the conv nets on 8x8 digits (a VAE step
38 -> 29 ms, a GAN iteration 74 -> 51 ms); beside other busy processes the same
conv nets were 2.1x to 5.5x slower on two threads than on one (8x8 and 28x28). So
training, diagnosis and reports run on :data:`DEFAULT_THREADS` unless asked for more
(``threads=`` in the library, ``--threads`` on the command line): on a machine that is
yours alone, ``--threads 2`` trains image models somewhat faster.

The classifiers that the diagnostics train always take one thread, so their results
(and a cached image classifier) do not depend on the thread count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .config import require_positive

__all__ = ["DEFAULT_THREADS", "resolve_threads", "torch_threads"]

#: Intra-op threads of training, diagnosis and reports when none are asked for.
DEFAULT_THREADS = 1


def resolve_threads(threads: int | None) -> int:
    """The thread count to use: ``threads``, or :data:`DEFAULT_THREADS` for ``None``.

    :param threads: a positive integer, or ``None`` for the default.
    :raises ValueError: ``threads`` is not a positive integer.

    Example::

        from pyro_vigen.threads import resolve_threads
        resolve_threads(None)    # 1, the default
        resolve_threads(4)       # 4
        resolve_threads(0)       # ValueError: threads must be a positive integer, got 0
    """
    if threads is None:
        return DEFAULT_THREADS
    require_positive("threads", threads, integer=True)
    return threads


@contextlib.contextmanager
def torch_threads(threads: int | None = None) -> Iterator[int]:
    """Run torch on ``threads`` intra-op threads inside the block; restore the caller's after.

    :param threads: a positive integer, or ``None`` for :data:`DEFAULT_THREADS`.
    :returns: (as the ``with`` target) the thread count in effect.
    :raises ValueError: ``threads`` is not a positive integer (raised on entering the
        block, before anything runs).

    Example::

        import torch
        from pyro_vigen.threads import torch_threads
        with torch_threads():               # the default: one thread
            torch.get_num_threads()         # 1
        with torch_threads(2) as n:         # n == 2
            ...
        # here torch.get_num_threads() is what it was before the blocks
    """
    wanted = resolve_threads(threads)
    before = torch.get_num_threads()
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
