"""The cyclic garbage collector, paused while a command starts and until a rollback's first change.

Start-up makes hundreds of thousands of objects that live until exit (modules, click's
commands, botocore's service models and clients, the plan) and almost no garbage cycles,
while CPython 3.11 walks its young objects every 700 allocations and all of them now and
then: about 140 collections, 60-85 ms of `rollback to`'s main thread before traffic moved
(measured with `gc.callbacks`), a few ms of `rollback release list`.

So the CLI pauses the collector when it is imported (`pause`), and it runs again
(`resume`) when the command's own work starts (the root command's callback), except for
a single-stack `to` or `emergency`: there it runs again once the run's first change is
applied (traffic goes first, and nothing before it makes garbage worth collecting), or
before a first change that runs a stack program. `resume` is a no-op unless `pause` paused
it: a library caller's collector is never touched.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Stop automatic collections, if they run (a collector already off stays as it is)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Start automatic collections again, if `pause` stopped them."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()
