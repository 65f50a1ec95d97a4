"""The one factory: settings, boto3 session and clients, store, engine, registry.

Commands get it from `ctx.obj`; everything is built lazily so a command pays
only for what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollback import config

if TYPE_CHECKING:
    from pathlib import Path

    from rollback.aws.session import Clients
    from rollback.cli.render import WaitPrinter
    from rollback.engine import StackEngine
    from rollback.orchestrate import Workbench
    from rollback.releases import Registry
    from rollback.store import Store


class Factory:
    """Builds what commands use, each piece once and only when first asked for."""

    def __init__(self, settings: config.Settings, progress_prefix: str = "") -> None:
        self.settings = settings
        self.progress_prefix = progress_prefix  # a fleet member's waits name its stack
        self._built: dict[str, Any] = {}

    @classmethod
    def from_flags(cls, flags: dict[str, Any]) -> Factory:
        return cls(settings=config.load(flags))

    def for_stack(self, stack: str, *, shared: bool = False) -> Factory:
        """A factory of its own for one stack of a fleet: own session, store, lock and journal.

        `shared` reuses this factory's clients and store instead (one thread
        working on many stacks in turn: the agent), saving a session per stack.
        """
        child = Factory(settings=self.settings.for_stack(stack), progress_prefix=f"{stack}: ")
        if shared:
            child._built.update(clients=self.clients(), store=self.store())
        return child

    def clients(self) -> Clients:
        if "clients" not in self._built:
            from rollback.aws.endpoint import require_answering
            from rollback.aws.session import Clients, make_session

            # A stopped embedded cloud is a cause to name, not a connection error per call.
            require_answering(self.settings.endpoint_url)

            session = make_session(self.settings.region, self.settings.profile)
            self._built["clients"] = Clients(session, endpoint_url=self.settings.endpoint_url)
        clients: Clients = self._built["clients"]
        return clients

    def store(self) -> Store:
        if "store" not in self._built:
            from rollback.store import open_store

            url = self.settings.store
            # Only an S3 store needs AWS clients; a local store starts without boto3.
            self._built["store"] = open_store(
                url, self.clients() if url.startswith("s3://") else None
            )
        store: Store = self._built["store"]
        return store

    def registry(self) -> Registry:
        """One per command: a manifest's tag is checked (a git call) once, not per reader."""
        if "registry" not in self._built:
            from rollback.releases import Registry

            self._built["registry"] = Registry(self.store(), self.settings.stack)
        registry: Registry = self._built["registry"]
        return registry

    def engine(self, project_dir: Path | None = None) -> StackEngine:
        """The stack engine of --engine (auto: the Pulumi CLI, else embedded on the embedded cloud)."""
        if "engine" not in self._built:
            from rollback.engine.select import select_engine

            self._built["engine"] = select_engine(
                self.settings.engine,
                endpoint_url=self.settings.endpoint_url,
                store=self.store(),
                clients=self.clients(),
                project=self.settings.project,
                project_dir=project_dir,
                backend_url=self.settings.backend_url,
            )
            if hasattr(self._built["engine"], "refresh"):
                self._built["engine"].refresh = self.settings.refresh
        engine: StackEngine = self._built["engine"]
        return engine

    def engine_kind(self) -> str:
        """The name of the engine `engine()` builds, without building it (see select.engine_choice)."""
        if "engine" in self._built:
            return str(self._built["engine"].name)
        if "engine_kind" not in self._built:
            from rollback.engine.select import engine_choice

            self._built["engine_kind"] = engine_choice(
                self.settings.engine, endpoint_url=self.settings.endpoint_url
            )
        return str(self._built["engine_kind"])

    def workbench(self) -> Workbench:
        """What plans and steps are built from: clients, store, registry, engine, notifiers."""
        from rollback.orchestrate import Workbench
        from rollback.waiting import Timing

        # Every wait reports: in place on a terminal, a line every 20 s in a CI log.
        timing = Timing(on_wait=self.wait_printer())
        return Workbench(
            clients=self.clients(),
            store=self.store(),
            registry=self.registry(),
            engine=self.engine,
            timing=timing,
            notifiers=self.notifiers(),
            health_deadline_s=self.settings.health_deadline_s,
            engine_kind=self.engine_kind,
        )

    def wait_printer(self) -> WaitPrinter:
        """The one progress printer for waits (see rollback.cli.render.WaitPrinter)."""
        from rollback.cli.render import WaitPrinter

        return WaitPrinter(self.progress_prefix)

    def notifiers(self) -> list[Any]:
        """Webhook and SNS notifiers from the settings (none configured: none)."""
        from rollback.notify import SnsNotifier, WebhookNotifier

        found: list[Any] = []
        if self.settings.webhook_url:
            found.append(WebhookNotifier(self.settings.webhook_url))
        if self.settings.sns_topic_arn:
            found.append(SnsNotifier(self.clients()("sns"), self.settings.sns_topic_arn))
        return found
