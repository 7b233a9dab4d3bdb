"""Operator tooling: the `kms-aks` command line as commands over a shared core.

From the top: `cli/` (the entry point, the subcommand table, `--all`, and the exit codes, console and options every
subcommand shares), `commands/` (one thin module per subcommand; `guard.py`, `change_summary.py` and
`cluster/reencrypt.py`, `cluster/key_status.py` are subcommands too, and `pr_comment.py` the CI step that keeps one
PR comment per stack; `sandbox/` is `kms-aks sandbox`'s core), `cluster/` and `standin/` (a running cluster; the
Azure stand-in the real engine talks to), `offline/` (the mock engine, the policy pack's process and client, the
plan), and `project/` (the project and its stack files); `guard_verdict.py`, the guard's verdict as data, is
shared. docs/development.md ("Layers") says which may import which.

It imports the program side (`kms_aks`, `components`) and `azure_facts`, never the reverse, and never the test bed.
"""
