"""Smoke step: run the release's functional tests or workflow script against a colour.

The command runs without a shell (a string is split as a shell would split
it) in its own process group, with the target colour's URLs added to its
environment. It passes on exit 0 within the deadline; on timeout the whole
group is killed. Output (stdout and stderr merged) goes to a temporary file,
so memory stays flat, and the evidence keeps its head and tail.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
from typing import IO, Any

from rollback.errors import UsageError
from rollback.models import Evidence, StepDescription, Topology
from rollback.steps import Applied, evidence
from rollback.waiting import Timing

KILL_GRACE_S = 2.0


def colour_env(topology: Topology, colour: str) -> dict[str, str]:
    """ROLLBACK_TARGET_COLOR, ROLLBACK_TARGET_URL (first health URL) and ROLLBACK_HEALTH_URLS."""
    urls = topology.health_urls.get(colour) or []
    return {
        "ROLLBACK_TARGET_COLOR": colour,
        "ROLLBACK_TARGET_URL": urls[0] if urls else "",
        "ROLLBACK_HEALTH_URLS": " ".join(urls),
    }


class SmokeStep:
    """Pass when `command` exits 0 within `deadline_s` with `env_urls` in its environment."""

    kind = "smoke"

    def __init__(
        self,
        command: list[str] | str,
        env_urls: dict[str, str],
        deadline_s: float = 300.0,
        max_output_chars: int = 4000,
        timing: Timing | None = None,
    ) -> None:
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not argv:
            raise UsageError("the smoke command is empty.")
        if deadline_s <= 0 or max_output_chars < 100:
            raise UsageError(
                "the smoke deadline must be > 0 and the output limit at least 100 characters."
            )
        self.argv = argv
        self.env_urls = dict(env_urls)
        self.deadline_s = deadline_s
        self.max_output_chars = max_output_chars
        self.timing = timing or Timing()

    def describe(self) -> StepDescription:
        return StepDescription(
            kind=self.kind,
            summary=f"run {shlex.join(self.argv)} against the target colour (deadline {self.deadline_s:g}s)",
            changes={
                "command": list(self.argv),
                "env": dict(self.env_urls),
                "deadline_s": self.deadline_s,
            },
            reason="prove user workflows work on the target colour",
            expected_seconds=min(self.deadline_s, 30.0),
        )

    def apply(self) -> Applied:
        """Nothing to change: the smoke test only observes."""
        return Applied(changed=False)

    def compensate(self, prior: dict[str, Any]) -> None:
        """Nothing to put back."""

    def verify(self) -> list[Evidence]:
        """Run the command once; ok on exit 0 before the deadline. Never raises for its failure."""
        observed: dict[str, Any] = {"command": list(self.argv), "env": dict(self.env_urls)}
        env = {**os.environ, **self.env_urls}
        started = self.timing.clock()
        with tempfile.TemporaryFile(mode="w+b") as out:
            try:
                proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own process group, killed as one
                )
            except OSError as exc:
                observed.update(exit_code=None, output="")
                return [
                    evidence("process", observed, False, f"could not start {self.argv[0]}: {exc}")
                ]
            timed_out = False
            try:
                code: int | None = proc.wait(timeout=self.deadline_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                code = _kill_group(proc)
            observed.update(
                exit_code=code,
                seconds=round(self.timing.clock() - started, 3),
                output=_head_and_tail(out, self.max_output_chars),
                timed_out=timed_out,
            )
        if timed_out:
            note = f"killed after the {self.deadline_s:g}s deadline"
        elif code != 0:
            note = f"exited with {code}"
        else:
            note = ""
        return [evidence("process", observed, not timed_out and code == 0, note)]


def _kill_group(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM the process group, SIGKILL it after a grace period; the exit code."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def _head_and_tail(out: IO[bytes], limit: int) -> str:
    """The output as text, cut in the middle to about `limit` characters when longer."""
    size = out.seek(0, os.SEEK_END)
    out.seek(0)
    if size <= limit:
        return out.read().decode("utf-8", "replace")
    half = limit // 2
    head = out.read(half).decode("utf-8", "replace")
    out.seek(size - half)
    tail = out.read(half).decode("utf-8", "replace")
    return f"{head}\n[... {size - 2 * half} bytes cut ...]\n{tail}"
