#!/usr/bin/env bash
# Re-vendor the JavaScript that `hivegraph memory graph` inlines into its HTML page.
#
# The page must work offline, so the force layout (d3-force and the three small d3 modules it
# needs; ISC licence, Mike Bostock) is copied into the package, not fetched by the page. Run this
# only to upgrade them: it fetches the pinned tarballs with `npm pack`, checks npm's integrity
# hashes, and writes the minified UMD builds and the licence to hivegraph/memory/graph/assets/.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=hivegraph/memory/graph/assets
PACKAGES=(d3-dispatch@3.0.2 d3-quadtree@3.0.2 d3-timer@3.0.2 d3-force@3.0.1)  # load order: dependencies first
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for spec in "${PACKAGES[@]}"; do
  name=${spec%@*}
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  tarball="$work/$name-${spec#*@}.tgz"
  want=$(npm view "$spec" dist.integrity)
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  [ "$want" = "$got" ] || { echo "$spec: integrity $got, npm says $want" >&2; exit 1; }
  mkdir -p "$work/$name"
  tar xzf "$tarball" -C "$work/$name"
  cp "$work/$name/package/dist/$name.min.js" "$ASSETS/$name.min.js"
  cp "$work/$name/package/LICENSE" "$ASSETS/LICENSE-d3.txt"  # one licence text for all four
  echo "$spec $want"
done
