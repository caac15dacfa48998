#!/bin/sh
# Proof on a kernel with IPIP: this machine's kernel has none, so the tunl0 rules of
# DESIGN.md §3.3 and §7 (the kernel keeps the fallback tunl0 after a delete; a by-name
# lookup re-creates it) are checked under QEMU (TCG) with Debian's kernel.
#
# The tree is built and staged (tests/system/build.sh); Debian's linux-image package
# is downloaded with apt-get (not installed), unpacked once into $CU_TEST_CACHE
# (default /var/cache/calico-underlay-test) with its uncompressed vmlinux; a busybox
# initramfs carries the staged calico-underlayd and iproute2's ip with their
# libraries (ldd), the modules (veth, vxlan, ipip and their dependencies from
# modules.dep, depmod-ed for busybox modprobe), the bundled example as
# /etc/calico-underlay, and tests/system/qemu-guest-init.sh as /init, which holds the
# checks. Results come back on the second serial port, the verdict through
# isa-debug-exit (QEMU exits 1 for pass, 3 for fail).
#
# Exit 0 pass, 1 fail, 77 skipped (not root, or QEMU, busybox or the kernel package
# cannot be installed or downloaded).
# Usage: sudo tests/system/qemu_ipip.sh [BUILDDIR]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/system
cache=${CU_TEST_CACHE:-/var/cache/calico-underlay-test}
builddir=${1:-${TMPDIR:-/tmp}/calico-underlay-system/build}
modules="veth vxlan ipip"

