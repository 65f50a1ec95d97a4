"""EC2 public networking and standalone rules: internet and NAT gateways, elastic IPs,
route tables, routes and associations, security group rules (both APIs), launch templates."""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.ec2 import _atoms, _live_atoms, _permissions
from rollback.engine.embedded.resources.failures import (
    already_gone,
    applying,
    aws_code,
    delete_when_free,
    present,
)
from rollback.engine.embedded.resources.naming import physical_name
from rollback.engine.embedded.resources.tagging import aws_tags, pulumi_tags, tag_changes, with_tags

if TYPE_CHECKING:
    from rollback.engine.embedded.resources import ResourceType


def _tag_specification(kind: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    if not inputs.get("tags"):
        return []
    return [{"ResourceType": kind, "Tags": aws_tags(inputs["tags"])}]


def _retag(ec2: Any, id: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
    to_set, to_remove = tag_changes(olds, news)
    if to_set:
        ec2.create_tags(Resources=[id], Tags=aws_tags(to_set))
    if to_remove:
        ec2.delete_tags(Resources=[id], Tags=[{"Key": k} for k in to_remove])


def _describe(
    ec2: Any, call: str, key: str, ids_param: str, id: str, gone: str
) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        found = getattr(ec2, call)(**{ids_param: [id]})[key]
    except ClientError as exc:
        if aws_code(exc) == gone:
            return None
        raise
    return dict(found[0]) if found else None


@dataclass(frozen=True)
class InternetGateway:
    """aws:ec2/internetGateway:InternetGateway; id is igw-…. The VPC attachment and tags change in place."""

    clients: Clients
    token = "aws:ec2/internetGateway:InternetGateway"
    replace_on = frozenset({"region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2")
        with applying(self.token, name, "create"):
            id = ec2.create_internet_gateway(
                TagSpecifications=_tag_specification("internet-gateway", inputs)
            )["InternetGateway"]["InternetGatewayId"]
            if inputs.get("vpcId"):
                ec2.attach_internet_gateway(InternetGatewayId=id, VpcId=inputs["vpcId"])
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            if news.get("vpcId") != olds.get("vpcId"):
                if olds.get("vpcId"):
                    with already_gone("Gateway.NotAttached", "InvalidVpcID.NotFound"):
                        ec2.detach_internet_gateway(InternetGatewayId=id, VpcId=olds["vpcId"])
                if news.get("vpcId"):
                    ec2.attach_internet_gateway(InternetGatewayId=id, VpcId=news["vpcId"])
            _retag(ec2, id, olds, news)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            gateway = _describe(
                ec2,
                "describe_internet_gateways",
                "InternetGateways",
                "InternetGatewayIds",
                id,
                "InvalidInternetGatewayID.NotFound",
            )
        if gateway is None:
            return None
        attachments = [a["VpcId"] for a in gateway.get("Attachments", []) if a.get("VpcId")]
        outputs = {
            **inputs,
            "arn": f"arn:aws:ec2:{ec2.meta.region_name}:{gateway.get('OwnerId', '')}:internet-gateway/{id}",
            "ownerId": gateway.get("OwnerId", ""),
        }
        if attachments or "vpcId" in inputs:
            outputs["vpcId"] = attachments[0] if attachments else ""
        return with_tags(outputs, pulumi_tags(gateway.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "delete"), already_gone("InvalidInternetGatewayID.NotFound"):
            gateway = ec2.describe_internet_gateways(InternetGatewayIds=[id])["InternetGateways"]
            for attachment in gateway[0].get("Attachments", []) if gateway else []:
                ec2.detach_internet_gateway(InternetGatewayId=id, VpcId=attachment["VpcId"])
        delete_when_free(
            self.token,
            id,
            lambda: ec2.delete_internet_gateway(InternetGatewayId=id),
            {"InvalidInternetGatewayID.NotFound"},
        )


@dataclass(frozen=True)
class Eip:
    """aws:ec2/eip:Eip (VPC domain); id is the allocation id. Association and tags change in place."""

    clients: Clients
    token = "aws:ec2/eip:Eip"
    replace_on = frozenset({"domain", "publicIpv4Pool", "address", "networkBorderGroup", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2")
        with applying(self.token, name, "create"):
            id = ec2.allocate_address(
                Domain="vpc", TagSpecifications=_tag_specification("elastic-ip", inputs)
            )["AllocationId"]
            self._associate(ec2, id, inputs)
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            if (news.get("instance"), news.get("networkInterface")) != (
                olds.get("instance"),
                olds.get("networkInterface"),
            ):
                self._disassociate(ec2, id)
                self._associate(ec2, id, news)
            _retag(ec2, id, olds, news)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            address = _describe(
                ec2,
                "describe_addresses",
                "Addresses",
                "AllocationIds",
                id,
                "InvalidAllocationID.NotFound",
            )
        if address is None:
            return None
        outputs = {
            **inputs,
            "allocationId": id,
            "domain": address.get("Domain", "vpc"),
            "publicIp": address.get("PublicIp", ""),
            "publicDns": f"ec2-{address.get('PublicIp', '').replace('.', '-')}.compute-1.amazonaws.com",
            "associationId": address.get("AssociationId", ""),
            "privateIp": address.get("PrivateIpAddress", ""),
        }
        if "instance" in inputs or address.get("InstanceId"):
            outputs["instance"] = address.get("InstanceId", "")
        if "networkInterface" in inputs:
            outputs["networkInterface"] = address.get("NetworkInterfaceId", "")
        return with_tags(outputs, pulumi_tags(address.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "delete"), already_gone("InvalidAllocationID.NotFound"):
            self._disassociate(ec2, id)
            ec2.release_address(AllocationId=id)

    @staticmethod
    def _associate(ec2: Any, id: str, inputs: dict[str, Any]) -> None:
        if inputs.get("instance"):
            ec2.associate_address(AllocationId=id, InstanceId=inputs["instance"])
        elif inputs.get("networkInterface"):
            ec2.associate_address(AllocationId=id, NetworkInterfaceId=inputs["networkInterface"])

    @staticmethod
    def _disassociate(ec2: Any, id: str) -> None:
        addresses = ec2.describe_addresses(AllocationIds=[id])["Addresses"]
        if addresses and addresses[0].get("AssociationId"):
            ec2.disassociate_address(AssociationId=addresses[0]["AssociationId"])


@dataclass(frozen=True)
class NatGateway:
    """aws:ec2/natGateway:NatGateway; id is nat-…. Only tags change in place."""

    clients: Clients
    token = "aws:ec2/natGateway:NatGateway"
    replace_on = frozenset({"subnetId", "allocationId", "connectivityType", "privateIp", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2")
        kwargs: dict[str, Any] = {
            "SubnetId": inputs["subnetId"],
            "ConnectivityType": inputs.get("connectivityType") or "public",
            "TagSpecifications": _tag_specification("natgateway", inputs),
        }
        if inputs.get("allocationId"):
            kwargs["AllocationId"] = inputs["allocationId"]
        if inputs.get("privateIp"):
            kwargs["PrivateIpAddress"] = inputs["privateIp"]
        with applying(self.token, name, "create"):
            id = ec2.create_nat_gateway(**kwargs)["NatGateway"]["NatGatewayId"]
            ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[id])
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            _retag(ec2, id, olds, news)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            gateway = _describe(
                ec2,
                "describe_nat_gateways",
                "NatGateways",
                "NatGatewayIds",
                id,
                "NatGatewayNotFound",
            )
        if gateway is None or gateway.get("State") in ("deleted", "deleting", "failed"):
            return None
        addresses = gateway.get("NatGatewayAddresses") or [{}]
        outputs = {
            **inputs,
            "subnetId": gateway["SubnetId"],
            "connectivityType": gateway.get("ConnectivityType", "public"),
            "networkInterfaceId": addresses[0].get("NetworkInterfaceId", ""),
            "privateIp": addresses[0].get("PrivateIp", ""),
            "publicIp": addresses[0].get("PublicIp", ""),
        }
        if addresses[0].get("AllocationId") or "allocationId" in inputs:
            outputs["allocationId"] = addresses[0].get("AllocationId", "")
        return with_tags(outputs, pulumi_tags(gateway.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "delete"), already_gone("NatGatewayNotFound"):
            ec2.delete_nat_gateway(NatGatewayId=id)
            ec2.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[id])


# Pulumi route target key -> EC2 CreateRoute parameter and DescribeRouteTables key.
_ROUTE_TARGETS = (
    ("gatewayId", "GatewayId"),
    ("natGatewayId", "NatGatewayId"),
    ("networkInterfaceId", "NetworkInterfaceId"),
    ("transitGatewayId", "TransitGatewayId"),
    ("vpcPeeringConnectionId", "VpcPeeringConnectionId"),
    ("vpcEndpointId", "VpcEndpointId"),
    ("egressOnlyGatewayId", "EgressOnlyInternetGatewayId"),
    ("carrierGatewayId", "CarrierGatewayId"),
    ("localGatewayId", "LocalGatewayId"),
    ("coreNetworkArn", "CoreNetworkArn"),
)
# Pulumi destination key (inline route, standalone route) -> EC2 parameter.
_DESTINATIONS = (
    ("cidrBlock", "destinationCidrBlock", "DestinationCidrBlock"),
    ("ipv6CidrBlock", "destinationIpv6CidrBlock", "DestinationIpv6CidrBlock"),
    ("destinationPrefixListId", "destinationPrefixListId", "DestinationPrefixListId"),
)


def _route_parameters(route: dict[str, Any], inline: bool) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for inline_key, standalone_key, parameter in _DESTINATIONS:
        value = route.get(inline_key if inline else standalone_key)
        if value:
            parameters[parameter] = value
    for key, parameter in _ROUTE_TARGETS:
        if route.get(key):
            parameters[parameter] = route[key]
    return parameters


def _destination(parameters: dict[str, Any]) -> tuple[str, str]:
    return next((p, str(parameters[p])) for _, _, p in _DESTINATIONS if p in parameters)


def _live_routes(table: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Destination -> the route's parameters, without the VPC's local routes."""
    routes = {}
    for route in table.get("Routes", []):
        if route.get("GatewayId") == "local" or route.get("Origin") == "CreateRouteTable":
            continue
        parameters = {p: route[p] for _, _, p in _DESTINATIONS if route.get(p)}
        parameters |= {p: route[p] for _, p in _ROUTE_TARGETS if route.get(p)}
        if parameters:
            routes[_destination(parameters)] = parameters
    return routes


@dataclass(frozen=True)
class RouteTable:
    """aws:ec2/routeTable:RouteTable with inline routes; id is rtb-…. Routes and tags change in place."""

    clients: Clients
    token = "aws:ec2/routeTable:RouteTable"
    replace_on = frozenset({"vpcId", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2")
        with applying(self.token, name, "create"):
            id = ec2.create_route_table(
                VpcId=inputs["vpcId"], TagSpecifications=_tag_specification("route-table", inputs)
            )["RouteTable"]["RouteTableId"]
            self._sync_routes(ec2, id, inputs)
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            if "routes" in news or "routes" in olds:
                self._sync_routes(ec2, id, news)
            _retag(ec2, id, olds, news)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            table = _describe(
                ec2,
                "describe_route_tables",
                "RouteTables",
                "RouteTableIds",
                id,
                "InvalidRouteTableID.NotFound",
            )
        if table is None:
            return None
        live = _live_routes(table)
        declared = list(inputs.get("routes") or [])
        routes = []
        for route in declared:
            parameters = _route_parameters(route, inline=True)
            if parameters and live.get(_destination(parameters)) == parameters:
                routes.append(route)
                live.pop(_destination(parameters))
        for parameters in live.values():
            routes.append(
                {
                    **{k: parameters[p] for k, _, p in _DESTINATIONS if p in parameters},
                    **{k: parameters[p] for k, p in _ROUTE_TARGETS if p in parameters},
                }
            )
        outputs = {
            **inputs,
            "vpcId": table["VpcId"],
            "ownerId": table.get("OwnerId", ""),
            "arn": f"arn:aws:ec2:{ec2.meta.region_name}:{table.get('OwnerId', '')}:route-table/{id}",
            "routes": routes,
        }
        return with_tags(outputs, pulumi_tags(table.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ec2 = self.clients("ec2")
        delete_when_free(
            self.token,
            id,
            lambda: ec2.delete_route_table(RouteTableId=id),
            {"InvalidRouteTableID.NotFound"},
        )

    def _sync_routes(self, ec2: Any, id: str, inputs: dict[str, Any]) -> None:
        """Make the table's routes the declared ones: delete extra, replace changed, create missing."""
        table = ec2.describe_route_tables(RouteTableIds=[id])["RouteTables"][0]
        live = _live_routes(table)
        wanted = {}
        for route in inputs.get("routes") or []:
            parameters = _route_parameters(route, inline=True)
            wanted[_destination(parameters)] = parameters
        for destination in live.keys() - wanted.keys():
            ec2.delete_route(RouteTableId=id, **{destination[0]: destination[1]})
        for destination, parameters in wanted.items():
            if destination not in live:
                ec2.create_route(RouteTableId=id, **parameters)
            elif live[destination] != parameters:
                ec2.replace_route(RouteTableId=id, **parameters)


@dataclass(frozen=True)
class Route:
    """aws:ec2/route:Route; id is `r-<table><hash of destination>`. The target changes in place."""

    clients: Clients
    token = "aws:ec2/route:Route"
    replace_on = frozenset(
        {
            "routeTableId",
            "destinationCidrBlock",
            "destinationIpv6CidrBlock",
            "destinationPrefixListId",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        parameters = _route_parameters(inputs, inline=False)
        table = str(inputs["routeTableId"])
        with applying(self.token, name, "create"):
            self.clients("ec2").create_route(RouteTableId=table, **parameters)
        id = f"r-{table}{zlib.crc32(_destination(parameters)[1].encode())}"
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        with applying(self.token, id, "update"):
            self.clients("ec2").replace_route(
                RouteTableId=news["routeTableId"], **_route_parameters(news, inline=False)
            )
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            table = _describe(
                ec2,
                "describe_route_tables",
                "RouteTables",
                "RouteTableIds",
                str(inputs["routeTableId"]),
                "InvalidRouteTableID.NotFound",
            )
        if table is None:
            return None
        declared = _route_parameters(inputs, inline=False)
        live = _live_routes(table).get(_destination(declared))
        if live is None:
            return None
        outputs = dict(inputs)
        for key, parameter in _ROUTE_TARGETS:
            if key in inputs or parameter in live:
                outputs[key] = live.get(parameter, "")
        outputs["state"] = "active"
        outputs["origin"] = "CreateRoute"
        return outputs

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        destination = _destination(_route_parameters(inputs, inline=False))
        with (
            applying(self.token, id, "delete"),
            already_gone("InvalidRoute.NotFound", "InvalidRouteTableID.NotFound"),
        ):
            self.clients("ec2").delete_route(
                RouteTableId=inputs["routeTableId"], **{destination[0]: destination[1]}
            )


@dataclass(frozen=True)
class RouteTableAssociation:
    """aws:ec2/routeTableAssociation:RouteTableAssociation; id is rtbassoc-…. The table changes in place."""

    clients: Clients
    token = "aws:ec2/routeTableAssociation:RouteTableAssociation"
    # The provider swaps the table in place, which changes the association id;
    # the engine keeps ids stable, so a new table makes a new association.
    replace_on = frozenset({"subnetId", "gatewayId", "routeTableId", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {"RouteTableId": inputs["routeTableId"]}
        if inputs.get("subnetId"):
            kwargs["SubnetId"] = inputs["subnetId"]
        if inputs.get("gatewayId"):
            kwargs["GatewayId"] = inputs["gatewayId"]
        with applying(self.token, name, "create"):
            id = self.clients("ec2").associate_route_table(**kwargs)["AssociationId"]
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        ec2 = self.clients("ec2")
        target = (
            ("association.subnet-id", inputs["subnetId"])
            if inputs.get("subnetId")
            else ("association.gateway-id", str(inputs.get("gatewayId", "")))
        )
        with applying(self.token, id, "read"):
            tables = ec2.describe_route_tables(
                Filters=[{"Name": target[0], "Values": [target[1]]}]
            )["RouteTables"]
        for table in tables:
            for association in table.get("Associations", []):
                if association.get("SubnetId", association.get("GatewayId")) == target[1]:
                    return {**inputs, "routeTableId": table["RouteTableId"]}
        return None

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with (
            applying(self.token, id, "delete"),
            already_gone("InvalidAssociationID.NotFound"),
        ):
            self.clients("ec2").disassociate_route_table(AssociationId=id)


@dataclass(frozen=True)
class SecurityGroupRule:
    """aws:ec2/securityGroupRule:SecurityGroupRule; id is `sgrule-<hash>`. Every input forces a new rule."""

    clients: Clients
    token = "aws:ec2/securityGroupRule:SecurityGroupRule"
    replace_on = frozenset(
        {
            "type",
            "securityGroupId",
            "protocol",
            "fromPort",
            "toPort",
            "cidrBlocks",
            "ipv6CidrBlocks",
            "prefixListIds",
            "sourceSecurityGroupId",
            "self",
            "description",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        group = str(inputs["securityGroupId"])
        wanted = self._atoms(inputs)
        ec2 = self.clients("ec2")
        authorize = (
            ec2.authorize_security_group_ingress
            if inputs["type"] == "ingress"
            else ec2.authorize_security_group_egress
        )
        with applying(self.token, name, "create"):
            authorize(GroupId=group, IpPermissions=_permissions(wanted))
        id = f"sgrule-{zlib.crc32(repr(sorted(wanted)).encode())}"
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        live = self._live(inputs)
        if live is None or not self._atoms(inputs) <= live:
            return None
        return {**inputs, "securityGroupRuleId": id}

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ec2 = self.clients("ec2")
        live = self._live(inputs)
        present_atoms = self._atoms(inputs) & (live or set())
        if not present_atoms:
            return
        revoke = (
            ec2.revoke_security_group_ingress
            if inputs["type"] == "ingress"
            else ec2.revoke_security_group_egress
        )
        with applying(self.token, id, "delete"), already_gone("InvalidPermission.NotFound"):
            revoke(
                GroupId=str(inputs["securityGroupId"]), IpPermissions=_permissions(present_atoms)
            )

    def _atoms(self, inputs: dict[str, Any]) -> set[tuple[str, int, int, str, str, str]]:
        rule = dict(inputs)
        if inputs.get("sourceSecurityGroupId"):
            rule["securityGroups"] = [inputs["sourceSecurityGroupId"]]
        return _atoms([rule], str(inputs["securityGroupId"]))

    def _live(self, inputs: dict[str, Any]) -> set[tuple[str, int, int, str, str, str]] | None:
        ec2 = self.clients("ec2")
        with applying(self.token, str(inputs["securityGroupId"]), "read"):
            group = _describe(
                ec2,
                "describe_security_groups",
                "SecurityGroups",
                "GroupIds",
                str(inputs["securityGroupId"]),
                "InvalidGroup.NotFound",
            )
        if group is None:
            return None
        key = "IpPermissions" if inputs["type"] == "ingress" else "IpPermissionsEgress"
        return _live_atoms(group.get(key, []))


@dataclass(frozen=True)
class VpcSecurityGroupRule:
    """aws:vpc/securityGroupIngressRule / EgressRule; id is the rule id (sgr-…).

    Tags change in place; any other change makes a new rule (the rule id
    would change, and the engine keeps ids stable).
    """

    clients: Clients
    token: str
    egress: bool
    replace_on = frozenset(
        {
            "securityGroupId",
            "ipProtocol",
            "fromPort",
            "toPort",
            "cidrIpv4",
            "cidrIpv6",
            "prefixListId",
            "referencedSecurityGroupId",
            "description",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2")
        authorize = (
            ec2.authorize_security_group_egress
            if self.egress
            else ec2.authorize_security_group_ingress
        )
        kwargs: dict[str, Any] = {
            "GroupId": inputs["securityGroupId"],
            "IpPermissions": [self._permission(inputs)],
        }
        if inputs.get("tags"):
            kwargs["TagSpecifications"] = _tag_specification("security-group-rule", inputs)
        with applying(self.token, name, "create"):
            rules = authorize(**kwargs).get("SecurityGroupRules", [])
        if not rules:
            rules = [
                r
                for r in self._group_rules(str(inputs["securityGroupId"]))
                if self._matches(r, inputs)
            ]
        id = str(rules[0]["SecurityGroupRuleId"])
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            _retag(ec2, id, olds, news)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            try:
                rules = ec2.describe_security_group_rules(SecurityGroupRuleIds=[id])[
                    "SecurityGroupRules"
                ]
            except ClientError as exc:
                if "NotFound" in aws_code(exc):
                    return None
                raise
        if not rules:
            return None
        rule = rules[0]
        protocol = str(rule.get("IpProtocol", "-1"))
        outputs = {
            **inputs,
            "securityGroupRuleId": id,
            "arn": f"arn:aws:ec2:{ec2.meta.region_name}:{rule.get('GroupOwnerId', '')}:security-group-rule/{id}",
            "ipProtocol": inputs.get("ipProtocol")
            if _same_protocol(inputs.get("ipProtocol"), protocol)
            else protocol,
        }
        if protocol != "-1":
            outputs["fromPort"] = float(rule.get("FromPort", 0))
            outputs["toPort"] = float(rule.get("ToPort", 0))
        for key, aws_key in (
            ("cidrIpv4", "CidrIpv4"),
            ("cidrIpv6", "CidrIpv6"),
            ("prefixListId", "PrefixListId"),
        ):
            if key in inputs or rule.get(aws_key):
                outputs[key] = rule.get(aws_key, "")
        if "referencedSecurityGroupId" in inputs or rule.get("ReferencedGroupInfo"):
            outputs["referencedSecurityGroupId"] = rule.get("ReferencedGroupInfo", {}).get(
                "GroupId", ""
            )
        if "description" in inputs or rule.get("Description"):
            outputs["description"] = rule.get("Description", self._pair_description(rule))
        return with_tags(outputs, pulumi_tags(rule.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ec2 = self.clients("ec2")
        revoke = (
            ec2.revoke_security_group_egress if self.egress else ec2.revoke_security_group_ingress
        )
        with (
            applying(self.token, id, "delete"),
            already_gone(
                "InvalidGroup.NotFound",
                "InvalidSecurityGroupRuleId.NotFound",
                "InvalidPermission.NotFound",
            ),
        ):
            revoke(GroupId=inputs["securityGroupId"], SecurityGroupRuleIds=[id])

    def _pair_description(self, rule: dict[str, Any]) -> str:
        """A group-referencing rule's description from the group's permissions.

        moto's DescribeSecurityGroupRules leaves it out for such rules; AWS does not.
        """
        peer = rule.get("ReferencedGroupInfo", {}).get("GroupId")
        if not peer:
            return ""
        group = _describe(
            self.clients("ec2"),
            "describe_security_groups",
            "SecurityGroups",
            "GroupIds",
            str(rule["GroupId"]),
            "InvalidGroup.NotFound",
        )
        key = "IpPermissionsEgress" if self.egress else "IpPermissions"
        for permission in (group or {}).get(key, []):
            if str(permission.get("IpProtocol")) != str(rule.get("IpProtocol")):
                continue
            if permission.get("FromPort") != rule.get("FromPort"):
                continue
            for pair in permission.get("UserIdGroupPairs", []):
                if pair.get("GroupId") == peer:
                    return str(pair.get("Description", ""))
        return ""

    def _permission(self, inputs: dict[str, Any]) -> dict[str, Any]:
        protocol = str(inputs.get("ipProtocol", "-1"))
        protocol = "-1" if protocol in ("all", "-1") else protocol
        permission: dict[str, Any] = {"IpProtocol": protocol}
        if protocol != "-1":
            permission["FromPort"] = int(inputs.get("fromPort", 0))
            permission["ToPort"] = int(inputs.get("toPort", 0))
        description = {"Description": inputs["description"]} if inputs.get("description") else {}
        if inputs.get("cidrIpv4"):
            permission["IpRanges"] = [{"CidrIp": inputs["cidrIpv4"], **description}]
        if inputs.get("cidrIpv6"):
            permission["Ipv6Ranges"] = [{"CidrIpv6": inputs["cidrIpv6"], **description}]
        if inputs.get("prefixListId"):
            permission["PrefixListIds"] = [{"PrefixListId": inputs["prefixListId"], **description}]
        if inputs.get("referencedSecurityGroupId"):
            permission["UserIdGroupPairs"] = [
                {"GroupId": inputs["referencedSecurityGroupId"], **description}
            ]
        return permission

    def _group_rules(self, group: str) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = self.clients("ec2").describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"]
        return [r for r in rules if bool(r.get("IsEgress")) == self.egress]

    def _matches(self, rule: dict[str, Any], inputs: dict[str, Any]) -> bool:
        permission = self._permission(inputs)
        return str(rule.get("IpProtocol")) == permission["IpProtocol"] and (
            rule.get("CidrIpv4") == inputs.get("cidrIpv4")
            or rule.get("ReferencedGroupInfo", {}).get("GroupId")
            == inputs.get("referencedSecurityGroupId")
        )


def _same_protocol(declared: Any, live: str) -> bool:
    names = {"-1": "-1", "all": "-1", "tcp": "6", "udp": "17", "icmp": "1"}
    declared_text = str(declared).lower() if declared is not None else "-1"
    return names.get(declared_text, declared_text) == names.get(live, live)


@dataclass(frozen=True)
class LaunchTemplate:
    """aws:ec2/launchTemplate:LaunchTemplate; id is lt-…. A changed template adds a version."""

    clients: Clients
    token = "aws:ec2/launchTemplate:LaunchTemplate"
    replace_on = frozenset({"name", "namePrefix", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        template = physical_name(inputs, "name", name, 128)
        kwargs: dict[str, Any] = {
            "LaunchTemplateName": template,
            "LaunchTemplateData": _template_data(inputs),
        }
        if inputs.get("description"):
            kwargs["VersionDescription"] = inputs["description"]
        if inputs.get("tags"):
            kwargs["TagSpecifications"] = _tag_specification("launch-template", inputs)
        with applying(self.token, name, "create"):
            id = self.clients("ec2").create_launch_template(**kwargs)["LaunchTemplate"][
                "LaunchTemplateId"
            ]
        return id, present(self.read(id, {**inputs, "name": template}), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        data_changed = _template_data(news) != _template_data(olds)
        with applying(self.token, id, "update"):
            if data_changed:
                version = ec2.create_launch_template_version(
                    LaunchTemplateId=id, LaunchTemplateData=_template_data(news)
                )["LaunchTemplateVersion"]["VersionNumber"]
                if news.get("updateDefaultVersion"):
                    ec2.modify_launch_template(LaunchTemplateId=id, DefaultVersion=str(version))
            _retag(ec2, id, olds, news)
        return present(self.read(id, {**news, "name": olds.get("name")}), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            template = _describe(
                ec2,
                "describe_launch_templates",
                "LaunchTemplates",
                "LaunchTemplateIds",
                id,
                "InvalidLaunchTemplateId.NotFound",
            )
            if template is None:
                return None
            latest = ec2.describe_launch_template_versions(
                LaunchTemplateId=id, Versions=["$Latest"]
            )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        outputs = {
            **inputs,
            "name": template["LaunchTemplateName"],
            "arn": f"arn:aws:ec2:{ec2.meta.region_name}:{template.get('CreatedBy', '').split(':')[4] if template.get('CreatedBy', '').count(':') > 4 else ''}:launch-template/{id}",
            "latestVersion": float(template["LatestVersionNumber"]),
            "defaultVersion": float(template["DefaultVersionNumber"]),
        }
        for key, parameter in (
            ("imageId", "ImageId"),
            ("instanceType", "InstanceType"),
            ("keyName", "KeyName"),
            ("userData", "UserData"),
        ):
            if key in inputs or parameter in latest:
                outputs[key] = latest.get(parameter, "")
        if "vpcSecurityGroupIds" in inputs:
            outputs["vpcSecurityGroupIds"] = in_declared_order(
                list(latest.get("SecurityGroupIds", [])), inputs.get("vpcSecurityGroupIds")
            )
        return with_tags(outputs, pulumi_tags(template.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        with (
            applying(self.token, id, "delete"),
            already_gone(
                "InvalidLaunchTemplateId.NotFound",
                "InvalidLaunchTemplateId.Malformed",
                "InvalidLaunchTemplateName.NotFoundException",
            ),
        ):
            self.clients("ec2").delete_launch_template(LaunchTemplateId=id)


def _template_data(inputs: dict[str, Any]) -> dict[str, Any]:
    """The Pulumi launch template inputs -> EC2 LaunchTemplateData (the common fields)."""
    data: dict[str, Any] = {}
    for key, parameter in (
        ("imageId", "ImageId"),
        ("instanceType", "InstanceType"),
        ("keyName", "KeyName"),
        ("userData", "UserData"),
    ):
        if inputs.get(key):
            data[parameter] = inputs[key]
    if data.get("UserData"):
        try:
            base64.b64decode(data["UserData"], validate=True)
        except ValueError:
            data["UserData"] = base64.b64encode(str(data["UserData"]).encode()).decode()
    if inputs.get("vpcSecurityGroupIds"):
        data["SecurityGroupIds"] = list(inputs["vpcSecurityGroupIds"])
    profile = inputs.get("iamInstanceProfile")
    if profile:
        data["IamInstanceProfile"] = {
            k: profile[p] for p, k in (("name", "Name"), ("arn", "Arn")) if profile.get(p)
        }
    for spec in inputs.get("tagSpecifications") or []:
        data.setdefault("TagSpecifications", []).append(
            {"ResourceType": spec["resourceType"], "Tags": aws_tags(spec.get("tags"))}
        )
    return data


def appliers(clients: Clients) -> list[ResourceType]:
    """The networking appliers."""
    return [
        InternetGateway(clients),
        Eip(clients),
        NatGateway(clients),
        RouteTable(clients),
        Route(clients),
        RouteTableAssociation(clients),
        SecurityGroupRule(clients),
        VpcSecurityGroupRule(
            clients, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", False
        ),
        VpcSecurityGroupRule(
            clients, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", True
        ),
        LaunchTemplate(clients),
    ]
