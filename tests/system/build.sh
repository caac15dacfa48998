#!/bin/sh
# Build the tree as a distribution package would (prefix /usr, so the binary looks
# for /etc/calico-underlay/config.yaml) and stage `meson install` into DESTDIR.
# A plain build of its own: the system tests run the daemon in a container or a VM,
# where the sanitizer runtimes of the enclosing test build are not available.
# Usage: tests/system/build.sh BUILDDIR DESTDIR
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
builddir=$1
destdir=$2
mkdir -p "$(dirname "$builddir")"
if [ ! -f "$builddir/build.ninja" ]; then
        meson setup "$builddir" "$top" --prefix=/usr --buildtype=debugoptimized -Dtests=disabled >"$builddir.setup.log" 2>&1 || {
                cat "$builddir.setup.log" >&2
                exit 1
        }
fi
ninja -C "$builddir" >"$builddir.ninja.log" 2>&1 || {
        cat "$builddir.ninja.log" >&2
        exit 1
}
rm -rf "$destdir"
meson install -C "$builddir" --destdir "$destdir" --no-rebuild >/dev/null
test -x "$destdir/usr/sbin/calico-underlayd"
