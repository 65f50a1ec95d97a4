"""Route53 hosted zones and (simple, weighted or alias) records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.failures import already_gone, applying, aws_code, present
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags
from rollback.errors import EngineError

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_UNSUPPORTED_POLICIES = (
    "failoverRoutingPolicies",
    "geolocationRoutingPolicies",
    "geoproximityRoutingPolicy",
    "latencyRoutingPolicies",
    "cidrRoutingPolicy",
    "multivalueAnswerRoutingPolicy",
)


def _zone_id(id: str) -> str:
    return id.rsplit("/", 1)[-1]


def _bare(name: str) -> str:
    """A DNS name without its trailing dot, lower case, with Route53's `\\052` back to `*`."""
    return name.rstrip(".").lower().replace("\\052", "*")


def _wait_in_sync(route53: Any, change: dict[str, Any]) -> None:
    route53.get_waiter("resource_record_sets_changed").wait(Id=change["ChangeInfo"]["Id"])


@dataclass(frozen=True)
class Zone:
    """aws:route53/zone:Zone (public, or private with `vpcs`); id is the zone id.

    Comment and tags change in place. With `forceDestroy`, delete removes every
    record but the apex SOA and NS first.
    """

    clients: Clients
    token = "aws:route53/zone:Zone"
    replace_on = frozenset({"name", "delegationSetId", "vpcs"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        route53 = self.clients("route53")
        kwargs: dict[str, Any] = {
            "Name": inputs["name"],
            "CallerReference": str(uuid.uuid4()),
            "HostedZoneConfig": {
                "Comment": inputs.get("comment", "Managed by Pulumi"),
                "PrivateZone": bool(inputs.get("vpcs")),
            },
        }
        vpcs = inputs.get("vpcs") or []
        if vpcs:
            region = route53.meta.region_name
            kwargs["VPC"] = {
                "VPCId": vpcs[0]["vpcId"],
                "VPCRegion": vpcs[0].get("vpcRegion") or region,
            }
        if inputs.get("delegationSetId"):
            kwargs["DelegationSetId"] = inputs["delegationSetId"]
        with applying(self.token, name, "create"):
            created = route53.create_hosted_zone(**kwargs)
            id = _zone_id(created["HostedZone"]["Id"])
            _wait_in_sync(route53, created)
            if inputs.get("tags"):
                route53.change_tags_for_resource(
                    ResourceType="hostedzone", ResourceId=id, AddTags=aws_tags(inputs["tags"])
                )
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        route53 = self.clients("route53")
        with applying(self.token, id, "update"):
            comment = news.get("comment", "Managed by Pulumi")
            if comment != olds.get("comment", "Managed by Pulumi"):
                route53.update_hosted_zone_comment(Id=id, Comment=comment)
            to_set, to_remove = tag_changes(olds, news)
            if to_set or to_remove:
                route53.change_tags_for_resource(
                    ResourceType="hostedzone",
                    ResourceId=id,
                    **({"AddTags": aws_tags(to_set)} if to_set else {}),
                    **({"RemoveTagKeys": to_remove} if to_remove else {}),
                )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        route53 = self.clients("route53")
        with applying(self.token, id, "read"):
            try:
                zone = route53.get_hosted_zone(Id=id)
            except ClientError as exc:
                if aws_code(exc) == "NoSuchHostedZone":
                    return None
                raise
            tags = route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=id)
        name_servers = list(zone.get("DelegationSet", {}).get("NameServers", []))
        outputs = {
            **inputs,
            "name": zone["HostedZone"]["Name"].rstrip("."),
            "comment": zone["HostedZone"].get("Config", {}).get("Comment", ""),
            "zoneId": id,
            "arn": f"arn:aws:route53:::hostedzone/{id}",
            "nameServers": sorted(name_servers),
            "primaryNameServer": name_servers[0] if name_servers else "",
        }
        return with_tags(outputs, pulumi_tags(tags["ResourceTagSet"].get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        route53 = self.clients("route53")
        with applying(self.token, id, "delete"), already_gone("NoSuchHostedZone"):
            if inputs.get("forceDestroy"):
                self._empty(route53, id)
            route53.delete_hosted_zone(Id=id)

    def _empty(self, route53: Any, id: str) -> None:
        apex = _bare(route53.get_hosted_zone(Id=id)["HostedZone"]["Name"])
        doomed = [
            {"Action": "DELETE", "ResourceRecordSet": record}
            for page in route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=id)
            for record in page["ResourceRecordSets"]
            if not (record["Type"] in ("SOA", "NS") and _bare(record["Name"]) == apex)
        ]
        if doomed:
            _wait_in_sync(
                route53,
                route53.change_resource_record_sets(
                    HostedZoneId=id, ChangeBatch={"Changes": doomed}
                ),
            )


@dataclass(frozen=True)
class Record:
    """aws:route53/record:Record: simple, weighted or alias; id is `<zoneId>_<name>_<type>[_<setIdentifier>]`.

    Values, TTL, weight and alias change in place (UPSERT); every change is
    waited for until INSYNC. Other routing policies are refused.
    """

    clients: Clients
    token = "aws:route53/record:Record"
    replace_on = frozenset({"zoneId", "name", "type", "setIdentifier"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._refuse_unsupported(name, inputs)
        action = "UPSERT" if inputs.get("allowOverwrite") else "CREATE"
        self._change(name, inputs, action, "create")
        parts = [inputs["zoneId"], inputs["name"], inputs["type"]]
        if inputs.get("setIdentifier"):
            parts.append(inputs["setIdentifier"])
        id = "_".join(parts)
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        self._refuse_unsupported(id, news)
        self._change(id, news, "UPSERT", "update")
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        live = self._live(id, inputs)
        if live is None:
            return None
        outputs: dict[str, Any] = {**inputs, "fqdn": live["Name"].rstrip(".").replace("\\052", "*")}
        outputs["type"] = live["Type"]
        if "TTL" in live:
            outputs["ttl"] = float(live["TTL"])
        if live.get("ResourceRecords"):
            outputs["records"] = in_declared_order(
                [r["Value"] for r in live["ResourceRecords"]], inputs.get("records")
            )
        if "Weight" in live:
            outputs["weightedRoutingPolicies"] = [{"weight": float(live["Weight"])}]
        if live.get("SetIdentifier"):
            outputs["setIdentifier"] = live["SetIdentifier"]
        if live.get("HealthCheckId"):
            outputs["healthCheckId"] = live["HealthCheckId"]
        if live.get("AliasTarget"):
            alias = live["AliasTarget"]
            outputs["aliases"] = [
                {
                    "name": alias["DNSName"].rstrip("."),
                    "zoneId": alias["HostedZoneId"],
                    "evaluateTargetHealth": bool(alias.get("EvaluateTargetHealth", False)),
                }
            ]
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        """DELETE the live record set as it is now (Route53 requires an exact match)."""
        live = self._live(id, inputs)
        if live is None:
            return
        route53 = self.clients("route53")
        with applying(self.token, id, "delete"):
            change = route53.change_resource_record_sets(
                HostedZoneId=inputs["zoneId"],
                ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": live}]},
            )
            _wait_in_sync(route53, change)

    def _fqdn(self, inputs: dict[str, Any]) -> str:
        zone = self.clients("route53").get_hosted_zone(Id=inputs["zoneId"])["HostedZone"]
        name, apex = _bare(str(inputs["name"])), _bare(zone["Name"])
        return name if name == apex or name.endswith(f".{apex}") else f"{name}.{apex}"

    def _live(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The live record set with this name, type and set identifier, or None."""
        from botocore.exceptions import ClientError

        route53 = self.clients("route53")
        with applying(self.token, id, "read"):
            try:
                fqdn = self._fqdn(inputs)
                pages = route53.get_paginator("list_resource_record_sets").paginate(
                    HostedZoneId=inputs["zoneId"],
                    StartRecordName=fqdn,
                    StartRecordType=inputs["type"],
                )
                for page in pages:
                    for record in page["ResourceRecordSets"]:
                        if _bare(record["Name"]) != fqdn or record["Type"] != inputs["type"]:
                            return None  # sorted by name and type: we are past it
                        if record.get("SetIdentifier") == inputs.get("setIdentifier"):
                            return dict(record)
            except ClientError as exc:
                if aws_code(exc) == "NoSuchHostedZone":
                    return None
                raise
        return None

    def _change(self, id: str, inputs: dict[str, Any], action: str, verb: str) -> None:
        route53 = self.clients("route53")
        with applying(self.token, id, verb):
            record: dict[str, Any] = {"Name": self._fqdn(inputs), "Type": inputs["type"]}
            if inputs.get("aliases"):
                alias = inputs["aliases"][0]
                record["AliasTarget"] = {
                    "HostedZoneId": alias["zoneId"],
                    "DNSName": alias["name"],
                    "EvaluateTargetHealth": bool(alias.get("evaluateTargetHealth", False)),
                }
            else:
                record["TTL"] = int(inputs.get("ttl", 300))
                record["ResourceRecords"] = [{"Value": str(v)} for v in inputs.get("records") or []]
            if inputs.get("setIdentifier"):
                record["SetIdentifier"] = inputs["setIdentifier"]
            if inputs.get("weightedRoutingPolicies"):
                record["Weight"] = int(inputs["weightedRoutingPolicies"][0]["weight"])
            if inputs.get("healthCheckId"):
                record["HealthCheckId"] = inputs["healthCheckId"]
            change = route53.change_resource_record_sets(
                HostedZoneId=inputs["zoneId"],
                ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": record}]},
            )
            _wait_in_sync(route53, change)

    def _refuse_unsupported(self, name: str, inputs: dict[str, Any]) -> None:
        used = [key for key in _UNSUPPORTED_POLICIES if inputs.get(key)]
        if used:
            raise EngineError(
                f"{self.token} {name!r} uses {', '.join(used)}; the embedded engine supports simple, weighted and alias records only.",
                resource=name,
                type=self.token,
            )


def appliers(clients: Clients) -> list[ResourceType]:
    """The Route53 appliers."""
    return [Zone(clients), Record(clients)]
