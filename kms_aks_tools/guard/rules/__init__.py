"""The guard's named rules, one module per rule (or per family of findings of one limitation), each named after its
rule and saying in its docstring what it protects and why. `kms_aks_tools.guard.check` runs them on every step;
`kms_aks_tools.guard.steps` says which of them judge a cluster and a vault. docs/ci-and-state.md lists them all.
"""
