"""The configs of this repository, validated in one place each: `base` (the strict model base, constrained
strings, one error description), `stack` (a kms-aks stack's `Pulumi.<stack>.yaml`), `fleet` (the fleet project's).
"""
