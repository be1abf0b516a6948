"""How many threads the package's own pools use."""
import os


def thread_count():
    """The cores this process may run on (a container's or a scheduler's CPU set, not the
    machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
