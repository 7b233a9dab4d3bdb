"""Which VM sizes can hold an ephemeral OS disk of the size this project gives its nodes.

An ephemeral OS disk lives on the VM's local storage (its cache disk, else its temporary "resource" disk) and must
fit there whole. AKS gives a node pool a 128 GiB OS disk by default; this project sets that size explicitly, so a
VM size qualifies when its cache or temporary disk holds at least 128 GiB.

Sources (Microsoft Learn):
- https://learn.microsoft.com/azure/aks/concepts-storage#ephemeral-os-disk (AKS defaults to ephemeral when the
  VM size's cache or temp disk can hold the OS disk; placement and size requirements)
- https://learn.microsoft.com/azure/virtual-machines/ephemeral-os-disks#size-requirements
- the VM size pages for the local disk sizes below, e.g.
  https://learn.microsoft.com/azure/virtual-machines/sizes/general-purpose/ddsv5-series ("Temp storage (SSD) GiB"),
  https://learn.microsoft.com/azure/virtual-machines/dv2-dsv2-series ("Max cached and temp storage ... (cache size
  in GiB)").

The table is small on purpose: a size it does not list gets a managed OS disk (always valid) and a warning that
`cluster.systemNodePool.osDiskType: Ephemeral` can be set by hand.
"""

from __future__ import annotations

from typing import Literal

OsDiskType = Literal["Ephemeral", "Managed"]

# The OS disk size this project sets on the system pool (AKS's default), in GiB.
OS_DISK_SIZE_GB = 128

# VM size -> the largest local disk an ephemeral OS disk can be placed on (cache or temp), in GiB.
_DDSV5_TEMP = {2: 75, 4: 150, 8: 300, 16: 600, 32: 1200, 48: 1800, 64: 2400, 96: 3600}
EPHEMERAL_CAPACITY_GIB: dict[str, int] = {
    # Ddsv5, Dadsv5, Edsv5, Eadsv5: a temporary disk, no cache disk.
    **{f"Standard_D{n}ds_v5": gib for n, gib in _DDSV5_TEMP.items()},
    **{f"Standard_D{n}ads_v5": gib for n, gib in _DDSV5_TEMP.items()},
    **{f"Standard_E{n}ds_v5": gib for n, gib in _DDSV5_TEMP.items()},
    **{f"Standard_E{n}ads_v5": gib for n, gib in _DDSV5_TEMP.items()},
    # Dsv5, Dasv5, Esv5: no local disk at all.
    **{f"Standard_D{n}s_v5": 0 for n in _DDSV5_TEMP},
    **{f"Standard_D{n}as_v5": 0 for n in _DDSV5_TEMP},
    **{f"Standard_E{n}s_v5": 0 for n in _DDSV5_TEMP},
    # DSv2 (AKS's long-time default size): cache disk.
    "Standard_DS2_v2": 86,
    "Standard_DS3_v2": 172,
    "Standard_DS4_v2": 344,
    "Standard_DS5_v2": 688,
    # Dsv3: cache disk.
    "Standard_D2s_v3": 50,
    "Standard_D4s_v3": 100,
    "Standard_D8s_v3": 200,
    "Standard_D16s_v3": 400,
    "Standard_D32s_v3": 800,
}


def ephemeral_capacity(vm_size: str) -> int | None:
    """GiB of local disk an ephemeral OS disk can use on `vm_size`; None when the table does not know the size."""
    return EPHEMERAL_CAPACITY_GIB.get(vm_size)


def default_os_disk_type(vm_size: str) -> OsDiskType:
    """Ephemeral where the OS disk fits on the VM's local disk, Managed otherwise (and for unknown sizes)."""
    capacity = ephemeral_capacity(vm_size)
    return "Ephemeral" if capacity is not None and capacity >= OS_DISK_SIZE_GB else "Managed"
