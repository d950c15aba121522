#!/bin/sh
# Prints the version of this source tree, the one `sluiced --version`,
# `sluice --version` and the Debian package carry:
#
#   v1.2.0 tagged on HEAD          -> 1.2.0
#   3 commits past tag v1.2.0      -> 1.2.0+3.gabc1234
#   uncommitted changes            -> ... .dirty appended
#   git but no v* tag              -> <VERSION>+g<sha>[.dirty]
#   no git (a tarball)             -> the VERSION file's line
#
# '-' never appears, so the result is a valid Debian upstream version as is.
# When tagging a release, set VERSION to the same number (tarballs have no tags).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
base=$(tr -d ' \t\r\n' < "$top/VERSION")
if command -v git >/dev/null 2>&1 && git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
    if d=$(git -C "$top" describe --tags --match 'v[0-9]*' --dirty=.dirty 2>/dev/null); then
        # v1.2.0-3-gabc1234.dirty -> 1.2.0+3.gabc1234.dirty
        echo "${d#v}" | sed 's/-\([0-9][0-9]*\)-g\([0-9a-f][0-9a-f]*\)/+\1.g\2/'
        exit 0
    fi
    sha=$(git -C "$top" rev-parse --short=7 HEAD 2>/dev/null || true)
    if [ -n "$sha" ]; then
        dirty=""
        git -C "$top" diff --quiet HEAD -- 2>/dev/null || dirty=".dirty"
        echo "$base+g$sha$dirty"
        exit 0
    fi
fi
echo "$base"
