"""Training the diagnostics' small nets on one thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, restoring the setting after.

    The diagnostics train small nets on small batches, which gain little from intra-op
    threads; on a machine busy with other jobs, the threads' synchronisation costs many
    times the work (measured on 2 shared cores: the digits classifier took 82 s with 2
    threads, 8 s with 1). One thread also makes the result independent of the machine's
    thread count, so a cached classifier is the one a fresh training would give.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