skip() {
        echo "SKIP: $*"
        exit 77
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

[ "$(id -u)" -eq 0 ] || skip "needs root (apt-get, the kernel package)"
t0=$(now)
sh "$top/tests/deps.sh" qemu || skip "cannot install qemu-system-x86 qemu-system-data busybox-static cpio kmod"
for t in qemu-system-x86_64 cpio depmod python3 ip ldd apt-get dpkg-deb; do
        command -v "$t" >/dev/null || skip "$t not found"
done
busybox=/bin/busybox
ldd "$busybox" >/dev/null 2>&1 && skip "$busybox is not the static one (busybox-static)"

t=$(now)
sh "$here/build.sh" "$builddir" "$builddir-stage"
daemon=$builddir-stage/usr/sbin/calico-underlayd
echo "# built and staged in $(since "$t")"

# ---- Debian's kernel, unpacked once into the cache
kernel_dir() {
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
        if [ -z "$pkg" ]; then
                apt-get update -qq >/dev/null 2>&1 || true
                pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
        fi
        [ -n "$pkg" ] || return 1
        ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2 }')
        kdir=$cache/kernel/${pkg}_$ver
        [ -f "$kdir/vmlinux" ] && return 0
        mkdir -p "$cache/kernel"
        tmp=$(mktemp -d "$cache/kernel/.new.XXXXXX")
        (cd "$tmp" && apt-get download -qq "$pkg=$ver" 2>/dev/null) || {
                rm -rf "$tmp"
                return 1
        }
        dpkg-deb -x "$tmp"/*.deb "$tmp/x"
        kver=$(ls "$tmp/x/lib/modules")
        m=$tmp/k/lib/modules/$kver
        mkdir -p "$m/kernel/drivers"
        # Only what network tests can need: the cache stays ~120 MB, not 400.
        mv "$tmp/x/lib/modules/$kver/kernel/net" "$tmp/x/lib/modules/$kver/kernel/lib" "$m/kernel/"
        mv "$tmp/x/lib/modules/$kver/kernel/drivers/net" "$m/kernel/drivers/"
        cp "$tmp/x/lib/modules/$kver"/modules.* "$m/"
        depmod -b "$tmp/k" "$kver" # the package leaves modules.dep to its postinst
        cp "$tmp/x/boot/vmlinuz-$kver" "$tmp/k/vmlinuz"
        # The uncompressed kernel (its PVH entry) boots seconds faster under TCG than
        # the bzImage, which would decompress itself in emulation.
        python3 - "$tmp/k/vmlinuz" "$tmp/k/vmlinux" <<'PY'
import lzma, sys, zlib
data = open(sys.argv[1], "rb").read()
for magic, dec in ((b"\xfd7zXZ\x00", lambda: lzma.LZMADecompressor()),
                   (b"\x28\xb5\x2f\xfd", None), (b"\x1f\x8b\x08", lambda: zlib.decompressobj(31))):
    off = data.find(magic)
    if off < 0 or dec is None:
        continue
    out = dec().decompress(data[off:])
    if out[:4] == b"\x7fELF":
        open(sys.argv[2], "wb").write(out)
        sys.exit(0)
sys.exit("no xz or gzip compressed vmlinux inside " + sys.argv[1])
PY
        echo "$pkg $ver $kver" >"$tmp/k/VERSION"
        rm -rf "$kdir"
        mv "$tmp/k" "$kdir"
        rm -rf "$tmp"
        # Older kernels' folders are of no further use.
        for old in "$cache"/kernel/linux-image-*; do
                [ "$old" = "$kdir" ] || rm -rf "$old"
        done
}
t=$(now)
mkdir -p "$cache"
exec 9>"$cache/kernel.lock"
flock 9
kernel_dir || skip "cannot download Debian's linux-image-amd64 with apt-get"
flock -u 9
kver=$(ls "$kdir/lib/modules")
echo "# kernel $(cat "$kdir/VERSION") from $kdir ($(since "$t"))"

# ---- the initramfs
work=$(mktemp -d "${TMPDIR:-/tmp}/cu-qemu.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
ir=$work/root
mkdir -p "$ir/bin" "$ir/usr/sbin" "$ir/etc/calico-underlay" "$ir/lib/modules/$kver"
cp "$busybox" "$ir/bin/busybox"
with_libs() { # FILE DEST: copy FILE to DEST in the initramfs, with its libraries
        cp "$1" "$ir$2"
        for lib in $(ldd "$1" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }'); do
                mkdir -p "$ir$(dirname "$lib")"
                cp -L "$lib" "$ir$lib"
        done
}
with_libs "$daemon" /usr/sbin/calico-underlayd
with_libs "$(command -v ip)" /usr/sbin/ip
for mod in $modules; do
        line=$(grep -E "(^|/)$mod\.ko(\.[a-z]+)?:" "$kdir/lib/modules/$kver/modules.dep") || {
                echo "module $mod not in modules.dep" >&2
                exit 1
        }
        for f in $(echo "$line" | tr -d ':'); do
                mkdir -p "$ir/lib/modules/$kver/$(dirname "$f")"
                cp "$kdir/lib/modules/$kver/$f" "$ir/lib/modules/$kver/$f"
        done
done
cp "$kdir/lib/modules/$kver"/modules.order "$kdir/lib/modules/$kver"/modules.builtin* "$ir/lib/modules/$kver/"
depmod -b "$ir" "$kver"
cp "$top/config/example/config.yaml" "$ir/etc/calico-underlay/config.yaml"
cp -r "$top/config/example/resources.d" "$ir/etc/calico-underlay/"
cp "$here/qemu-guest-init.sh" "$ir/init"
chmod 755 "$ir/init"
(cd "$ir" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"

# ---- boot
bios=""
[ -f /usr/share/qemu/qboot.rom ] && bios="-bios /usr/share/qemu/qboot.rom"
t=$(now)
set +e
# shellcheck disable=SC2086
timeout 600 qemu-system-x86_64 -nodefaults -nographic -no-reboot -accel tcg -m 512 -smp 1 $bios \
        -kernel "$kdir/vmlinux" -initrd "$work/initramfs.cpio" \
        -append "console=ttyS0 panic=-1 quiet rdinit=/init" \
        -serial "file:$work/console.log" -serial "file:$work/results.log" \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04
rc=$?
set -e
echo "# QEMU ran $(since "$t") (exit $rc)"
tr -d '\r' <"$work/results.log"
echo "# total $(since "$t0")"
if [ "$rc" -eq 1 ] && grep -q "^RESULT pass" "$work/results.log" && ! grep -q "^not ok" "$work/results.log"; then
        exit 0
fi
echo "# ---- console (tail)"
tr -d '\r' <"$work/console.log" | tail -n 40
exit 1
