"""``python experiments/run.py ...`` for the end-to-end tests, each run in a process of its own but forked from
one that has imported the CLI's modules already (cli_server.py): about 10 s less per run on 2 cores.

    done = cli.run(["experiment=extract", ...], cwd=root, env=env)      # like subprocess.run(capture_output)
    process = cli.start([...], cwd=root, env=env)                        # like Popen(stderr=STDOUT)
    process.poll(); process.kill(); process.wait(); process.output()

A child is a real process (its own pid, files, locks and exit code, killable with SIGKILL), so the fault tests
keep their meaning; what it skips is only the interpreter's start and the imports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SERVER = Path(__file__).with_name("cli_server.py")


def run_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run under ``root`` (SEMRSM_ROOT), offline, W&B disabled, plus ``extra``."""
    return {**os.environ, "SEMRSM_ROOT": str(root), "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", **extra}


@dataclass
class Completed:
    """The part of ``subprocess.CompletedProcess`` the tests read."""

    returncode: int
    stdout: str
    stderr: str


class CliProcess:
    """One forked run; its stdout and stderr go to files, one file for both when started that way."""

    def __init__(self, server: CliServer, pid: int, stdout: Path, stderr: Path):
        self._server, self.pid, self._stdout, self._stderr = server, pid, stdout, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.ask({"poll": self.pid})["returncode"]
        return self.returncode

    def wait(self, timeout: float = 300) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise subprocess.TimeoutExpired(["experiments/run.py"], timeout)
            time.sleep(0.02)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)

    def output(self) -> str:
        return self._stdout.read_text(errors="replace")

    def errors(self) -> str:
        return self._stderr.read_text(errors="replace")


class CliServer:
    """The forking server, started on first use; ``close`` ends it (and kills any run still going)."""

    def __init__(self, logs: Path) -> None:
        self._process: subprocess.Popen | None = None
        self._logs = logs  # the runs' stdout and stderr files
        self._count = 0

    def ask(self, request: dict) -> dict:
        if self._process is None:
            self._process = subprocess.Popen(
                [sys.executable, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            ready = self._process.stdout.readline()
            if not ready:
                raise RuntimeError(f"{SERVER.name} did not start (exit code {self._process.wait()})")
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            raise RuntimeError(f"{SERVER.name} ended (exit code {self._process.wait()})")
        return json.loads(answer)

    def start(self, args: list[str], cwd: Path, env: dict[str, str], merge_stderr: bool = True) -> CliProcess:
        """Start ``experiments/run.py <args>`` in ``cwd`` with exactly the environment ``env``."""
        self._count += 1
        stdout = self._logs / f"{self._count}.out"
        stderr = stdout if merge_stderr else self._logs / f"{self._count}.err"
        for path in {stdout, stderr}:
            path.write_text("")
        request = {
            "args": list(args),
            "cwd": str(cwd),
            "env": env,
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        return CliProcess(self, self.ask({"start": request})["pid"], stdout, stderr)

    def run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> Completed:
        """Run ``experiments/run.py <args>`` to its end; its exit code, stdout and stderr."""
        process = self.start(args, cwd, env, merge_stderr=False)
        process.wait(timeout)
        return Completed(process.returncode, process.output(), process.errors())

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=60)
            self._process.stdout.close()
            self._process = None
