"""The policy pack, run exactly as the Pulumi CLI runs it and driven over the analyzer protocol.

`process` starts it and connects (the interpreter, the port, the end), `client` speaks the protocol (the requests
the engine sends, the calls), `results` shapes what it answers, `config` reads and reconciles its config.

The CLI starts `python -u -m pulumi.policy <engine-address> <pack-dir>` in the pack's folder, reads the port
the pack prints on stdout, then calls `GetAnalyzerInfo`, `Configure`, `Analyze` once per resource (its inputs)
and `AnalyzeStack` once (every resource's outputs, with parents and dependencies). This module does the same
with the resources the mock engine recorded, so tests, `make plan` and the benchmark exercise the real pack.

    with running_policy_pack(stack="dev") as client:
        result = client.check(recorded.resources)
        for violation in result.mandatory: ...

For `make plan`, start the pack first and let it boot while the program runs:

    pack = PolicyPackProcess().start()        # returns at once
    recorded = run_stack("dev")
    client = pack.wait_ready()                 # the port, a connected channel
    ...
    pack.close()                               # or use `with PolicyPackProcess() as pack:`

The engine address: `pulumi.policy` takes it as its first argument and never dials it (it only logs to the
engine when PULUMI_* settings point it at one; otherwise it logs to stderr), so a placeholder is passed.
"""

from kms_aks_tools.offline.policy_pack.client import (
    DEFAULT_RPC_TIMEOUT,
    PolicyClient,
    PolicyPackError,
    StackProperties,
    analyze_request,
    analyze_stack_request,
    analyzer_resource,
    stack_properties,
    to_struct,
)
from kms_aks_tools.offline.policy_pack.config import (
    POLICY_PACK_DIR,
    PolicyConfigEntry,
    PolicyConfigError,
    load_policy_config,
    policy_config_path,
    reconcile_policy_config,
)
from kms_aks_tools.offline.policy_pack.process import (
    DEFAULT_START_TIMEOUT,
    UNUSED_ENGINE_ADDRESS,
    PolicyPackProcess,
    resolve_python,
    running_policy_pack,
)
from kms_aks_tools.offline.policy_pack.results import (
    ENFORCEMENT_LEVELS,
    AnalysisResult,
    AnalyzerInfo,
    NotApplicable,
    PolicyInfo,
    PolicyViolation,
)

__all__ = [
    "DEFAULT_RPC_TIMEOUT",
    "DEFAULT_START_TIMEOUT",
    "ENFORCEMENT_LEVELS",
    "POLICY_PACK_DIR",
    "UNUSED_ENGINE_ADDRESS",
    "AnalysisResult",
    "AnalyzerInfo",
    "NotApplicable",
    "PolicyClient",
    "PolicyConfigEntry",
    "PolicyConfigError",
    "PolicyInfo",
    "PolicyPackError",
    "PolicyPackProcess",
    "PolicyViolation",
    "StackProperties",
    "analyze_request",
    "analyze_stack_request",
    "analyzer_resource",
    "load_policy_config",
    "policy_config_path",
    "reconcile_policy_config",
    "resolve_python",
    "running_policy_pack",
    "stack_properties",
    "to_struct",
]
