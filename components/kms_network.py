"""KmsNetwork: the VNet a private KMS key vault needs, with a delegated API server subnet and a node subnet."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import network

# API server VNet integration projects the API server into a subnet delegated to AKS alone.
API_SERVER_DELEGATION = "Microsoft.ContainerService/managedClusters"


@dataclass(frozen=True)
class NetworkSpec:
    """The VNet's address space and its two subnets' prefixes, as CIDR strings (e.g. 10.20.0.0/22)."""

    vnet_address_space: str
    api_server_subnet_prefix: str
    node_subnet_prefix: str


@dataclass
class PrivateKmsArgs:
    """A private KMS vault: where it is, and the subnets API server VNet integration puts the cluster in.

    AKS refuses `keyVaultNetworkAccess: Private` without `keyVaultResourceId`, and without API server VNet
    integration ("Vnet integration should be enabled when KeyVault network access is Private").
    """

    key_vault_resource_id: pulumi.Input[str]
    api_server_subnet_id: pulumi.Input[str]
    node_subnet_id: pulumi.Input[str]


@dataclass
class KmsNetworkArgs:
    """Where the VNet lives and its address plan (the caller validates it: subnets inside the VNet, no overlap).

    `vnet_name` names the VNet; the subnets are `snet-apiserver` and `snet-nodes` inside it.
    """

    network: NetworkSpec
    vnet_name: str
    resource_group_name: pulumi.Input[str]
    location: str
    tags: dict[str, str] = field(default_factory=dict)


class KmsNetwork(pulumi.ComponentResource):
    """A VNet with an API server subnet delegated to `Microsoft.ContainerService/managedClusters` and a node subnet.

    AKS reaches a private KMS vault from the API server, so the API server must run in a VNet (API server VNet
    integration, `apiServerAccessProfile.subnetId`); the nodes join the same VNet (`vnetSubnetId`) so that they
    reach the API server's internal load balancer. Outputs: `vnet_id`, `api_server_subnet_id`, `node_subnet_id`.
    """

    vnet: network.VirtualNetwork
    api_server_subnet: network.Subnet
    node_subnet: network.Subnet
    vnet_id: pulumi.Output[str]
    api_server_subnet_id: pulumi.Output[str]
    node_subnet_id: pulumi.Output[str]

    def __init__(self, name: str, args: KmsNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kms-aks:index:KmsNetwork", name, None, opts)
        cfg = args.network
        self.vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=args.vnet_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[cfg.vnet_address_space]),
            # No inline `subnets`: they are separate Subnet resources below. Declaring both makes every VNet
            # update fight the Subnet resources; omitted, ARM and azure-native keep the existing subnets.
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.api_server_subnet = network.Subnet(
            f"{name}-apiserver-subnet",
            subnet_name="snet-apiserver",
            virtual_network_name=self.vnet.name,
            resource_group_name=args.resource_group_name,
            address_prefix=cfg.api_server_subnet_prefix,
            delegations=[network.DelegationArgs(name="aks-apiserver", service_name=API_SERVER_DELEGATION)],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.node_subnet = network.Subnet(
            f"{name}-node-subnet",
            subnet_name="snet-nodes",
            virtual_network_name=self.vnet.name,
            resource_group_name=args.resource_group_name,
            address_prefix=cfg.node_subnet_prefix,
            # The network provider takes one subnet write per VNet at a time and refuses a concurrent one
            # (AnotherOperationInProgress); one after the other costs seconds and never fails on that.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.api_server_subnet]),
        )
        self.vnet_id = self.vnet.id
        self.api_server_subnet_id = self.api_server_subnet.id
        self.node_subnet_id = self.node_subnet.id

        self.register_outputs(
            {
                "vnetId": self.vnet_id,
                "apiServerSubnetId": self.api_server_subnet_id,
                "nodeSubnetId": self.node_subnet_id,
            }
        )
