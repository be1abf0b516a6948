"""How many threads the package's own pools use."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor


def thread_count():
    """The cores this process may run on (a container's or a scheduler's CPU set, not the
    machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_pool, _pool_lock = None, threading.Lock()


def _forget_pool():
    """A forked child (a PyTorch DataLoader worker, multiprocessing's fork) has none of the
    parent's threads: its copy of the pool would take tasks that nothing runs. It makes its own."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def shared_pool():
    """One pool of ``thread_count()`` threads for the package's CPU work that releases the GIL
    (zlib's CRC-32 and compression, numpy's sort), made on first use. Its tasks never submit to
    it themselves (a task waiting on one queued behind it would wait forever)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(thread_count(), thread_name_prefix="mtl_model")
        return _pool
