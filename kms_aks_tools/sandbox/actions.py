"""What each `kms-aks sandbox` action does: the workflows' own commands (`.ci/pulumi-stack`) under the real Pulumi CLI,
with the environment `make e2e` gives them (`kms_aks_tools.offline.realcli`), against the Azure stand-in over the
sandbox's saved cloud; the stack's local cluster (`testbed/sandbox_cluster.py`); a new key version."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from kms_aks_tools.cli.exits import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_OK
from kms_aks_tools.offline import realcli
from kms_aks_tools.sandbox.home import MARKER, SLEEP_CAP_SECONDS, Sandbox, SandboxError, stack_names


@contextlib.contextmanager
def running(sandbox: Sandbox, stack: str, console: Console, *, create: bool = True) -> Iterator[realcli.CliWorkspace]:
    """The CLI, the project copy and the stand-in over the saved cloud; the cloud is saved again afterwards,
    whatever happened (a failed `up` may have created half of the resources, as in Azure). With `create`, the
    stack is created in the sandbox's backend when it is not there yet."""
    from kms_aks_tools.standin.provider import running_standin
    from kms_aks_tools.standin.saved import save_states

    stack_text = sandbox.check_stack(stack)
    try:
        bin_dir = realcli.toolchain_bin(show_progress=True)
    except realcli.ToolchainError as error:
        raise SandboxError(str(error)) from None
    with sandbox.locked():
        states = sandbox.cloud()
        sandbox.refresh_copy(stack, stack_text)
        with running_standin(sleep_cap=SLEEP_CAP_SECONDS, states=states) as standin:
            try:
                space = sandbox.workspace(bin_dir, standin.debug_providers)
                if create:
                    sandbox.ensure_stack(space, stack, console)
                yield space
            finally:
                with standin.cloud.lock:
                    save_states(standin.cloud.states, sandbox.cloud_file)


def _check_config(sandbox: Sandbox, stack: str) -> int:
    """The offline checks first: an unknown stack or a bad stack file is named in a second, with exit 2, before the
    CLI is built or run (`kms-aks check-config`'s own check and message)."""
    from kms_aks_tools.commands.check_config import check_config

    sandbox.check_stack(stack)
    return check_config(argparse.Namespace(stack=stack, cwd=sandbox.project))


def preview_as_ci(sandbox: Sandbox, space: realcli.CliWorkspace, stack: str, console: Console) -> int:
    """The workflows' preview (the pack enforced, `--save-plan`, then the guard), shown as the PR shows it."""
    from kms_aks_tools.change_summary import render
    from kms_aks_tools.preview.model import BadInput, load_preview

    out = sandbox.out(stack)
    if out.exists():
        shutil.rmtree(out)
    # The workflows' OUT is relative to the project (out/<stack>), so the guard's lines and the PR comment name
    # repo-relative paths, as in CI; the files are kept in .sandbox/out/<stack> afterwards.
    ci_out = ci_out_dir(stack)
    shutil.rmtree(space.path / ci_out, ignore_errors=True)
    # .ci/pulumi-stack reads guard-overrides.yaml from the project root, as CI does: the copy has the user's.
    try:
        previewed = space.ci("preview", stack, ci_out)
    finally:
        if (space.path / ci_out).is_dir():
            shutil.copytree(space.path / ci_out, out, dirs_exist_ok=True)
    policy_config = f"policies/config/{stack}.json"
    if not (out / "guard.txt").is_file():
        # The preview failed: the pack refused, or the program did. The script re-ran it as text, for its reasons.
        console.print(Text(previewed.stderr.rstrip()))
        console.print(
            Text(
                f"policy pack ({policy_config}) or program: the preview failed, nothing was judged "
                "by the guard (as in CI). The reasons are above.",
                style="bold red",
            )
        )
        return EXIT_BLOCKED
    console.print(Text(f"policy pack: passed with {policy_config} (no mandatory violation)", style="bold green"))
    try:
        preview = load_preview(str(out / "preview.json"))
        render(preview, console, stack=stack, guard_output=(out / "guard.txt").read_text(encoding="utf-8"))
    except BadInput as error:
        # The guard read the same file, so it refused it too (exit 2, in its output above).
        console.print(Text(f"the preview could not be read: {error}", style="bold red"))
        return EXIT_BAD_INPUT
    if previewed.returncode != 0 and previewed.stderr.strip():
        console.print(Text(previewed.stderr.rstrip()))  # the guard's bad-input message goes to stderr
    # The PR comment, written by the workflows' own step, so the user can read exactly what the PR would get.
    commented = space.ci("comment", stack, ci_out)
    if (space.path / ci_out / "comment.md").is_file():
        shutil.copy2(space.path / ci_out / "comment.md", out / "comment.md")
    if not (out / "comment.md").is_file():  # exit 1 with a comment: the guard failed, and the comment says so
        console.print(Text(f"the PR comment could not be written: {commented.stderr.strip()}", style="bold red"))
        return EXIT_BLOCKED
    console.print(
        f"the PR comment: {escape(str(out / 'comment.md'))}; the preview: {escape(str(out / 'preview.json'))}"
    )
    if previewed.returncode == EXIT_BAD_INPUT:
        return EXIT_BAD_INPUT  # the guard's own exit 2 (a bad override or records file): bad input, as in CI
    return EXIT_OK if previewed.returncode == 0 else EXIT_BLOCKED


