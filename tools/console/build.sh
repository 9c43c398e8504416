#!/usr/bin/env bash
# tools/console/build.sh OUT — assembles the web console into OUT/www: `npm ci` from
# tools/console/package.json + package-lock.json into OUT/npm (again only when the lock file
# changed), then the page (tools/console/web/) and mqtt.js's browser build
# (node_modules/mqtt/dist/mqtt.js, not minified) into OUT/www. Called by scripts/console.sh,
# scripts/demo.sh and tests/integration/test_console.py.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: tools/console/build.sh OUT_DIR}
mkdir -p "$out/npm"
if ! cmp -s "$src/package-lock.json" "$out/npm/package-lock.json" ||
   [ ! -f "$out/npm/node_modules/mqtt/dist/mqtt.js" ]; then
    cp "$src/package.json" "$src/package-lock.json" "$out/npm/"
    (cd "$out/npm" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
rm -rf "$out/www.new"
mkdir -p "$out/www.new/vendor"
cp "$src"/web/* "$out/www.new/"
cp "$out/npm/node_modules/mqtt/dist/mqtt.js" "$out/www.new/vendor/mqtt.js"
rm -rf "$out/www"
mv "$out/www.new" "$out/www"
