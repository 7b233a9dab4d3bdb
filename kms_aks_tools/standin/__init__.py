"""A provider-faithful Azure stand-in that the real Pulumi engine talks to over gRPC.

`kms_aks_tools.standin.provider` is the entry point (server, `python -m`, `running_standin()`);
this package holds its parts: `wire` (property values on the wire), `rules` (azure-native's diff
rules and ARM's Keys semantics) and `server` (the ResourceProvider servicer).
"""
