"""The recording `pulumi` double (tests/fakepulumi/pulumi) and its fixture.

`fake_pulumi` puts the double first on PATH with a file backend in tmp_path;
`FakePulumi.calls()` reads back every argv/env it was given. A test double of
the CLI's contract only: rollback/ never refers to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIG = "4dabf18193072939515e22adb298388d"
SECRET = "1b47061264138c4ac30d75fd1eb44270"


@dataclass
class FakePulumi:
    bin_dir: Path
    backend: Path
    log: Path
    scenario_path: Path

    @property
    def url(self) -> str:
        return f"file://{self.backend}"

    def scenario(self, **doc: Any) -> None:
        self.scenario_path.write_text(json.dumps(doc))

    def drift(self, **by_name: list[str]) -> None:
        """Change resources by hand, behind the stack's back."""
        (self.backend / "drift.json").write_text(json.dumps(by_name))

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def calls(self) -> list[dict[str, Any]]:
        """Commands, `--non-interactive` dropped; `version` probes left out."""
        found = []
        for entry in self.entries():
            if "argv" in entry and entry["argv"] != ["version"]:
                found.append(
                    entry | {"argv": [a for a in entry["argv"] if a != "--non-interactive"]}
                )
        return found

    def argvs(self, *head: str) -> list[list[str]]:
        return [c["argv"] for c in self.calls() if c["argv"][: len(head)] == list(head)]

    def interpreters(self) -> list[dict[str, str]]:
        return [e for e in self.entries() if "interpreter" in e]

    def lock_dir(self, project: str, stack: str) -> Path:
        return self.backend / ".pulumi" / "locks" / "organization" / project / stack
