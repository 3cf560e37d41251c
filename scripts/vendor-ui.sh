#!/usr/bin/env bash
# Rebuilds the console's third-party files (src/console/assets/vendor/) from
# their npm packages at pinned versions, with their licences, and rewrites
# vendor/SHA256SUMS. The console needs no build step: these are the
# packages' own builds, copied unchanged: xterm.js's ES modules, and
# asciinema-player's split bundle (its UI, a classic script the Recordings
# tab loads on first use, and the Web Worker that parses a recording and
# keeps time off the page's main thread; the player starts that worker as
# a classic script, which the package's ES module worker, with its
# imports, is not). A unit test (src/console/vendor.rs) checks the
# committed files against SHA256SUMS, so a hand edit is caught; run this
# script, never edit the files.
#
#   scripts/vendor-ui.sh     (needs npm; nothing is installed globally)
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENDOR=$ROOT_DIR/src/console/assets/vendor

# package@version -> the files taken from it (paths inside the package)
PACKAGES=(
    "@xterm/xterm@6.0.0:lib/xterm.mjs css/xterm.css LICENSE"
    "@xterm/addon-fit@0.11.0:lib/addon-fit.mjs LICENSE"
    "@xterm/addon-search@0.16.0:lib/addon-search.mjs LICENSE"
    "@xterm/addon-web-links@0.12.0:lib/addon-web-links.mjs LICENSE"
    "asciinema-player@3.18.0:dist/bundle/asciinema-player-ui.min.js dist/bundle/asciinema-player-worker.min.js dist/bundle/asciinema-player.css LICENSE"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$VENDOR"
mkdir -p "$VENDOR"
for entry in "${PACKAGES[@]}"; do
    spec=${entry%%:*}
    files=${entry#*:}
    name=${spec%@*}        # @xterm/addon-fit, asciinema-player
    short=${name#@xterm/}  # addon-fit, asciinema-player
    (cd "$work" && npm pack --silent "$spec" >/dev/null)
    tgz=$(ls "$work"/*.tgz)
    mkdir -p "$work/$short"
    tar xzf "$tgz" -C "$work/$short"
    rm -f "$tgz"
    mkdir -p "$VENDOR/$short"
    for f in $files; do
        cp "$work/$short/package/$f" "$VENDOR/$short/$(basename "$f")"
    done
    echo "vendor-ui: $spec"
done

(cd "$VENDOR" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
echo "vendor-ui: wrote $(wc -l <"$VENDOR/SHA256SUMS") sums to src/console/assets/vendor/SHA256SUMS"