def ci_out_dir(stack: str) -> str:
    """The workflows' OUT folder in the project copy, relative to it: CI's artifact paths are repo-relative."""
    return f"out/{stack}"


def action_preview(sandbox: Sandbox, stack: str, console: Console) -> int:
    if (code := _check_config(sandbox, stack)) != EXIT_OK:
        return code
    with running(sandbox, stack, console) as space:
        code = preview_as_ci(sandbox, space, stack, console)
    if code == EXIT_OK:
        console.print(
            f"sandbox preview: {escape(stack)} would pass CI's PR check; apply it with "
            f"`kms-aks sandbox up --stack {escape(stack)}`"
        )
    return code


def action_up(sandbox: Sandbox, stack: str, console: Console) -> int:
    if (code := _check_config(sandbox, stack)) != EXIT_OK:
        return code
    with running(sandbox, stack, console) as space:
        code = preview_as_ci(sandbox, space, stack, console)
        if code != EXIT_OK:
            console.print(
                Text("sandbox up: refused before anything was applied, as the deploy workflow would.", style="bold red")
            )
            return code
        # The deploy workflow's apply: exactly the previewed plan (`up --plan`), the pack enforced again.
        applied = space.ci("up", stack, ci_out_dir(stack), stream=True)
    if applied.returncode != 0:
        console.print(
            Text(f"sandbox up: pulumi up failed (exit {applied.returncode}); its output is above.", style="bold red")
        )
        return EXIT_BLOCKED
    console.print(Text(f"sandbox up: {stack} is deployed into the stand-in.", style="bold green"))
    return follow_cluster(sandbox, stack, console)


def cluster_script(sandbox: Sandbox, *args: str) -> int:
    """The sandbox's clusters (`testbed/sandbox_cluster.py`, run as a script: the control plane is the checkout's
    test bed, which the installed package neither holds nor imports); its output goes to the terminal."""
    script = realcli.ROOT / "testbed" / "sandbox_cluster.py"
    return subprocess.run([sys.executable, str(script), *args, "--home", str(sandbox.home)], check=False).returncode


def follow_cluster(sandbox: Sandbox, stack: str, console: Console) -> int:
    """The stack's local control plane follows its ManagedCluster's KMS (started the first time)."""
    config = _stack_config(sandbox, stack)
    sys.stdout.flush()
    with sandbox.locked():
        code = cluster_script(sandbox, "follow", "--stack", stack, "--cluster", config.cluster.name)
    if code != EXIT_OK:
        console.print(Text("sandbox up: the stack's cluster could not follow its KMS (above).", style="bold red"))
        return EXIT_BLOCKED
    return EXIT_OK


def action_destroy(sandbox: Sandbox, stack: str, console: Console) -> int:
    with running(sandbox, stack, console, create=False) as space:
        if stack not in stack_names(space):
            console.print(f"sandbox destroy: {escape(stack)} is not in the sandbox; nothing to destroy")
            return EXIT_OK
        destroyed = space.pulumi("destroy", "--stack", stack, "--yes", "--skip-preview", stream=True)
        if destroyed.returncode != 0:
            console.print(
                Text(
                    f"sandbox destroy: refused (exit {destroyed.returncode}); its output is above. A stack with "
                    "kms-aks:protectKmsResources: true protects its key, vault and identity, as it would in Azure: "
                    "`pulumi state unprotect` them in a real stack; `kms-aks sandbox reset` forgets the whole sandbox.",
                    style="bold red",
                )
            )
            return EXIT_BLOCKED
        removed = space.pulumi("stack", "rm", stack, "--yes")
        if removed.returncode != 0:
            console.print(Text(removed.stderr.rstrip()))
            return EXIT_BLOCKED
    if (sandbox.home / "clusters" / stack).is_dir():
        with sandbox.locked():
            cluster_script(sandbox, "stop", "--stack", stack)
    sandbox.secrets_file(stack).unlink(missing_ok=True)
    shutil.rmtree(sandbox.out(stack), ignore_errors=True)
    console.print(Text(f"sandbox destroy: {stack} is destroyed and removed from the sandbox.", style="bold green"))
    return EXIT_OK


