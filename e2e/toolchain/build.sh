#!/usr/bin/env bash
# Builds the Pulumi CLI (from github.com/pulumi/pulumi/pkg/v3) and the e2e Python language host into
# .tools/pulumi-<version>/bin, with our exec shim beside the host. A warm run builds nothing: the folder is
# keyed by the CLI version and a stamp of every input, and is reused while they are unchanged.
# Prints the bin folder on stdout (progress goes to stderr).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(grep -oE 'github.com/pulumi/pulumi/pkg/v3 v[0-9][0-9.]*' "$here/cli/go.mod" | head -n1 | cut -d' ' -f2)"
[[ -n "$version" ]] || { echo "no github.com/pulumi/pulumi/pkg/v3 version in $here/cli/go.mod" >&2; exit 2; }
bin="$root/.tools/pulumi-$version/bin"
inputs=("$here"/cli/go.mod "$here"/cli/go.sum "$here"/langhost/go.mod "$here"/langhost/go.sum
        "$here"/langhost/main.go "$here"/pulumi-language-python-exec "$here"/build.sh)
stamp="$(cat "${inputs[@]}" | sha256sum | cut -c1-16)-$(go env GOVERSION)"

if [[ -x "$bin/pulumi" && -x "$bin/pulumi-language-python" && "$(cat "$bin/.stamp" 2>/dev/null)" == "$stamp" ]]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "make e2e needs Go (1.26 or later) on PATH" >&2; exit 2; }
mkdir -p "$bin"
rm -f "$bin/.stamp"
start=$SECONDS
echo "building the Pulumi CLI $version from its Go module (first run only; see docs/real-cli.md for timings)" >&2
# The CLI prints and checks its own version: set it as Pulumi's release build does.
(cd "$here/cli" && go build \
  -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
  -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
echo "building the e2e Python language host" >&2
(cd "$here/langhost" && go build -o "$bin/pulumi-language-python" .)
install -m 0755 "$here/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
echo "$stamp" > "$bin/.stamp"
echo "toolchain built in $((SECONDS - start)) s" >&2
echo "$bin"
