"""Operator tooling: the `kms-aks` command, the mock engine and the engine stand-ins.

It imports the program side (`kms_aks`, `components`), never the reverse.
"""
