"""`python -m kms_aks_tools.cli`: the same as the `kms-aks` console script."""

from kms_aks_tools.cli.main import entry_point

entry_point()
