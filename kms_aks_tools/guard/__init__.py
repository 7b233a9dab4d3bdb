"""Plan guard (`kms-aks guard`): refuses a `pulumi preview --json` plan that can cut a cluster off its KMS key.

A policy pack sees only the desired state, so it cannot tell a new cluster from an existing one whose KMS key is
being swapped, whose identity loses its grant on the key, or whose vault is closed to it. `pulumi preview` shows
all of those as ordinary one-line updates. The guard reads the preview's steps (old and new state, detailed
diff) and judges every change to what a cluster's KMS depends on against a reviewed safe list:

- `check.py`: the whole preview: types, the KMS closure, the rules per step, the rotation gate, the overrides;
- `closure.py`: the preview's steps as `azure_facts.kms_closure` records (the closure shared with the pack);
- `rules/`: one module per rule, each a plain function of a step (or its values) returning findings, with a
  docstring saying what it protects and why; `steps.py` says which rules judge a cluster and a vault, and what
  they watch; `detailed_diff.py` is their fallback when values are masked or missing;
- `known_safe.py`: the reviewed known-safe list, each entry with its reason; anything on the closure that is
  neither on it nor judged by a named rule is `unreviewed-kms-change`;
- `identities.py`: which grants are the KMS identity's (fail closed);
- `overrides.py`: the reviewable overrides file, each entry excusing exactly one finding; `records.py`: where the
  rotation gate finds the re-encryption records;
- `render.py`: the text and the verdict as data (`--json`). The command is `kms_aks_tools.commands.guard`; the
  preview model, shared with `kms-aks changes`, is `kms_aks_tools.preview`; a finding is `azure_facts.findings`.

Exit status: 0 when the plan is clean, 1 when there are findings, 2 when the input is unusable (not JSON, not
the preview shape, no steps, a failed preview, a malformed override or records file). Nothing passes by
default: input the guard cannot read is a refusal, never a pass. docs/ci-and-state.md documents every rule.

This module names the public API.
"""

from azure_facts.engine import type_from_urn
from azure_facts.findings import Finding
from azure_facts.property_paths import split_property_path
from kms_aks_tools.guard.check import GuardResult, check_preview
from kms_aks_tools.guard.common import EXTERNAL_CLUSTER_CONFIG, OVERRIDABLE_RULES, ROTATION_GATE_RULE
from kms_aks_tools.guard.overrides import (
    KeyRotationOverride,
    Override,
    OverrideFile,
    ReencryptionWaiver,
    TransitionOverride,
    load_override_file,
    parse_override_flag,
)
from kms_aks_tools.guard.records import Records
from kms_aks_tools.guard.rules.key_create_time_change import KEY_CREATE_TIME_SETTINGS
from kms_aks_tools.preview.model import BadInput, Preview, load_preview

__all__ = [
    "EXTERNAL_CLUSTER_CONFIG",
    "KEY_CREATE_TIME_SETTINGS",
    "OVERRIDABLE_RULES",
    "ROTATION_GATE_RULE",
    "BadInput",
    "Finding",
    "GuardResult",
    "KeyRotationOverride",
    "Override",
    "OverrideFile",
    "Preview",
    "Records",
    "ReencryptionWaiver",
    "TransitionOverride",
    "check_preview",
    "load_override_file",
    "load_preview",
    "parse_override_flag",
    "split_property_path",
    "type_from_urn",
]
