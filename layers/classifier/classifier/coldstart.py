"""Cold-start helpers for the handler modules.

A handler's imports (Powertools, botocore, numpy, Pillow, LiteRT) create about 80,000 objects that
live as long as the process. While they are being created, CPython's cyclic garbage collector runs
about 180 times and scans them again and again: 70 to 100 ms of the predict function's cold start
here (``make bench``), for nothing, since none of them is garbage. Handlers therefore import under
:func:`gc_paused`, which also freezes what the imports made, so that later collections, on every
warm request, skip it too.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
