"""Cold-start helpers for the handler modules: imports without the garbage collector, and Lambda
SnapStart's runtime hooks.

A handler's imports (Powertools, botocore, numpy, Pillow, LiteRT) create about 80,000 objects that
live as long as the process. While they are being created, CPython's cyclic garbage collector runs
about 180 times and scans them again and again: 70 to 100 ms of the predict function's cold start
here (``make bench``), for nothing, since none of them is garbage. Handlers therefore import under
:func:`gc_paused`, which also freezes what the imports made, so that later collections, on every
warm request, skip it too.
"""

import gc
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# AWS_LAMBDA_INITIALIZATION_TYPE when Lambda initialises an environment to snapshot it (SnapStart);
# otherwise "on-demand" or "provisioned-concurrency".
SNAPSTART_INITIALIZATION = "snap-start"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the garbage collector off, then freeze what exists and restore it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def on_snapstart(*, before_snapshot: Callable[[], object], after_restore: Callable[[], object]) -> bool:
    """Under Lambda SnapStart, run ``before_snapshot`` before Lambda snapshots the initialised
    environment and ``after_restore`` in every environment restored from it; return whether it applies.

    Lambda initialises a SnapStart version once, when the version is published, with
    ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``, and its Python runtime provides the
    ``snapshot_restore_py`` library that takes the hooks. Anywhere else (on-demand environments, tests,
    ``make serve``) nothing is registered, and loading stays lazy, on the first request.

    Every restore also re-seeds :mod:`random`: environments restored from one snapshot would otherwise
    draw the same numbers (botocore's retry jitter among them).
    """
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != SNAPSTART_INITIALIZATION:
        return False
    from snapshot_restore_py import register_after_restore, register_before_snapshot  # the runtime's

    register_before_snapshot(before_snapshot)
    register_after_restore(random.seed)
    register_after_restore(after_restore)
    return True