def action_status(sandbox: Sandbox, console: Console) -> int:
    console.print(f"sandbox: {escape(str(sandbox.home))}" + ("" if sandbox.home.exists() else " (empty)"))
    built = sorted(realcli.ROOT.glob(".tools/pulumi-*/bin/pulumi"))
    cli = escape(str(built[-1])) if built else "not built yet (the first up or preview builds it; needs Go)"
    console.print(f"Pulumi CLI: {cli}")
    states = sandbox.cloud()
    stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in (sandbox.home / "secrets").glob("Pulumi.*.yaml"))
    console.print(f"stacks in the sandbox: {escape(', '.join(stacks)) or 'none'}")
    if (sandbox.home / "clusters").is_dir():
        sys.stdout.flush()
        cluster_script(sandbox, "status")
    counted = Counter(type_token for type_token, _ in states.values())
    console.print(f"the stand-in's Azure: {len(states)} resources")
    for type_token, count in sorted(counted.items()):
        console.print(f"  {count} {escape(type_token)}")
    return EXIT_OK


def _stack_config(sandbox: Sandbox, stack: str) -> Any:
    """The stack's validated config (`kms_aks.config.StackConfig`), read where the tools read it."""
    from kms_aks.config.base import ConfigError
    from kms_aks_tools.project.stack_config import stack_config_from_file

    sandbox.check_stack(stack)
    try:
        return stack_config_from_file(stack, sandbox.project)
    except (FileNotFoundError, ConfigError, ValueError) as error:
        raise SandboxError(str(error)) from None


def _stack_key_name(sandbox: Sandbox, stack: str) -> tuple[str, str]:
    """(vault, key name) of the KMS key the stack's cluster uses: the key it creates, or its own key's
    (`existingKey.keyId`, bring your own key)."""
    from azure_facts import VERSIONED_KEY_ID

    config = _stack_config(sandbox, stack)
    if config.existing_key is not None:
        match = VERSIONED_KEY_ID.match(config.existing_key.key_id)
        if match is None:
            raise SandboxError(f"kms-aks:existingKey.keyId {config.existing_key.key_id} is not a versioned key id")
        return match["vault"], match["name"]
    if config.kms_key is None or config.key_vault is None:
        raise SandboxError(f"stack {stack} has no KMS key (kms-aks:kmsKey / kms-aks:existingKey)")
    return config.key_vault.name, config.kms_key.name


def action_key_version(sandbox: Sandbox, stack: str, console: Console) -> int:
    """A new version of the stack's KMS key in the stand-in's Key Vault, as Key Vault's rotate (or the key's
    rotation policy) makes it; prints its versioned key id, for `kms-aks:kmsKey.version` and the overrides."""
    from kms_aks_tools.standin.key_versions import KeyVersionError, new_key_version
    from kms_aks_tools.standin.saved import save_states

    vault, name = _stack_key_name(sandbox, stack)
    with sandbox.locked():
        states = sandbox.cloud()
        try:
            versioned = new_key_version(states, vault, name)
        except KeyVersionError as error:
            raise SandboxError(str(error)) from None
        save_states(states, sandbox.cloud_file)
    version = versioned.rsplit("/", 1)[1]
    console.print(f"sandbox key-version: new version of {escape(name)} in {escape(vault)}:")
    print(versioned)
    console.print(
        f"pin it: kms-aks:kmsKey.version: {version} in Pulumi.{escape(stack)}.yaml, and the key id in "
        f"pinnedKeyIds of aks-kms-key-source in policies/config/{escape(stack)}.json (docs/rotation.md, step 2)"
    )
    return EXIT_OK


def action_reset(sandbox: Sandbox, console: Console) -> int:
    if not sandbox.home.exists():
        console.print(f"sandbox: nothing to reset in {escape(str(sandbox.home))}")
        return EXIT_OK
    if not (sandbox.home / MARKER).exists():
        raise SandboxError(f"{sandbox.home} was not made by `kms-aks sandbox`; remove it yourself if you mean to")
    with sandbox.locked():
        if (sandbox.home / "clusters").is_dir():
            cluster_script(sandbox, "stop")
        shutil.rmtree(sandbox.home)
    console.print(
        f"sandbox: reset; {escape(str(sandbox.home))} is gone (state, the stand-in's cloud, the project copy)"
    )
    return EXIT_OK
