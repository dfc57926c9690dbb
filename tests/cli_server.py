"""Forks runs of experiments/run.py for the end-to-end tests (see cli_runs.py, which starts this script).

It imports the CLI's modules once (PyTorch, Lightning, Hydra, every stage: about 10 s on 2 cores) and then
forks one child per requested run; each child sets its working directory, environment, argv and output files
and runs experiments/run.py as ``__main__``, as ``python experiments/run.py ...`` would, exiting with its exit
code. Nothing computes before a fork and no thread runs (checked), so every child starts from the same
just-imported state, safe to fork.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.
    {"start": {"args": [...], "cwd": ..., "env": {...}, "stdout": path, "stderr": path}}  ->  {"pid": n}
    {"poll": n}  ->  {"returncode": null | code}   (a negative code: killed by that signal, as subprocess says)
"""

import json
import os
import runpy
import signal
import sys
import threading
import traceback
from pathlib import Path

RUN = Path(__file__).resolve().parents[1] / "experiments" / "run.py"


def _import_the_cli_modules() -> None:
    """What run.py imports, every stage module and the libraries a run then imports; nothing is run."""
    import hydra  # noqa: F401
    import matplotlib.pyplot  # noqa: F401  (the stages' figures)
    import timm  # noqa: F401  (the backbones)

    import semrsm.storage  # noqa: F401
    from semrsm.pipeline.stages import available_stages

    available_stages()
    if threading.active_count() != 1:
        raise RuntimeError(f"importing the CLI started threads, unsafe to fork: {threading.enumerate()}")


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _child(request: dict) -> None:
    """In the forked child: become ``python experiments/run.py <args>`` and exit with its exit code."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        out = _open(request["stdout"])
        os.dup2(out, 1)
        os.dup2(out if request["stderr"] == request["stdout"] else _open(request["stderr"]), 2)
        sys.argv = [str(RUN), *request["args"]]
        sys.path[0] = str(RUN.parent)  # as for `python experiments/run.py`
        try:
            runpy.run_path(str(RUN), run_name="__main__")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001  (a closed or full output must not keep the child alive)
                pass
        os._exit(code)


def _returncode(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve() -> None:
    _import_the_cli_modules()
    children: dict[int, int | None] = {}
    answer = sys.stdout
    print(json.dumps({"ready": True}), file=answer, flush=True)
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if "start" in request:
                pid = os.fork()
                if pid == 0:
                    _child(request["start"])
                children[pid] = None
                reply = {"pid": pid}
            else:
                pid = request["poll"]
                if children[pid] is None:
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        children[pid] = _returncode(status)
                reply = {"returncode": children[pid]}
            print(json.dumps(reply), file=answer, flush=True)
    finally:  # the tests have ended (stdin closed): no run outlives them
        for pid, code in children.items():
            if code is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


if __name__ == "__main__":
    serve()
