"""The core of `kms-aks sandbox` (its command is `kms_aks_tools.commands.sandbox`): `home.py` the sandbox of a
project (`.sandbox/`: its state backend, the stand-in's saved cloud, the project copy, its secrets, its lock),
`actions.py` what each action does (the workflows' preview and apply under the real CLI against the stand-in, the
stack's local cluster, a new key version, destroy, status, reset)."""
