#!/bin/sh
# Builds the Debian package dist/sluice_<version>_<arch>.deb from a finished
# build directory, with dpkg-deb only (no debhelper, no root: file owners are
# set to root:root in the archive by --root-owner-group).
#
#   scripts/build-deb.sh [BUILD_DIR [ARCH [OUT_DIR]]]
#       BUILD_DIR  default build/release; must hold sluiced and sluice
#       ARCH       Debian architecture of those binaries (default: this machine's)
#       OUT_DIR    default dist
#   DEB_MAINTAINER  the Maintainer field (default a placeholder at example.org)
#
# What goes where, and why, is in docs/packaging.md; the maintainer scripts,
# the unit and the default configuration are in packaging/debian/.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build/release}
arch=${2:-$(dpkg --print-architecture)}
out=${3:-dist}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
case "$out" in /*) ;; *) out="$top/$out" ;; esac
version=$(sh "$top/scripts/version.sh")
deb="$out/sluice_${version}_${arch}.deb"
maintainer=${DEB_MAINTAINER:-Sluice authors <sluice@example.org>}

case "$arch" in
"$(dpkg --print-architecture)") strip="strip" ;;
arm64) strip=aarch64-linux-gnu-strip ;;
*) echo "build-deb: no strip known for $arch" >&2; exit 1 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
make --no-print-directory -C "$top" install BUILD="$build" DESTDIR="$root" PREFIX=/usr >/dev/null
"$strip" --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/sluiced" "$root/usr/bin/sluice"

pkg="$top/packaging/debian"
install -D -m 0644 "$pkg/server.properties" "$root/etc/sluice/server.properties"
install -D -m 0644 "$pkg/sluice.service" "$root/lib/systemd/system/sluice.service"
doc="$root/usr/share/doc/sluice"
install -d "$doc"
# Debian's machine-readable copyright around the tree's LICENSE, verbatim.
{
    printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n'
    printf 'Upstream-Name: sluice\n\nFiles: *\n'
    printf 'Copyright: %s\n' "$(sed -n 's/^Copyright (c) //p' "$top/LICENSE")"
    printf 'License: MIT\n\nLicense: MIT\n'
    sed -n '/^Permission/,$p' "$top/LICENSE" | sed 's/^$/./; s/^/ /'
} > "$doc/copyright"
chmod 0644 "$doc/copyright"
install -m 0644 "$top/README.md" "$doc/"
for f in packaging.md configuration.md cli.md operations.md; do install -m 0644 "$top/docs/$f" "$doc/"; done
# The package's changelog (a native package: changelog.gz; the project's own
# history is CHANGELOG.md).
cat > "$work/changelog" <<CHANGES
sluice ($version) unstable; urgency=medium

  * Built from the Sluice source tree; see /usr/share/doc/sluice/README.md.

 -- $maintainer  $(date -R -u -d "@$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)")
CHANGES
gzip -9n < "$work/changelog" > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
# Manual pages compressed, as Debian wants them; the aliases become links
# to the compressed page.
man="$root/usr/share/man"
for page in "$man"/man1/*.1 "$man"/man8/*.8; do
    if [ -L "$page" ]; then
        target=$(readlink "$page")
        rm "$page"
        ln -s "$target.gz" "$page.gz"
    else
        gzip -9n "$page"
    fi
done

# Library dependencies as dpkg-shlibdeps finds them (it wants a debian/control).
mkdir -p "$work/shlibs/debian"
printf 'Source: sluice\n\nPackage: sluice\nArchitecture: any\n' > "$work/shlibs/debian/control"
deps=$(cd "$work/shlibs" && DEB_HOST_ARCH="$arch" dpkg-shlibdeps -O -e"$root/usr/bin/sluiced" \
    -e"$root/usr/bin/sluice" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

install -d "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$pkg/$s" "$root/DEBIAN/$s"; done
echo /etc/sluice/server.properties > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: sluice
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $deps, adduser
Section: net
Priority: optional
Description: Kafka-compatible message broker
 Sluice speaks the Apache Kafka protocol, so Kafka clients and tools work
 with it unchanged. This package holds the broker (sluiced, run by the
 systemd service sluice.service), the sluice command line, and Kafka's
 operator tool names (kafka-topics.sh, kafka-console-producer.sh, ...) as
 entry points into it.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
