"""EC2: VPCs, subnets, security groups (inline rules) and instances."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rollback.aws.session import Clients
from rollback.engine.embedded.resources.declared import in_declared_order
from rollback.engine.embedded.resources.failures import (
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


def _arn(ec2: Any, owner: str, kind: str, id: str) -> str:
    return f"arn:aws:ec2:{ec2.meta.region_name}:{owner}:{kind}/{id}"


@dataclass(frozen=True)
class Vpc:
    """aws:ec2/vpc:Vpc; id is the VPC id. Tags and the DNS attributes change in place."""

    clients: Clients
    token = "aws:ec2/vpc:Vpc"
    replace_on = frozenset(
        {"cidrBlock", "instanceTenancy", "ipv4IpamPoolId", "ipv4NetmaskLength", "region"}
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2")
        with applying(self.token, name, "create"):
            vpc = ec2.create_vpc(
                CidrBlock=inputs["cidrBlock"],
                InstanceTenancy=inputs.get("instanceTenancy", "default"),
                TagSpecifications=_tag_specification("vpc", inputs),
            )["Vpc"]
            id = vpc["VpcId"]
            ec2.get_waiter("vpc_available").wait(VpcIds=[id])
            self._set_dns(ec2, id, {}, inputs)
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            _retag(ec2, id, olds, news)
            self._set_dns(ec2, id, olds, news)
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            try:
                vpc = ec2.describe_vpcs(VpcIds=[id])["Vpcs"][0]
            except ClientError as exc:
                if aws_code(exc) == "InvalidVpcID.NotFound":
                    return None
                raise
            dns = {
                key: ec2.describe_vpc_attribute(VpcId=id, Attribute=attribute)[field]["Value"]
                for key, attribute, field in (
                    ("enableDnsSupport", "enableDnsSupport", "EnableDnsSupport"),
                    ("enableDnsHostnames", "enableDnsHostnames", "EnableDnsHostnames"),
                )
            }
            filters = [{"Name": "vpc-id", "Values": [id]}]
            main_table = ec2.describe_route_tables(
                Filters=[*filters, {"Name": "association.main", "Values": ["true"]}]
            )["RouteTables"]
            default_group = ec2.describe_security_groups(
                Filters=[*filters, {"Name": "group-name", "Values": ["default"]}]
            )["SecurityGroups"]
            default_acl = ec2.describe_network_acls(
                Filters=[*filters, {"Name": "default", "Values": ["true"]}]
            )["NetworkAcls"]
        main_table_id = main_table[0]["RouteTableId"] if main_table else ""
        outputs = {
            **inputs,
            **dns,
            "cidrBlock": vpc["CidrBlock"],
            "instanceTenancy": vpc.get("InstanceTenancy", "default"),
            "arn": _arn(ec2, vpc["OwnerId"], "vpc", id),
            "ownerId": vpc["OwnerId"],
            "dhcpOptionsId": vpc.get("DhcpOptionsId", ""),
            "mainRouteTableId": main_table_id,
            "defaultRouteTableId": main_table_id,
            "defaultSecurityGroupId": default_group[0]["GroupId"] if default_group else "",
            "defaultNetworkAclId": default_acl[0]["NetworkAclId"] if default_acl else "",
        }
        return with_tags(outputs, pulumi_tags(vpc.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ec2 = self.clients("ec2")
        delete_when_free(
            self.token, id, lambda: ec2.delete_vpc(VpcId=id), {"InvalidVpcID.NotFound"}
        )

    def _set_dns(self, ec2: Any, id: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
        for key in ("enableDnsSupport", "enableDnsHostnames"):
            if key in news and news[key] != olds.get(key):
                ec2.modify_vpc_attribute(
                    VpcId=id, **{key[0].upper() + key[1:]: {"Value": bool(news[key])}}
                )


# Subnet flags that change in place with ModifySubnetAttribute: Pulumi input -> attribute.
_SUBNET_FLAGS = (
    ("mapPublicIpOnLaunch", "MapPublicIpOnLaunch"),
    ("assignIpv6AddressOnCreation", "AssignIpv6AddressOnCreation"),
)


@dataclass(frozen=True)
class Subnet:
    """aws:ec2/subnet:Subnet; id is the subnet id. Tags and the on-launch flags change in place."""

    clients: Clients
    token = "aws:ec2/subnet:Subnet"
    replace_on = frozenset(
        {
            "vpcId",
            "cidrBlock",
            "availabilityZone",
            "availabilityZoneId",
            "ipv6Native",
            "outpostArn",
            "ipv4IpamPoolId",
            "ipv4NetmaskLength",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2")
        kwargs: dict[str, Any] = {
            "VpcId": inputs["vpcId"],
            "CidrBlock": inputs["cidrBlock"],
            "TagSpecifications": _tag_specification("subnet", inputs),
        }
        if inputs.get("availabilityZone"):
            kwargs["AvailabilityZone"] = inputs["availabilityZone"]
        elif inputs.get("availabilityZoneId"):
            kwargs["AvailabilityZoneId"] = inputs["availabilityZoneId"]
        with applying(self.token, name, "create"):
            id = ec2.create_subnet(**kwargs)["Subnet"]["SubnetId"]
            ec2.get_waiter("subnet_available").wait(SubnetIds=[id])
            for key, attribute in _SUBNET_FLAGS:
                if inputs.get(key):
                    ec2.modify_subnet_attribute(SubnetId=id, **{attribute: {"Value": True}})
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            _retag(ec2, id, olds, news)
            for key, attribute in _SUBNET_FLAGS:
                wanted = bool(news.get(key, False))
                if wanted != bool(olds.get(key, False)):
                    ec2.modify_subnet_attribute(SubnetId=id, **{attribute: {"Value": wanted}})
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            try:
                subnet = ec2.describe_subnets(SubnetIds=[id])["Subnets"][0]
            except ClientError as exc:
                if aws_code(exc) == "InvalidSubnetID.NotFound":
                    return None
                raise
        outputs = {
            **inputs,
            "vpcId": subnet["VpcId"],
            "cidrBlock": subnet["CidrBlock"],
            "availabilityZone": subnet["AvailabilityZone"],
            "availabilityZoneId": subnet.get("AvailabilityZoneId", ""),
            "mapPublicIpOnLaunch": bool(subnet.get("MapPublicIpOnLaunch", False)),
            "arn": subnet.get("SubnetArn") or _arn(ec2, subnet["OwnerId"], "subnet", id),
            "ownerId": subnet["OwnerId"],
        }
        if "assignIpv6AddressOnCreation" in inputs:
            outputs["assignIpv6AddressOnCreation"] = bool(
                subnet.get("AssignIpv6AddressOnCreation", False)
            )
        return with_tags(outputs, pulumi_tags(subnet.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ec2 = self.clients("ec2")
        delete_when_free(
            self.token, id, lambda: ec2.delete_subnet(SubnetId=id), {"InvalidSubnetID.NotFound"}
        )


# One security group rule atom: (protocol, from, to, kind, value, description).
_Atom = tuple[str, int, int, str, str, str]
_RULE_LISTS = (
    ("cidrBlocks", "IpRanges", "CidrIp"),
    ("ipv6CidrBlocks", "Ipv6Ranges", "CidrIpv6"),
    ("prefixListIds", "PrefixListIds", "PrefixListId"),
    ("securityGroups", "UserIdGroupPairs", "GroupId"),
)
_PROTOCOLS = {"all": "-1", "6": "tcp", "17": "udp", "1": "icmp"}


def _atoms(rules: list[dict[str, Any]] | None, group_id: str) -> set[_Atom]:
    """Pulumi rules -> the set of single-source permissions AWS stores."""
    atoms: set[_Atom] = set()
    for rule in rules or ():
        declared = rule.get("protocol", "-1")
        # A program may pass the protocol as a number (`protocol=-1`): the SDK sends -1.0.
        text = str(int(declared)) if isinstance(declared, int | float) else str(declared).lower()
        protocol = _PROTOCOLS.get(text, text)
        ports = (
            (0, 0)
            if protocol == "-1"
            else (int(rule.get("fromPort", 0)), int(rule.get("toPort", 0)))
        )
        description = str(rule.get("description") or "")
        for key, _, _ in _RULE_LISTS:
            atoms |= {(protocol, *ports, key, str(v), description) for v in rule.get(key) or ()}
        if rule.get("self"):
            atoms.add((protocol, *ports, "securityGroups", group_id, description))
    return atoms


def _live_atoms(permissions: list[dict[str, Any]]) -> set[_Atom]:
    atoms: set[_Atom] = set()
    for permission in permissions:
        protocol = str(permission["IpProtocol"])
        ports = (
            (0, 0)
            if protocol == "-1"
            else (int(permission.get("FromPort", 0)), int(permission.get("ToPort", 0)))
        )
        for key, aws_list, aws_key in _RULE_LISTS:
            for entry in permission.get(aws_list, []):
                atoms.add(
                    (protocol, *ports, key, str(entry[aws_key]), str(entry.get("Description", "")))
                )
    return atoms


def _rules(atoms: set[_Atom], group_id: str) -> list[dict[str, Any]]:
    """Atoms -> Pulumi rules, one per (protocol, ports, description), in a stable order."""
    rules: dict[tuple[str, int, int, str], dict[str, Any]] = {}
    for protocol, start, end, key, value, description in sorted(atoms):
        rule = rules.setdefault(
            (protocol, start, end, description),
            {
                "protocol": protocol,
                "fromPort": float(start),
                "toPort": float(end),
                "description": description,
                "self": False,
                **{k: [] for k, _, _ in _RULE_LISTS},
            },
        )
        if key == "securityGroups" and value == group_id:
            rule["self"] = True
        else:
            rule[key].append(value)
    return list(rules.values())


def _read_rules(live: set[_Atom], declared: Any, group_id: str) -> list[dict[str, Any]]:
    """The live rules: each declared rule as written when all of it is live, cut down to
    its live parts when some is, left out when none is; then undeclared live rules."""
    remaining = set(live)
    rules: list[dict[str, Any]] = []
    for rule in declared if isinstance(declared, list) else []:
        wanted = _atoms([rule], group_id)
        present = wanted & remaining
        remaining -= present
        if present == wanted:
            rules.append(rule)
        elif present:
            values = {(key, value) for *_, key, value, _ in present}
            partial = {
                **rule,
                **{
                    key: [v for v in rule.get(key) or () if (key, str(v)) in values]
                    for key, _, _ in _RULE_LISTS
                    if key in rule
                },
            }
            if rule.get("self"):
                partial["self"] = ("securityGroups", group_id) in values
            rules.append(partial)
    return rules + _rules(remaining, group_id)


def _permissions(atoms: set[_Atom]) -> list[dict[str, Any]]:
    """Atoms -> AWS IpPermissions, one permission per atom."""
    permissions = []
    for protocol, start, end, key, value, description in sorted(atoms):
        aws_list, aws_key = next((a, k) for name, a, k in _RULE_LISTS if name == key)
        entry = {aws_key: value, **({"Description": description} if description else {})}
        permission: dict[str, Any] = {"IpProtocol": protocol, aws_list: [entry]}
        if protocol != "-1":
            permission |= {"FromPort": start, "ToPort": end}
        permissions.append(permission)
    return permissions


@dataclass(frozen=True)
class SecurityGroup:
    """aws:ec2/securityGroup:SecurityGroup with inline ingress and egress; id is the group id.

    Rules are outputs in a canonical form (one rule per protocol, ports and
    description, every list present, ports as floats) so create and read agree.
    Like the AWS provider, the default allow-all egress is removed unless declared.
    """

    clients: Clients
    token = "aws:ec2/securityGroup:SecurityGroup"
    replace_on = frozenset({"name", "namePrefix", "description", "vpcId", "region"})

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2")
        group_name = physical_name(inputs, "name", name, 255)
        kwargs: dict[str, Any] = {
            "GroupName": group_name,
            "Description": inputs.get("description") or "Managed by Pulumi",
            "TagSpecifications": _tag_specification("security-group", inputs),
        }
        if inputs.get("vpcId"):
            kwargs["VpcId"] = inputs["vpcId"]
        with applying(self.token, name, "create"):
            id = ec2.create_security_group(**kwargs)["GroupId"]
            ec2.get_waiter("security_group_exists").wait(GroupIds=[id])
            self._sync_rules(ec2, id, inputs, ("ingress", "egress"))
        return id, present(self.read(id, {**inputs, "name": group_name}), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        directions = tuple(d for d in ("ingress", "egress") if d in news or d in olds)
        with applying(self.token, id, "update"):
            _retag(ec2, id, olds, news)
            self._sync_rules(ec2, id, news, directions)
        return present(
            self.read(id, {**news, "name": olds.get("name", news.get("name"))}), self.token, id
        )

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        group = self._describe(id)
        if group is None:
            return None
        ec2 = self.clients("ec2")
        outputs = {
            **inputs,
            "name": group["GroupName"],
            "description": group["Description"],
            "vpcId": group.get("VpcId", ""),
            "ownerId": group["OwnerId"],
            "arn": _arn(ec2, group["OwnerId"], "security-group", id),
            "ingress": _read_rules(
                _live_atoms(group.get("IpPermissions", [])), inputs.get("ingress"), id
            ),
            "egress": _read_rules(
                _live_atoms(group.get("IpPermissionsEgress", [])), inputs.get("egress"), id
            ),
        }
        return with_tags(outputs, pulumi_tags(group.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        ec2 = self.clients("ec2")
        delete_when_free(
            self.token, id, lambda: ec2.delete_security_group(GroupId=id), {"InvalidGroup.NotFound"}
        )

    def _describe(self, id: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with applying(self.token, id, "read"):
            try:
                groups = self.clients("ec2").describe_security_groups(GroupIds=[id])[
                    "SecurityGroups"
                ]
            except ClientError as exc:
                if aws_code(exc) == "InvalidGroup.NotFound":
                    return None
                raise
        return dict(groups[0]) if groups else None

    def _sync_rules(
        self, ec2: Any, id: str, inputs: dict[str, Any], directions: tuple[str, ...]
    ) -> None:
        """Make the live rules of `directions` equal the inputs': revoke extra, authorize missing."""
        group = self._describe(id)
        if group is None:
            return
        live_keys = {"ingress": "IpPermissions", "egress": "IpPermissionsEgress"}
        for direction in directions:
            live = _live_atoms(group.get(live_keys[direction], []))
            wanted = _atoms(inputs.get(direction), id)
            revoke, authorize = (
                (ec2.revoke_security_group_ingress, ec2.authorize_security_group_ingress)
                if direction == "ingress"
                else (ec2.revoke_security_group_egress, ec2.authorize_security_group_egress)
            )
            if live - wanted:
                revoke(GroupId=id, IpPermissions=_permissions(live - wanted))
            if wanted - live:
                authorize(GroupId=id, IpPermissions=_permissions(wanted - live))


