"""Bad input nobody here chose: seeded random command lines against a store with releases.

Each example runs the console script's entry point in-process (click's runner,
error handler included) against a local store holding two releases, with the
AWS clients replaced by stand-ins that raise CloudCall on any call: a command
that calls the cloud with input it should have refused is caught, not sent
anywhere (building clients is allowed; calling them is not). For every example:

- the exit code is a documented one, and the right one for what was wrong;
- no traceback, and a refusal is one `error:` line that shows no store key;
- `-o json` prints one strict JSON document (no NaN, no Infinity);
- a refused command leaves the store's files (paths and bytes) as they were.

The generator is `random.Random(SEED)` (hypothesis is not installed here): the
same examples on every run, about ten seconds for EXAMPLES of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from rollback.cli import main as root
from rollback.cli.factory import Factory
from rollback.releases import Attachments, Registry
from rollback.store import open_store
from tests.unit.test_releases import commit, make_repo

SEED = 20261201
EXAMPLES = 1000
DOCUMENTED = {0, 1, 2, 3, 4}
STACK = "webapp/dev"


class CloudCall(Exception):
    """Raised by the stand-in AWS clients on any call: the command reached for the cloud."""


class NoCloud:
    """AWS clients whose every call raises CloudCall: commands may build them, not use them."""

    endpoint_url = None
    region = "us-east-1"

    def __call__(self, service: str) -> Any:
        return _Refusing(service)

    def lazy(self, service: str) -> Any:
        return _Refusing(service)

    def __getattr__(self, name: str) -> Any:
        raise CloudCall(f"the command reached for the cloud ({name})")


class _Refusing:
    def __init__(self, service: str) -> None:
        self.service = service

    def __getattr__(self, name: str) -> Any:
        if name == "meta":  # event registration, region: not a call
            raise CloudCall(f"the command reached for {self.service}.meta")
        raise CloudCall(f"the command reached for {self.service}.{name}")


# -- the pieces inputs are made of -------------------------------------------

UNICODE_DIGITS = "\u0661\u0662\u06f3\u0967\uff11\U0001d7e0\u2460\u00b2"
WHITESPACE = [" ", "\t", "\n", "\u00a0", "\u2003", "\u200b", "\u2028", "\x0b", "\x1f"]
ODD = [
    "..",
    "/",
    "\\",
    "%2e",
    "\x00",
    "\x7f",
    "'",
    '"',
    "{",
    "}",
    "$HOME",
    "~",
    "*",
    "\u202e",
    "é",
    "🙂",
]


@dataclass(frozen=True)
class Case:
    argv: list[str]
    expect: int | None  # the exit code a refusal must have; None: any documented code
    cloud_ok: bool = False  # a valid request may go on to the (sentinel) cloud
    toml: str | None = None


def _semver_ok(text: str) -> bool:
    """An independent oracle: ASCII semantic version, optional leading v, no surrounding junk."""
    core = r"(0|[1-9][0-9]*)"
    ident = r"(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    pattern = (
        rf"v?{core}\.{core}\.{core}(-{ident}(\.{ident})*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
    )
    # Surrounding whitespace (any: str.strip) is forgiven, as parse_version does.
    return re.fullmatch(pattern, text.strip(), re.ASCII) is not None


_DURATION = re.compile(r"(?:N|(?:Nh)?(?:Nm)?(?:Ns)?)".replace("N", r"[0-9]+(?:\.[0-9]+)?"))
WEEK = 7 * 24 * 3600


def _duration_ok(text: str) -> bool:
    t = text.strip().lower()
    if not t or not _DURATION.fullmatch(t):
        return False
    total, number = 0.0, ""
    for c in t:
        if c in "hms":
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[c]
            number = ""
        else:
            number += c
    if number:
        total += float(number)
    return total <= WEEK


def _int_ok(text: str, low: int) -> bool:
    t = text.strip()
    return re.fullmatch(r"[+-]?[0-9]+", t, re.ASCII) is not None and int(t) >= low


def _float_ok(text: str, low: float, high: float) -> bool:
    t = text.strip()
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", t, re.ASCII):
        return False
    return low < float(t) < high


def _rate_ok(text: str) -> bool:
    t = text.strip()
    if t.endswith("%"):
        return _float_ok(t[:-1], -1e-9, 100 + 1e-9)
    return _float_ok(t, -1e-9, 1 + 1e-9)


class Gen:
    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def pick(self, *options: str) -> str:
        return self.r.choice(options)

    def junk(self, n: int = 3) -> str:
        pool = [*WHITESPACE, *ODD, *UNICODE_DIGITS, "a", "Z", "0", "9", "-", ".", "_", "+"]
        return "".join(self.r.choice(pool) for _ in range(self.r.randint(1, n)))

    def version(self) -> str:
        r = self.r
        base = r.choice(["1.4.0", "1.5.0", "0.0.0", "2.0.0", "1.4.0-rc.1", "1.4.0+build.5"])
        kind = r.randrange(14)
        if kind == 0:
            return base
        if kind == 1:  # a unicode digit somewhere
            i = r.randrange(len(base))
            return base[:i] + r.choice(UNICODE_DIGITS) + base[i + 1 :]
        if kind == 2:
            return r.choice(WHITESPACE) + base + r.choice(WHITESPACE)
        if kind == 3:
            return "1." * r.randint(50, 3000) + "0"
        if kind == 4:
            return r.choice(["01.4.0", "1.04.0", "1.4.00", "00.0.0"])
        if kind == 5:
            return r.choice(["v", "V", "vv", "v ", "version "]) + base
        if kind == 6:
            return base.split("-")[0].split("+")[0] + r.choice(
                [
                    "-",
                    "+",
                    "-rc..1",
                    "-01",
                    "+",
                    "-rc.1+",
                    "-rc.1+b..1",
                    "-\u00e9",
                    "+build/1",
                    "-" + "a" * 5000,
                ]
            )
        if kind == 7:
            return r.choice(["", " ", "last-stable", "LAST-STABLE", "last-stable ", "latest", "-"])
        if kind == 8:
            return str(r.choice([10**30, -1, 0])) + ".0.0"
        if kind == 9:
            return base.replace(".", r.choice(["..", ",", "\u3002", "/", "\uff0e"]), 1)
        if kind == 10:
            return "../" * r.randint(1, 4) + base
        if kind == 11:
            return base + r.choice(["\n", "\x00", "\u200b", "/x", "/../x", ".json"])
        if kind == 12:
            return self.junk(8)
        return "9" * r.randint(20, 400) + ".0.0"

    def stack(self) -> str:
        r = self.r
        return r.choice(
            [
                "",
                " ",
                "webapp",
                "webapp/",
                "/dev",
                "webapp/dev/x",
                "webapp/..",
                "../dev",
                "./dev",
                "webapp/.",
                "webapp/.hidden",
                ".webapp/dev",
                "webapp/d\u00e9v",
                "webapp/dev\u200b",
                "webapp/\u0661",
                "webapp/dev\x00",
                "webapp/dev\x7f",
                "webapp\\dev",
                "webapp/" + "d" * r.randint(200, 5000),
                "web app/dev",
                "webapp/dev,",
                ",webapp/dev",
                "webapp/dev,webapp/prod",
                "webapp/*",
                "webapp/%2e%2e",
                "webapp/" + self.junk(4),
                self.junk(3) + "/" + self.junk(3),
                STACK,
                "webapp/prod",
            ]
        )

    def store(self, work: Path) -> str:
        r = self.r
        return r.choice(
            [
                "",
                " ",
                "nonexistent",
                str(work / "missing" / "deeper"),
                "rollback.toml",  # a file (written below for every example)
                "a-file",
                "artifacts",
                "./artifacts",
                "artifacts/",
                "artifacts/releases",
                "../" * 30,
                "file://remote/x",
                "file:///" + str(work / "artifacts").lstrip("/"),
                "ftp://x/y",
                "s3://",
                "://",
                "artifacts\x00",
                "~nobody-here/x",
                "a" * 5000,
                "d\u00e9j\u00e0",
            ]
        )

    def duration(self) -> str:
        r = self.r
        return r.choice(
            [
                "1m30s",
                "0s",
                "0",
                "-1s",
                "1e9h",
                "nan",
                "inf",
                "-inf",
                "\u0661s",
                "1\u0662m",
                "",
                " ",
                "1h30m",
                "1.5s",
                ".5s",
                "5.s",
                "1H",
                "1d",
                "s",
                "m",
                "1s1m",
                "9" * r.randint(20, 400) + "h",
                "9" * 400,
                "1_000s",
                "10\n",
                "+5s",
                "0x10s",
                "１s",
            ]
        )

    def number(self) -> str:
        return self.pick(
            "nan",
            "NaN",
            "inf",
            "-inf",
            "Infinity",
            "-0",
            "0",
            "-1",
            "1e309",
            "1e-400",
            "9" * 400,
            "1_000",
            "\u0661",
            "0x10",
            "",
            " ",
            "5%",
            "1.5",
            "3",
            "１",
        )

    def run_id(self) -> str:
        return self.pick(
            "",
            " ",
            "..",
            ".",
            "../../x",
            "../x",
            "/etc/passwd",
            "runs/webapp",
            "a/b",
            "x\\y",
            "r\u00e9un",
            "\u0661",
            "-rf",
            "--",
            "a" * 129,
            "a" * 128,
            "20261201T000000Z-abc",
            "x\n",
            "x\x00",
            "a..b",
            "A.json",
            "%2e%2e",
            "~",
            "run id",
            "🙂",
        )

    def toml(self) -> str:
        r = self.r
        return r.choice(
            [
                'stak = "webapp/dev"\n',
                "stack = 1\n",
                'store = ["a"]\n',
                'debug = "maybe"\n',
                "debug = 1\n",
                "health_deadline_s = inf\n",
                "health_deadline_s = nan\n",
                "health_deadline_s = -1\n",
                'health_deadline_s = "1m"\n',
                "health_deadline_s = true\n",
                "health_deadline_s = 1e300\n",
                'output = "yaml"\n',
                'engine = "terraform"\n',
                'stack = "webapp"\n',
                'stack = ""\n',
                'store = ""\n',
                'stacks = ["a/b"]\n',
                '[stack]\nname = "x"\n',
                'st\u00e4ck = "x"\n',
                '"" = 1\n',
                "x" * 3000 + " = 1\n",
                "this is not toml\n",
                'store = "artifacts\n',
                "\x00\n",
                "webhook_url = 5\n",
                'region = "\u0661"\n',
                'refresh = "perhaps"\n',
                'quiet = "yes"\n',
                'endpoint_url = "http://[::1"\n',
                'output = "json"\n',
                'stack = "webapp/d\u00e9v"\n',
                'store = "artifacts\\u0000"\n',
                'store = "~no-such-user-here/x"\n',
                "health_deadline_s = 604800.5\n",
            ]
        )

    def case(self, work: Path) -> Case:
        r = self.r
        kind = r.randrange(12)
        if kind == 0:  # a version argument
            v = self.version()
            ok = _semver_ok(v) or v == "last-stable"
            recorded = ok and v.strip().removeprefix("v") in ("1.4.0", "1.5.0")
            sub = r.choice(["show", "verify", "mark", "changelog", "plan", "to"])
            if sub == "mark":
                flags = r.choice(
                    [["--stable"], ["--bad"], ["--stable", "--bad"], [], ["--candidate"]]
                )
                argv = ["release", "mark", v, *flags]
                good = recorded or (v == "last-stable")
                return Case(argv, None if good and len(flags) == 1 else 2)
            if sub == "changelog":
                w = self.version()
                other_ok = _semver_ok(w) or w == "last-stable"
                argv = ["release", "changelog", *r.sample([v, w], 2)]
                return Case(argv, None if ok and other_ok else 2)
            if sub in ("plan", "to"):
                argv = [sub, v] + (["--yes"] if sub == "to" else [])
                return Case(
                    argv,
                    None if recorded or v == "last-stable" else 2,
                    cloud_ok=recorded or v == "last-stable",
                )
            return Case(["release", sub, v], None if ok else 2)
        if kind == 1:
            return Case(["--stack", self.stack(), self._light()], None)
        if kind == 2:
            return Case(["--store", self.store(work), self._light()], None)
        if kind == 3:
            d = self.duration()
            ok = _duration_ok(d)
            which = r.choice(["status", "bake", "pause", "interval", "window"])
            if which == "status":
                return Case(["status", "--interval", d], None if ok else 2)
            if which == "window":
                return Case(["watch", "--window", d], None if ok else 2, cloud_ok=ok)
            return Case(["cutover", "green", f"--{which}", d], None if ok else 2, cloud_ok=ok)
        if kind == 4:
            n = self.number()
            which = r.choice(
                ["keep", "p99", "rate", "failures", "parallel", "wait-timeout", "steps", "watch-to"]
            )
            if which == "keep":
                ok = _int_ok(n, 1)
                return Case(["release", "prune", "--keep", n, "--dry-run"], None if ok else 2)
            if which == "p99":
                ok = _float_ok(n, 0, 3_600_000)
                return Case(["cutover", "green", "--max-p99-ms", n], None if ok else 2, cloud_ok=ok)
            if which == "rate":
                ok = _rate_ok(n)
                return Case(
                    ["cutover", "green", "--max-5xx-rate", n], None if ok else 2, cloud_ok=ok
                )
            if which == "failures":
                ok = _int_ok(n, 1)
                return Case(
                    ["cutover", "green", "--health-failures", n], None if ok else 2, cloud_ok=ok
                )
            if which == "steps":
                steps = r.choice([n, f"10,{n}", f"{n},100"])
                parts = steps.split(",")
                ok = (
                    all(_int_ok(p, 1) for p in parts)
                    and [int(p) for p in parts] == sorted(set(int(p) for p in parts))
                    and int(parts[-1]) == 100
                )
                return Case(["cutover", "green", "--steps", steps], None if ok else 2, cloud_ok=ok)
            if which == "parallel":
                ok = _int_ok(n, 1)
                return Case(
                    ["to", "1.4.0", "--yes", "--parallel", n], None if ok else 2, cloud_ok=ok
                )
            if which == "watch-to":
                v = self.version()
                ok = _semver_ok(v) and v.strip().removeprefix("v") in ("1.4.0", "1.5.0")
                return Case(["watch", "--to", v], None if ok else 2, cloud_ok=ok)
            ok = _float_ok(n, -1e-9, 1e12)
            return Case(
                [
                    "to",
                    "1.4.0",
                    "--yes",
                    "--via-queue",
                    "https://sqs.invalid/q",
                    "--wait-timeout",
                    n,
                ],
                None if ok else 2,
                cloud_ok=ok,
            )
        if kind == 5:
            rid = self.run_id()
            return Case([r.choice(["resume", "report", "abort"]), rid], 2)
        if kind == 6:
            return Case([self._light()], None, toml=self.toml())
        if kind == 7:  # globals after the subcommand, maybe bad
            argv = [self._light()]
            extra = r.choice(
                [
                    ["-o", "json"],
                    ["--stack", self.stack()],
                    ["--store", self.store(work)],
                    ["-o", r.choice(["yaml", "", "JSON"])],
                ]
            )
            return Case(argv + extra, None)
        if kind == 8:
            return Case(["release", "mark", "1.4.0", "--stable", "--reason", self.junk(6)], None)
        if kind == 9:
            return Case(
                [
                    "release",
                    "record",
                    self.version(),
                    "--artifact",
                    r.choice(["app.tgz", "", "missing.tgz", ".", "a-file"]),
                    "--repo",
                    "iac",
                ]
                + r.choice(
                    [
                        [],
                        ["--migration-command", "x {revision}"],
                        ["--color", r.choice(["red", "", "GREEN"])],
                        ["--schema-revision", ""],
                    ]
                ),
                None,
                cloud_ok=True,
            )
        if kind == 10:
            return Case(["lock", "show"], None, toml=None)
        return Case(["history"], None)

    def _light(self) -> str:
        return self.r.choice(
            ["history", "status", "lock show", "release list", "release show 1.4.0", "report x1"]
        )


def _split(argv: list[str]) -> list[str]:
    """'lock show' as two arguments; everything else as given."""
    out: list[str] = []
    for a in argv:
        out.extend(
            a.split(" ")
            if a in ("lock show", "release list", "release show 1.4.0", "report x1")
            else [a]
        )
    return out


# -- the store and the runner -------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz-template")
    repo = make_repo(base / "iac")
    (base / "app.tgz").write_bytes(b"app")
    registry = Registry(open_store(str(base / "artifacts")), STACK)
    for version in ("1.4.0", "1.5.0"):
        commit(repo, "main.py", version, f"feat: {version}")
        registry.record(
            version,
            base / "app.tgz",
            Path(repo.working_dir),
            attachments=Attachments(color="green", schema_revision="r1"),
        )
    registry.mark("1.4.0", "stable", "baked")
    (base / "a-file").write_text("not a store")
    return base


def tree(root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            found[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def entry(args: tuple[str, ...]) -> None:
    root.main(list(args))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 240 else text[:160] + f"...({len(text)} chars)..." + text[-60:]


def _reject(constant: str) -> Any:
    raise ValueError(f"{constant} in JSON")


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    exception: BaseException | None


def problems(
    case: Case, argv: list[str], result: Outcome, before: dict[str, str], after: dict[str, str]
) -> list[str]:
    found = []
    code, out, err = result.code, result.out, result.err
    cloud = "CloudCall" in err
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        found.append(f"escaped {type(result.exception).__name__}: {result.exception}")
    if "Traceback" in out + err:
        found.append("traceback in output")
    if cloud:
        if not case.cloud_ok:
            found.append("reached for the cloud with input it should have refused")
        return found  # the rest of its run is the sentinel's doing
    if code not in DOCUMENTED:
        found.append(f"exit {code} is not a refusal's code")
    if case.expect is not None and code != case.expect:
        found.append(f"exit {code}, expected {case.expect}")
    if code != 0:
        lines = [ln for ln in err.splitlines() if ln.lower().startswith("error:")]
        if len(lines) != 1:
            found.append(f"{len(lines)} error lines")
        for line in lines:
            if "store key" in line or re.search(r"\b(releases|runs|locks|stops)/[^ ]*/", line):
                found.append("a store key in the message")
            if re.search(r"<[a-zA-Z_.]+ object at|Errno|\w+Error\(|internal error", line):
                found.append("a raw exception in the message")
        if before != after:
            changed = sorted(set(before.items()) ^ set(after.items()))
            found.append(f"store changed by a refused command: {changed[:3]}")
    if "json" in argv and out.strip():
        try:
            doc = json.loads(out, parse_constant=_reject)
        except ValueError as exc:
            found.append(f"-o json printed no strict JSON document: {exc}")
        else:
            if code != 0 and isinstance(doc, dict) and doc.get("exit_code") != code:
                found.append(f"JSON exit_code {doc.get('exit_code')} != {code}")
    return found


@pytest.fixture
def workdir(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    work = tmp_path / "work"
    shutil.copytree(template, work, symlinks=True)
    monkeypatch.chdir(work)

    monkeypatch.setattr(Factory, "clients", lambda self: NoCloud())
    yield work


def run_case(
    runner: CliRunner, work: Path, template: Path, argv: list[str], toml: str | None
) -> tuple[Outcome, dict[str, str], dict[str, str]]:
    config = work / "rollback.toml"
    if toml is not None:
        config.write_text(toml, errors="surrogatepass")
    elif config.exists():
        config.unlink()
    before = tree(work / "artifacts")
    for handler in logging.getLogger().handlers[:]:
        if type(handler) is logging.StreamHandler:  # basicConfig's: bind it to this run's stderr
            logging.getLogger().removeHandler(handler)
    result = runner.invoke(entry, argv, catch_exceptions=True)
    after = tree(work / "artifacts")
    if before != after:  # a command that succeeded changed it: start the next one afresh
        shutil.rmtree(work / "artifacts")
        shutil.copytree(template / "artifacts", work / "artifacts", symlinks=True)
    stderr = result.stderr if hasattr(result, "stderr") else ""
    return Outcome(result.exit_code, result.stdout, stderr, result.exception), before, after


def cases(count: int, work: Path) -> Iterator[tuple[list[str], Case]]:
    gen = Gen(random.Random(SEED))
    for _ in range(count):
        case = gen.case(work)
        argv = _split(case.argv)
        r = gen.r.random()
        if r < 0.3:
            argv = ["-o", "json", *argv]
        elif r < 0.45:
            argv = [*argv, "-o", "json"]
        yield argv, case


def test_bad_input_nobody_chose(workdir: Path, template: Path) -> None:
    runner = CliRunner()
    failures: dict[str, list[str]] = {}
    for argv, case in cases(EXAMPLES, workdir):
        result, before, after = run_case(runner, workdir, template, argv, case.toml)
        for problem in problems(case, argv, result, before, after):
            key = problem.split(":")[0]
            failures.setdefault(key, []).append(
                f"{_short(argv)} toml={_short(case.toml)} -> exit {result.code}; "
                f"err={_short(result.err.strip())}"
            )
    report = "\n".join(f"{k} ({len(v)}x)\n    " + "\n    ".join(v[:4]) for k, v in failures.items())
    assert not failures, report
