"""Where the rotation gate finds the re-encryption records: `--records DIR`, or `rotations/` of the project around
the working directory (written by `kms-aks reencrypt`, judged by `reencryption_records`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kms_aks_tools.cluster.reencryption_records import RECORDS_DIR, RecordError, RecordFile, load_records, records_path
from kms_aks_tools.preview.model import BadInput
from kms_aks_tools.project.stack_file import ProjectNotFoundError, find_project

_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Records:
    """Where the re-encryption records are: `--records DIR`, or `rotations/` of the project around `start`."""

    directory: Path | None = None
    start: Path = field(default_factory=Path.cwd)
    _loaded: dict[str, RecordFile] = field(default_factory=dict)

    def path_for(self, stack: str) -> Path:
        if not _STACK_NAME.match(stack):
            raise BadInput(f"stack name {stack!r} in a URN is not a stack name Pulumi allows")
        if self.directory is not None:
            return self.directory / f"{stack}.yaml"
        try:
            root = find_project(self.start)
        except ProjectNotFoundError:
            raise BadInput(
                f"the rotation gate needs the re-encryption records of stack {stack}, but no Pulumi.yaml is in "
                f"{self.start} or above: run the guard from the project, or pass --records DIR"
            ) from None
        return records_path(root, stack)

    def shown(self, path: Path) -> str:
        """`path` as the gate names it: relative to the project, whose `rotations/` is the working tree's (a copy
        of the project, as the sandbox runs the guard in, names the file to commit, not the copy's)."""
        if self.directory is not None:
            return str(path)
        return str(path.relative_to(path.parent.parent)) if path.parent.name == RECORDS_DIR else str(path)

    def load(self, stack: str) -> tuple[Path, RecordFile]:
        path = self.path_for(stack)
        if stack not in self._loaded:
            try:
                self._loaded[stack] = load_records(path, stack)
            except RecordError as error:
                raise BadInput(f"re-encryption records: {error}") from None
        return path, self._loaded[stack]
