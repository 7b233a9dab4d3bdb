"""The `kms-aks` command line as a frame the subcommands plug into: `main` (the entry point), `registry` (the
subcommand table: module names, imported only when a subcommand runs), `every_stack` (`--all`), and what every
subcommand shares: `exits` (the exit codes), `console` (one console setup) and `options` (shared options).

It imports no subcommand module: `kms_aks_tools.commands` and the other subcommand modules import from here.
"""