_INSTANCE_GONE = {"terminated", "shutting-down"}


@dataclass(frozen=True)
class Instance:
    """aws:ec2/instance:Instance; id is the instance id.

    Tags and security groups change in place; a new instanceType stops the
    instance, changes it and starts it again, as the AWS provider does.
    """

    clients: Clients
    token = "aws:ec2/instance:Instance"
    replace_on = frozenset(
        {
            "ami",
            "subnetId",
            "availabilityZone",
            "keyName",
            "privateIp",
            "associatePublicIpAddress",
            "userData",
            "userDataBase64",
            "iamInstanceProfile",
            "tenancy",
            "placementGroup",
            "region",
        }
    )

    def create(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ec2 = self.clients("ec2")
        kwargs: dict[str, Any] = {
            "ImageId": inputs["ami"],
            "InstanceType": inputs.get("instanceType", "t3.micro"),
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": _tag_specification("instance", inputs),
        }
        network: dict[str, Any] = {}
        if inputs.get("subnetId"):
            network["SubnetId"] = inputs["subnetId"]
        if inputs.get("vpcSecurityGroupIds"):
            network["Groups"] = list(inputs["vpcSecurityGroupIds"])
        if inputs.get("privateIp"):
            network["PrivateIpAddress"] = inputs["privateIp"]
        if "associatePublicIpAddress" in inputs:
            kwargs["NetworkInterfaces"] = [
                {
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": bool(inputs["associatePublicIpAddress"]),
                    **network,
                }
            ]
        else:
            renamed = {
                "Groups": "SecurityGroupIds",
                "PrivateIpAddress": "PrivateIpAddress",
                "SubnetId": "SubnetId",
            }
            kwargs |= {renamed[k]: v for k, v in network.items()}
        if inputs.get("userData"):
            kwargs["UserData"] = inputs["userData"]
        elif inputs.get("userDataBase64"):
            kwargs["UserData"] = base64.b64decode(inputs["userDataBase64"]).decode()
        if inputs.get("keyName"):
            kwargs["KeyName"] = inputs["keyName"]
        if inputs.get("iamInstanceProfile"):
            kwargs["IamInstanceProfile"] = {"Name": inputs["iamInstanceProfile"]}
        if inputs.get("monitoring"):
            kwargs["Monitoring"] = {"Enabled": True}
        with applying(self.token, name, "create"):
            id = ec2.run_instances(**kwargs)["Instances"][0]["InstanceId"]
            ec2.get_waiter("instance_running").wait(InstanceIds=[id])
        return id, present(self.read(id, inputs), self.token, id)

    def update(self, id: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        ec2 = self.clients("ec2")
        with applying(self.token, id, "update"):
            _retag(ec2, id, olds, news)
            groups = sorted(news.get("vpcSecurityGroupIds") or [])
            if groups and groups != sorted(olds.get("vpcSecurityGroupIds") or []):
                ec2.modify_instance_attribute(InstanceId=id, Groups=groups)
            if news.get("instanceType") and news["instanceType"] != olds.get("instanceType"):
                ec2.stop_instances(InstanceIds=[id])
                ec2.get_waiter("instance_stopped").wait(InstanceIds=[id])
                ec2.modify_instance_attribute(
                    InstanceId=id, InstanceType={"Value": news["instanceType"]}
                )
                ec2.start_instances(InstanceIds=[id])
                ec2.get_waiter("instance_running").wait(InstanceIds=[id])
        return present(self.read(id, news), self.token, id)

    def read(self, id: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        ec2 = self.clients("ec2")
        with applying(self.token, id, "read"):
            try:
                reservations = ec2.describe_instances(InstanceIds=[id])["Reservations"]
            except ClientError as exc:
                if aws_code(exc) == "InvalidInstanceID.NotFound":
                    return None
                raise
        instances = [i for r in reservations for i in r["Instances"]]
        if not instances or instances[0]["State"]["Name"] in _INSTANCE_GONE:
            return None
        instance = instances[0]
        interfaces = instance.get("NetworkInterfaces") or [{}]
        outputs = {
            **inputs,
            "ami": instance["ImageId"],
            "instanceType": instance["InstanceType"],
            "availabilityZone": instance.get("Placement", {}).get("AvailabilityZone", ""),
            "subnetId": instance.get("SubnetId", ""),
            "vpcSecurityGroupIds": in_declared_order(
                [g["GroupId"] for g in instance.get("SecurityGroups", [])],
                inputs.get("vpcSecurityGroupIds"),
            ),
            "privateIp": instance.get("PrivateIpAddress", ""),
            "privateDns": instance.get("PrivateDnsName", ""),
            "publicIp": instance.get("PublicIpAddress", ""),
            "publicDns": instance.get("PublicDnsName", ""),
            "instanceState": instance["State"]["Name"],
            "primaryNetworkInterfaceId": interfaces[0].get("NetworkInterfaceId", ""),
            "arn": _arn(ec2, reservations[0].get("OwnerId", ""), "instance", id),
        }
        return with_tags(outputs, pulumi_tags(instance.get("Tags")))

    def delete(self, id: str, inputs: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        ec2 = self.clients("ec2")
        with applying(self.token, id, "delete"):
            try:
                ec2.terminate_instances(InstanceIds=[id])
            except ClientError as exc:
                if aws_code(exc) == "InvalidInstanceID.NotFound":
                    return
                raise
            ec2.get_waiter("instance_terminated").wait(InstanceIds=[id])


def appliers(clients: Clients) -> list[ResourceType]:
    """The EC2 appliers."""
    return [Vpc(clients), Subnet(clients), SecurityGroup(clients), Instance(clients)]
