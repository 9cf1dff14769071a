#!/usr/bin/env bash
# Builds the example QEMU guest from Debian packages only (see README.md):
#   apt-get install -y qemu-system-x86 qemu-utils linux-image-amd64 busybox-static dropbear-bin cpio
# Output in out/ (or $1): vmlinuz, initrd.img (busybox, dropbear, the counter service, the modules),
# data.img (the 1 MiB raw disk the counter keeps its value on), client_key (OpenSSH format) and
# ssh_host_key.pub (the guest's host key, pinned by the driver). Keys are new on every build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
kernel=${KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[[ -n "$kernel" && -r "$kernel" ]] || { echo "build.sh: no kernel in /boot (apt-get install linux-image-amd64)" >&2; exit 1; }
version=${kernel#/boot/vmlinuz-}
modules=/lib/modules/$version
for tool in /bin/busybox /usr/sbin/dropbear dropbearkey dropbearconvert cpio gzip; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool missing (see the apt-get line above)" >&2; exit 1; }
done
# (the list is read whole first: grep -q closing the pipe early would fail the check under pipefail)
applets=$(/bin/busybox --list)
grep -qx nc <<<"$applets" || { echo "build.sh: /bin/busybox has no nc applet (install busybox-static)" >&2; exit 1; }

mkdir -p "$out"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/modules,proc,sys,dev,run,tmp,etc/dropbear,root/.ssh,sustain}
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# Modules the init loads (virtio disk and network, pvpanic), found through modules.dep.
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk \
  failover net_failover virtio_net pvpanic pvpanic-mmio; do
  path=$(find "$modules/kernel" -name "$m.ko*" | head -n 1)
  [[ -n "$path" ]] || { echo "build.sh: module $m not in $modules" >&2; exit 1; }
  case "$path" in
    *.ko.xz) xz -dc "$path" > "$root/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$path" > "$root/lib/modules/$m.ko" ;;
    *) cp "$path" "$root/lib/modules/$m.ko" ;;
  esac
done

# dropbear and the shared libraries it links (ldd lists them with their paths).
cp /usr/sbin/dropbear "$root/usr/sbin/dropbear"
for lib in $(ldd /usr/sbin/dropbear | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
rm -f "$out/client_key" "$out/client_key.dropbear"
dropbearkey -t ed25519 -f "$root/etc/dropbear/dropbear_ed25519_host_key" >/dev/null 2>&1
dropbearkey -y -f "$root/etc/dropbear/dropbear_ed25519_host_key" | grep '^ssh-ed25519 ' > "$out/ssh_host_key.pub"
dropbearkey -t ed25519 -f "$out/client_key.dropbear" >/dev/null 2>&1
dropbearkey -y -f "$out/client_key.dropbear" | grep '^ssh-ed25519 ' > "$root/root/.ssh/authorized_keys"
dropbearconvert dropbear openssh "$out/client_key.dropbear" "$out/client_key" >/dev/null 2>&1
rm -f "$out/client_key.dropbear"
chmod 600 "$out/client_key"
chmod 700 "$root/root" "$root/root/.ssh"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
echo '/bin/sh' > "$root/etc/shells"

cp "$here/guest/init" "$root/init"
cp "$here/guest/counter.sh" "$here/guest/answer.sh" "$here/guest/ack.sh" "$here/guest/helper" "$here/guest/load.sh" "$root/sustain/"
chmod 755 "$root/init" "$root"/sustain/*

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
cp "$kernel" "$out/vmlinuz"
chmod 644 "$out/vmlinuz"
# The counter's disk: 1 MiB of zeros (raw). A new build starts the counter from 0.
dd if=/dev/zero of="$out/data.img" bs=1M count=1 status=none
echo "build.sh: guest in $out (kernel $version, initrd $(du -h "$out/initrd.img" | cut -f1))"
