"""Screenshots of the PR comment as a reviewer sees it: GitHub's renderer, a comment's width, headless Chromium.

    .venv/bin/python docs/screenshots/comments.py        (make comment-screenshots)

For a refused and a passed recorded preview (tests/fixtures/recorded/), it runs the workflow's own commands
(`kms-aks guard --json`, then `kms-aks changes --guard-json --markdown`), renders the comment with cmark-gfm as
GitHub does, lays it out at a PR comment's width (760 px of text, about 105 characters of code) with GitHub's
comment styles, and saves docs/screenshots/<name>.png. Chromium comes from Debian (`apt-get install chromium`); run
as root, the script installs it when it is missing. Nothing is downloaded at run time otherwise.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cmarkgfm
from cmarkgfm.cmark import Options

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KMS_AKS = Path(sys.executable).with_name("kms-aks")
# (picture, recorded preview, stack)
SHOTS = (("comment-refused", "prod-key-rotation", "prod"), ("comment-passed", "dev-node-count", "dev"))
WIDTH = 830  # the window: a 794 px comment box (760 px of text) and a margin

STYLE = """
body { margin: 0; padding: 16px; background: #fff; color: #1f2328;
  font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, "DejaVu Sans", sans-serif; }
.comment { width: 794px; border: 1px solid #d1d9e0; border-radius: 6px; }
.who { background: #f6f8fa; border-bottom: 1px solid #d1d9e0; padding: 8px 16px; color: #59636e;
  border-radius: 6px 6px 0 0; }
.body { padding: 16px; overflow-wrap: break-word; }
.body > :first-child { margin-top: 0; }
h3 { font-size: 1.25em; font-weight: 600; margin: 24px 0 16px; }
h4 { font-size: 1em; font-weight: 600; margin: 24px 0 16px; }
code { font: 85%/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
  background: rgba(129, 139, 152, .12); padding: .2em .4em; border-radius: 6px; }
pre { background: #f6f8fa; padding: 16px; overflow: auto; border-radius: 6px; }
pre code { background: none; padding: 0; font-size: 85%; white-space: pre; }
table { border-collapse: collapse; display: block; width: max-content; max-width: 100%; overflow: auto; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
th { font-weight: 600; }
tr:nth-child(2n) { background: #f6f8fa; }
ul { padding-left: 2em; }
li + li { margin-top: .25em; }
details summary { cursor: pointer; }
p, ul, table, details, pre { margin: 0 0 16px; }
"""


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") and hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0:
        print("installing chromium with apt-get (Debian's package)")
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        if subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=True)
        return shutil.which("chromium") or sys.exit("chromium was installed but is not on PATH")
    sys.exit("chromium is not installed: as root run `apt-get install chromium` (Debian), then rerun this script")


def comment(preview: str, stack: str, work: Path) -> str:
    """The comment the workflow writes: the guard with --json, then `kms-aks changes` from its verdict."""
    source = ROOT / "tests" / "fixtures" / "recorded" / f"{preview}.json"
    guard = subprocess.run(
        [str(KMS_AKS), "guard", str(source), "--json", str(work / "guard.json")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,  # as in CI: the re-encryption records are the checkout's rotations/
    )
    (work / "guard.txt").write_text(guard.stdout + guard.stderr)
    subprocess.run(
        [
            str(KMS_AKS),
            "changes",
            str(source),
            "--stack",
            stack,
            "--guard-output",
            str(work / "guard.txt"),
            "--guard-json",
            str(work / "guard.json"),
            "--markdown",
            str(work / "comment.md"),
        ],
        check=True,
        cwd=ROOT,
    )
    return (work / "comment.md").read_text()


def page(markdown: str) -> str:
    body = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{STYLE}</style></head><body>"
        f"<div class='comment'><div class='who'><b>github-actions</b> {html.escape('bot')} commented</div>"
        f"<div class='body'>{body}</div></div>"
        "<script>document.title = String(document.body.scrollHeight)</script></body></html>"
    )


def shoot(browser: str, html_file: Path, target: Path) -> None:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1"]
    dom = subprocess.run(
        [browser, *flags, f"--window-size={WIDTH},4000", "--dump-dom", html_file.as_uri()],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    height = int(re.search(r"<title>(\d+)</title>", dom)[1]) + 32  # type: ignore[index]
    subprocess.run(
        [browser, *flags, f"--window-size={WIDTH},{height}", f"--screenshot={target}", html_file.as_uri()],
        capture_output=True,
        check=True,
        timeout=120,
    )


def main() -> int:
    browser = chromium()
    for picture, preview, stack in SHOTS:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            html_file = work / f"{picture}.html"
            html_file.write_text(page(comment(preview, stack, work)))
            shoot(browser, html_file, HERE / f"{picture}.png")
        print(f"wrote {(HERE / f'{picture}.png').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
