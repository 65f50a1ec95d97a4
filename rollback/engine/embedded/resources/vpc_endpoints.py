"""VPC endpoints (gateway and interface), as terraform-provider-aws's
internal/service/ec2/vpc_endpoint.go applies them: id is the endpoint id, the
type defaults to Gateway, route tables, subnets, security groups, the policy
and private DNS change in place (ModifyVpcEndpoint), the rest replaces it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import declared_json, in_declared_order
from rollback.engine.embedded.resources.failures import applying, aws_code, present
from rollback.engine.embedded.resources.naming import partition_of
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType

_GONE = "InvalidVpcEndpointId.NotFound"
# Pulumi list input -> (ModifyVpcEndpoint add parameter, remove parameter).
_MEMBERS = {
    "routeTableIds": ("AddRouteTableIds", "RemoveRouteTableIds"),
    "subnetIds": ("AddSubnetIds", "RemoveSubnetIds"),
    "securityGroupIds": ("AddSecurityGroupIds", "RemoveSecurityGroupIds"),
}
_CREATE_LISTS = {
    "routeTableIds": "RouteTableIds",
    "subnetIds": "SubnetIds",
    "securityGroupIds": "SecurityGroupIds",
}


@dataclass(frozen=True)
class VpcEndpoint:
    """aws:ec2/vpcEndpoint:VpcEndpoint; id is the endpoint id (`vpce-...`)."""

    clients: Clients
    token = "aws:ec2/vpcEndpoint:VpcEndpoint"
    replace_on = frozenset({"vpcId", "serviceName", "vpcEndpointType", "serviceRegion", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "VpcId": inputs["vpcId"],
            "ServiceName": inputs["serviceName"],
            "VpcEndpointType": inputs.get("vpcEndpointType") or "Gateway",
        }
        for key, parameter in _CREATE_LISTS.items():
            if inputs.get(key):
                kwargs[parameter] = list(inputs[key])
        if inputs.get("policy"):
            kwargs["PolicyDocument"] = inputs["policy"]
        if inputs.get("privateDnsEnabled") is not None:
            kwargs["PrivateDnsEnabled"] = bool(inputs["privateDnsEnabled"])
        if inputs.get("tags"):
            kwargs["TagSpecifications"] = [
                {"ResourceType": "vpc-endpoint", "Tags": aws_tags(inputs["tags"])}
            ]
        with applying(self.token, name, "create"):
            id = self.clients("ec2").create_vpc_endpoint(**kwargs)["VpcEndpoint"]["VpcEndpointId"]
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for key, (add, remove) in _MEMBERS.items():
            old, new = set(olds.get(key) or []), set(news.get(key) or [])
            if new - old:
                changes[add] = sorted(new - old)
            if old - new:
                changes[remove] = sorted(old - new)
        if news.get("policy") != olds.get("policy"):
            if news.get("policy"):
                changes["PolicyDocument"] = news["policy"]
            else:
                changes["ResetPolicy"] = True
        if news.get("privateDnsEnabled") is not None and news.get("privateDnsEnabled") != olds.get(
            "privateDnsEnabled"
        ):
            changes["PrivateDnsEnabled"] = bool(news["privateDnsEnabled"])
        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            if changes:
                ec2.modify_vpc_endpoint(VpcEndpointId=id, **changes)
            from rollback.engine.embedded.resources.network import _retag

            _retag(ec2, id, olds, news)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        ec2 = self.clients("ec2")
        endpoint = self._endpoint(id)
        if endpoint is None:
            return None
        with applying(self.token, id, "read"):
            prefix_list_id, cidr_blocks = self._prefix_list(ec2, endpoint)
        region = ec2.meta.region_name
        outputs = {
            **inputs,
            "vpcId": endpoint["VpcId"],
            "serviceName": endpoint["ServiceName"],
            "vpcEndpointType": endpoint.get("VpcEndpointType") or "Gateway",
            "arn": f"arn:{partition_of(region)}:ec2:{region}:{endpoint.get('OwnerId', '')}:"
            f"vpc-endpoint/{id}",
            "state": endpoint.get("State", ""),
            "ownerId": endpoint.get("OwnerId", ""),
            "requesterManaged": bool(endpoint.get("RequesterManaged", False)),
            "privateDnsEnabled": bool(endpoint.get("PrivateDnsEnabled", False)),
            "policy": declared_json(endpoint.get("PolicyDocument") or "", inputs.get("policy"))
            if endpoint.get("PolicyDocument")
            else "",
            "prefixListId": prefix_list_id,
            "cidrBlocks": cidr_blocks,
            "networkInterfaceIds": list(endpoint.get("NetworkInterfaceIds", [])),
            "dnsEntries": [
                {"dnsName": e.get("DnsName", ""), "hostedZoneId": e.get("HostedZoneId", "")}
                for e in endpoint.get("DnsEntries", [])
            ],
            "routeTableIds": in_declared_order(
                list(endpoint.get("RouteTableIds", [])), inputs.get("routeTableIds")
            ),
            "subnetIds": in_declared_order(
                list(endpoint.get("SubnetIds", [])), inputs.get("subnetIds")
            ),
            "securityGroupIds": in_declared_order(
                [g["GroupId"] for g in endpoint.get("Groups", [])], inputs.get("securityGroupIds")
            ),
        }
        return with_tags(outputs, pulumi_tags(endpoint.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        # Gone already is fine. Asked first: moto answers a second delete of a
        # gateway endpoint with its routes' InvalidRoute.NotFound, not the endpoint's.
        if self._endpoint(id) is None:
            return
        with applying(self.token, id, "delete"):
            try:
                answer = self.clients("ec2").delete_vpc_endpoints(VpcEndpointIds=[id])
            except ClientError as exc:
                if aws_code(exc) != _GONE:
                    raise
                return
        # The call succeeds as a whole and reports each endpoint it could not delete.
        failed = [
            u for u in answer.get("Unsuccessful", []) if u.get("Error", {}).get("Code") != _GONE
        ]
        if failed:
            error = failed[0].get("Error", {})
            with applying(self.token, id, "delete"):
                raise ClientError({"Error": error}, "DeleteVpcEndpoints")

    def _endpoint(self, id: str) -> dict[str, Any] | None:
        """The endpoint as described; None when it is gone (or going)."""
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                found = self.clients("ec2").describe_vpc_endpoints(VpcEndpointIds=[id])[
                    "VpcEndpoints"
                ]
            except ClientError as exc:
                if aws_code(exc) == _GONE:
                    return None
                raise
        if not found or found[0].get("State", "").lower() in ("deleted", "deleting"):
            return None
        return dict(found[0])

    @staticmethod
    def _prefix_list(ec2: Any, endpoint: dict[str, Any]) -> tuple[str, list[str]]:
        """A gateway endpoint's service prefix list and its CIDR blocks (the provider's
        prefix_list_id and cidr_blocks); empty for interface endpoints."""
        if (endpoint.get("VpcEndpointType") or "Gateway") != "Gateway":
            return "", []
        lists = ec2.describe_prefix_lists(
            Filters=[{"Name": "prefix-list-name", "Values": [endpoint["ServiceName"]]}]
        )["PrefixLists"]
        if not lists:
            return "", []
        return str(lists[0]["PrefixListId"]), list(lists[0].get("Cidrs", []))


def appliers(clients: Clients) -> list[ResourceType]:
    """The VPC endpoint applier."""
    return [VpcEndpoint(clients)]
