"""The project as the Pulumi CLI sees it: the nearest `Pulumi.yaml` and its stack files (`stack_file`), read as
the CLI reads them, and a stack file as the program reads it (`stack_config`). Every other tooling layer reads
stacks through here.
"""
