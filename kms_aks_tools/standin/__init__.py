"""A provider-faithful Azure stand-in that the real Pulumi engine talks to over gRPC.

`kms_aks_tools.standin.provider` is the entry point (server, `python -m`, `running_standin()`); this package holds
its parts: `wire` (a request's properties decoded once into plain values, a secret as `Secret`, and the answer
encoded once), `rules` (azure-native's diff rules and ARM's Keys semantics) and `server` (the ResourceProvider
servicer).
"""
