"""One thin module per `kms-aks` subcommand: its options (`configure_parser`), its run (`run`), and, for a
subcommand that also runs over every stack, `stack_row`. The work is done by the layers below
(`kms_aks_tools.offline`, `project`, `cluster`, `standin`); `kms_aks_tools.cli.registry` names the modules.
"""
