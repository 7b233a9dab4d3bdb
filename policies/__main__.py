"""What the Pulumi CLI runs (`python -u -m pulumi.policy <engine> <this folder>`): builds the kms-aks pack.

Constructing the PolicyPack starts the analyzer server, prints its port and blocks, so nothing imports this
file; the policies live in kms_pack.py and their rules in the kms_rules package.
"""

import shared_stack_view
from kms_pack import PACK_NAME, POLICIES, tune_garbage_collector
from pulumi_policy import EnforcementLevel, PolicyPack

tune_garbage_collector()
shared_stack_view.install()
PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
