"""`--engine auto|pulumi|embedded`: which StackEngine runs the program.

`auto` picks the embedded engine when the endpoint is the embedded cloud (a
moto server on loopback: a rehearsal, whose state the embedded engine keeps
next to it), else the Pulumi CLI when it is on PATH; a rollback of real AWS
never falls back to the embedded engine. The choice is logged with its reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from rollback.config import ENGINES
from rollback.errors import ConfigError

if TYPE_CHECKING:
    from rollback.aws.session import Clients
    from rollback.engine import StackEngine
    from rollback.store import Store

logger = logging.getLogger(__name__)


def engine_choice(name: str, *, endpoint_url: str | None) -> str:
    """The engine `select_engine` builds for `name`: "pulumi" or "embedded", without building it.

    Probes only PATH and the endpoint (one HTTP request): preflight asks this
    before a traffic-first rollback, which must not pay for an engine. Raises
    ConfigError as `select_engine` does.
    """
    from rollback.engine.pulumi_cli import CLI_MISSING, cli_available

    if name not in ENGINES:
        raise ConfigError(f"engine {name!r} is unknown; choose one of {', '.join(ENGINES)}.")
    from rollback.aws.endpoint import is_embedded_endpoint

    embedded_target = name != "pulumi" and is_embedded_endpoint(endpoint_url)
    if name == "pulumi" or (name == "auto" and not embedded_target and cli_available()):
        if not cli_available():
            raise ConfigError(CLI_MISSING)
        if name == "auto":
            logger.info("engine: pulumi (the Pulumi CLI is on PATH; --engine to choose)")
        return "pulumi"
    if name == "auto" and not embedded_target:
        target = f"the endpoint {endpoint_url}" if endpoint_url else "AWS (no AWS_ENDPOINT_URL)"
        raise ConfigError(
            f"no stack engine fits {target}: the Pulumi CLI is not on PATH, and the embedded "
            "engine only serves the embedded cloud. Install the Pulumi CLI to work on real AWS, "
            "or run `rollback cloud start` and point AWS_ENDPOINT_URL at it for a rehearsal.",
            endpoint_url=endpoint_url,
        )
    if not embedded_target:
        logger.warning(
            "the embedded engine was chosen explicitly for %s, which is not the embedded cloud",
            endpoint_url or "AWS",
        )
    elif name == "auto":
        # Said aloud only when it was a choice: the Pulumi CLI is on PATH too.
        logger.log(
            logging.INFO if cli_available() else logging.DEBUG,
            "engine: embedded (%s is the embedded cloud; --engine to choose)",
            endpoint_url,
        )
    return "embedded"


def select_engine(
    name: str,
    *,
    endpoint_url: str | None,
    store: Store,
    clients: Clients,
    project: str = "webapp",
    project_dir: Path | None = None,
    backend_url: str | None = None,
) -> StackEngine:
    """Build the engine `name` names, or for `auto` the one that fits the target.

    `project_dir` is the Pulumi project (default: the working directory), used
    by the pulumi engine for commands that take no program. Raises ConfigError
    for an unknown name, a `pulumi` choice without the CLI, or `auto` with
    neither the CLI nor the embedded cloud.
    """
    if engine_choice(name, endpoint_url=endpoint_url) == "pulumi":
        from rollback.engine.pulumi_cli import PulumiEngine

        return PulumiEngine(project_dir=project_dir or Path.cwd(), backend_url=backend_url)

    from rollback.engine.embedded.engine import EmbeddedEngine

    engine: StackEngine = EmbeddedEngine(store=store, clients=clients, project=project)
    return engine
