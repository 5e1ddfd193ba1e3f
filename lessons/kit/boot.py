"""Start a program as ``__main__`` so that it dies with the server, whether it uses the kit or not.

    python -m lessons.kit.boot -m lessons.03_producer_consumer ARGS...
    python -m lessons.kit.boot path/to/prog.py ARGS...

The server launches every worker through this. Before the program's first line:

1. **Parent-death signal** (Linux): ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills us
   when the server dies, however it dies and whatever our threads are doing (no handler has to
   run). Elsewhere this step is skipped quietly. Two limits of the kernel's rule: "parent" means
   the *thread* that started us, so the server must start workers from a thread that outlives the
   run (its supervisor thread does); and SIGKILL ends this process only, not children a plain
   program started. A lesson that calls ``kit.setup`` replaces the signal with SIGHUP and a
   handler that kills the whole process group, plus the pipe watchdog (see :mod:`.control`).
2. **Already orphaned?** If the server died before step 1, no signal will ever come: our parent
   is no longer ``THREADLAB_PARENT_PID`` (we were re-parented), so we exit with 137 at once. The
   check must come after step 1; the other way round, a death between the two would go unseen.
3. **Run the target** as ``python -m MODULE`` / ``python PATH`` would: as ``__main__``, with
   ``sys.argv[0]`` the target's file and, for a path, ``sys.path[0]`` its folder (replacing ours).
   ``SystemExit(n)`` exits with n; an uncaught exception prints its traceback (without this
   launcher's and runpy's frames) on stderr and exits with 1. One difference: for a path,
   ``sys.argv[0]`` is absolute, as ``__file__`` is under plain ``python``.

Deliberately tiny and stdlib-only: ``python -m lessons.kit.boot`` imports ``lessons/kit/__init__``
first, which is kept light for this reason (no logging, json or sampler; about 5 ms).
"""

from __future__ import annotations

import os
import sys

USAGE = "usage: python -m lessons.kit.boot (-m MODULE | PATH) [ARGS...]"
PARENT_GONE_EXIT = 137  # 128 + SIGKILL: what the parent-death signal would have made of us
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_SIGKILL = 9


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL us when our parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc to load, or a libc without prctl
        return False


def parent_gone() -> bool:
    """True when the server that started us (``THREADLAB_PARENT_PID``) is no longer our parent."""
    expected = os.environ.get("THREADLAB_PARENT_PID")
    return bool(expected) and str(os.getppid()) != expected


def _launcher_frame(tb) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    return filename in (__file__, "<frozen runpy>") or filename.startswith(
        ("<frozen importlib", os.path.join(os.path.dirname(os.__file__), "runpy.py"))
    )


def run(argv: list[str]) -> None:
    """Run the target named by ``argv`` (see the module docstring); return if it returns."""
    import runpy

    if argv[0] == "-m":
        module = argv[1]
        sys.argv = [module, *argv[2:]]  # runpy puts the module's file in argv[0]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    path = os.path.abspath(argv[0])
    if not os.path.exists(path):  # python's own words and code for a missing script
        print(f"{sys.executable}: can't open file {path!r}: [Errno 2] No such file or directory",
              file=sys.stderr)
        raise SystemExit(2)
    sys.argv = [path, *argv[1:]]
    sys.path[0] = os.path.dirname(os.path.realpath(path))  # python PATH: its folder, not ours
    runpy.run_path(path, run_name="__main__")


def main(argv: list[str], *, watched: bool = False) -> None:
    """Run the program in ``argv``. ``watched``: the caller has already tied this process to the
    server's life in its own way (the runner's kit.setup kills the whole group), which step 1's
    plain parent-death SIGKILL would replace."""
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    if not watched:
        die_with_parent()
    if parent_gone():
        os._exit(PARENT_GONE_EXIT)  # nothing of the program has run: nothing to flush
    try:
        run(argv)
    except Exception as exc:  # SystemExit and KeyboardInterrupt go on to python, as usual
        tb = exc.__traceback__
        while tb is not None and _launcher_frame(tb):
            tb = tb.tb_next
        if tb is None and isinstance(exc, ImportError):
            # Raised by runpy itself (no such module), not by the program: python's one line.
            print(f"{sys.executable}: {exc}", file=sys.stderr)
        else:
            # The traceback goes on the exception too: the default hook prints the exception's own
            # __traceback__ when it has one, not the one passed. The program's hook, if it set one.
            sys.excepthook(type(exc), exc.with_traceback(tb), tb)
    else:
        return
    raise SystemExit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
