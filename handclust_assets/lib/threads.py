"""Share one machine's cores between the clip runs that execute on it at the same time.

Each clip run is its own process; torch (OpenMP), OpenCV and MediaPipe each start as many worker threads as the
machine has cores. Two runs on two cores then run four compute threads, and OpenMP's spin-waiting threads make
that far slower than two: on 2 cores, the scene embeddings of a 45-s clip took 16 s beside another run instead
of 4 s alone (`benchmarks/bench_product_path.py`). So each step sets its libraries to cores / runs in progress.
"""

from __future__ import annotations

import os
import sys


def physical_cores() -> int:
    """This machine's physical cores: what torch uses by default (os.cpu_count() where psutil cannot tell), so
    a run alone keeps the library defaults."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def threads_per_run(active_runs: int, cores: int | None = None) -> int:
    """Threads for one of `active_runs` concurrent runs on `cores` (default: `physical_cores()`), at least 1."""
    cores = cores if cores is not None else physical_cores()
    return max(1, int(cores) // max(1, int(active_runs)))


def use_threads(n: int) -> None:
    """Intra-op threads of this process's numeric libraries: torch now if it is imported (else OMP_NUM_THREADS,
    which it reads when imported), OpenCV if it is imported, and the BLAS / LAPACK that numpy has loaded (which
    read OMP_NUM_THREADS only when loaded: two runs with two BLAS threads each on two cores made one 300 x 300
    eigh take 1.3 s instead of 8 ms)."""
    n = max(1, int(n))
    os.environ["OMP_NUM_THREADS"] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(n)
