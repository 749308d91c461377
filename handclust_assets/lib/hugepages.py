"""numpy's huge-page hint, turned off where the kernel stalls on it.

numpy asks the kernel to back every large array with transparent huge pages (`madvise(MADV_HUGEPAGE)`). Where the
kernel's THP `defrag` setting is `madvise` (or `always`, `defer+madvise`), it then compacts memory synchronously to find each 2-MB
page, so every fresh large temporary faults through compaction. The counter's lag maps are such temporaries, tens
of MB each. Measured on the 2-core VM the project runs on (THP `enabled` and `defrag` both `madvise`), the
rhythm path of a 38-s clip with 6 rests (`benchmarks/bench_rhythm.py --hugepages`): 3.9 s with the hint
(7.7 s of system time over 3 runs), 2.9 s without (2.5 s); steady strokes 2.1 -> 1.8 s; the same counts.
Where `defrag` is `defer` or `never` the hint costs nothing and is left on. A user's own NUMPY_MADVISE_HUGEPAGE
is never overridden.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

THP = Path("/sys/kernel/mm/transparent_hugepage")
ENV = "NUMPY_MADVISE_HUGEPAGE"  # numpy reads it when it is imported (0: no hint)


def _chosen(text: str) -> str:
    """The bracketed choice of a sysfs mode list ("always defer [madvise] never" -> "madvise"), "" if none."""
    lo, hi = text.find("["), text.find("]")
    return text[lo + 1:hi].strip() if 0 <= lo < hi else ""


def hugepages_stall(thp: Path = THP) -> bool:
    """Whether numpy's huge-page hint makes large allocations stall: THP is not `never` and its `defrag` is
    `always`, `madvise` or `defer+madvise` (direct compaction for hinted memory; `defer` compacts in the
    background). False where the settings cannot be read."""
    try:
        enabled, defrag = (thp / "enabled").read_text(), (thp / "defrag").read_text()
    except OSError:
        return False
    return _chosen(enabled) in ("always", "madvise") and _chosen(defrag) in ("always", "madvise", "defer+madvise")


def avoid_hugepage_stalls(thp: Path = THP) -> bool:
    """Turn numpy's huge-page hint off where it stalls (`hugepages_stall`), unless NUMPY_MADVISE_HUGEPAGE is set
    already: in the environment (for a numpy imported later and the processes started from here: Dagster's run
    workers, the CLI's children) and, if numpy is imported already, in numpy itself. Returns whether it did."""
    if ENV in os.environ or not hugepages_stall(thp):
        return False
    os.environ[ENV] = "0"
    if "numpy" in sys.modules:  # it read the setting at its import: change it in place
        try:
            from numpy._core import multiarray

            multiarray._set_madvise_hugepage(False)
        except (ImportError, AttributeError):  # another numpy layout: the environment still holds for children
            pass
    return True
