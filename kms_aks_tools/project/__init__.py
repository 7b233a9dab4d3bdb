"""The project as the Pulumi CLI sees it: the nearest `Pulumi.yaml` and its stack files (`stack_file`), read as
the CLI reads them. Stdlib and PyYAML only: every other tooling layer reads stacks
through here.
"""
