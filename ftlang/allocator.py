"""The C allocator `ftlang run` trains under: jemalloc when the system has it, else the C library's.

Measured on the quickstart (bench/RESULTS.md, `## estimator`): with glibc's malloc, CPU training whose
batches pad to different lengths fragments the heap, and peak RSS ends about 600 MiB (30%) above the
live tensors; under jemalloc the same 26 steps peak at the tensor estimate (0.98) and run as fast. So
`ftlang run` re-executes itself once with jemalloc preloaded when the library is installed (Debian:
libjemalloc2) and not already loaded. FTLANG_ALLOCATOR=system keeps the C library's malloc.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

#: set in the re-executed process, so a failed preload never loops
_GUARD = "FTLANG_ALLOCATOR_REEXEC"


def active_allocator() -> str:
    """"jemalloc" when it is mapped into this process, else "system" (the C library's malloc)."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
            if any("jemalloc" in line for line in f):
                return "jemalloc"
    except OSError:
        pass
    return "system"


def jemalloc_library() -> str | None:
    """The jemalloc shared object's name as the dynamic loader finds it, or None."""
    return ctypes.util.find_library("jemalloc")


def reexec_under_jemalloc(argv: list[str]) -> None:
    """Replace this process (same PID) with `python -m ftlang ARGV` under jemalloc, when that applies.

    Returns without doing anything on non-Linux systems, when FTLANG_ALLOCATOR=system, when jemalloc is
    missing or already loaded, or when this process is already the re-executed one."""
    if (not sys.platform.startswith("linux") or os.environ.get("FTLANG_ALLOCATOR", "").lower() == "system"
            or os.environ.get(_GUARD) or active_allocator() == "jemalloc"):
        return
    lib = jemalloc_library()
    if lib is None:
        return
    preload = " ".join(p for p in (lib, os.environ.get("LD_PRELOAD", "")) if p)
    env = {**os.environ, "LD_PRELOAD": preload, _GUARD: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "ftlang", *argv], env)
    except OSError:
        return  # the interpreter cannot be executed again: train under the C library's malloc
