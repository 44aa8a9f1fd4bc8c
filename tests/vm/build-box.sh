#!/usr/bin/env bash
# Build the labctl/bookworm Vagrant box (libvirt, qcow2, direct kernel boot)
# from Debian packages and register it in one user's Vagrant home.
#
#   sudo tests/vm/build-box.sh                    # build if needed, add for root
#   sudo BOX_USER=labctl-e2e tests/vm/build-box.sh  # add for that user
#   BOX_CACHE=/somewhere tests/vm/build-box.sh
#
# Idempotent: the box is cached in $BOX_CACHE/<recipe hash>/ (the hash covers
# this script and Vagrant's insecure public key), and `vagrant box add` only
# runs when the registered box carries another recipe hash. Everything the
# guests need is baked in: they have no internet.
set -euo pipefail

BOX_NAME=${BOX_NAME:-labctl/bookworm}
BOX_CACHE=${BOX_CACHE:-/var/cache/labctl/boxes}
# Whose Vagrant gets the box (`vagrant box add` runs as that user, with a
# clean environment); empty: the caller's (root's, or VAGRANT_HOME).
BOX_USER=${BOX_USER:-}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# No ifupdown/isc-dhcp-client: systemd-networkd (part of systemd) does DHCP
# in-process and does not hold network.target (and sshd) back until the lease.
PACKAGES=systemd-sysv,udev,openssh-server,iproute2,iptables,busybox-static,sudo,kmod,iputils-ping,procps,dnsmasq-base,initramfs-tools,linux-image-cloud-amd64
DISK_GB=4

log() { printf '[build-box %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf 'build-box: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: debootstrap and chroot need it"
for tool in debootstrap mkfs.ext4 qemu-img vagrant tar sha256sum cpio gzip modprobe; do
  command -v "$tool" >/dev/null || die "$tool is missing (see tests/vm/README.md for the apt-get line)"
done

# Vagrant's well-known insecure key: Vagrant logs in with it once and swaps
# in a per-machine key, like with any public box.
INSECURE_PUB=$(dpkg -L vagrant 2>/dev/null | grep -E '/keys/vagrant\.pub$' | head -n1 || true)
[ -f "$INSECURE_PUB" ] \
  || die "cannot find Vagrant's insecure public key (keys/vagrant.pub) in the vagrant package"

HASH=$(cat "$0" "$INSECURE_PUB" | sha256sum | cut -c1-16)
OUT=$BOX_CACHE/$HASH
BOX=$OUT/labctl-bookworm.box

if [ -n "$BOX_USER" ]; then
  BOX_HOME=$(getent passwd "$BOX_USER" | cut -d: -f6)
  if [ -z "$BOX_HOME" ] || [ ! -d "$BOX_HOME" ]; then
    die "user $BOX_USER or their home folder does not exist"
  fi
  VAGRANT_HOME_DIR=$BOX_HOME/.vagrant.d
else
  VAGRANT_HOME_DIR=${VAGRANT_HOME:-$HOME/.vagrant.d}
fi

registered_hash() {
  local dir
  dir=$VAGRANT_HOME_DIR/boxes/${BOX_NAME//\//-VAGRANTSLASH-}
  cat "$dir"/*/libvirt/labctl-recipe 2>/dev/null | head -n1 || true
}

# vagrant ARGS as $BOX_USER (clean environment, run in their home), or as
# the caller in the box's cache folder. Vagrant treats its working folder as
# a project (it leaves a .vagrant there): never the clone.
box_vagrant() {
  if [ -n "$BOX_USER" ]; then
    # shellcheck disable=SC2016 # expanded by the user's shell
    setpriv --reuid "$BOX_USER" --regid "$(id -g "$BOX_USER")" --init-groups \
      env -i HOME="$BOX_HOME" USER="$BOX_USER" LOGNAME="$BOX_USER" PATH=/usr/local/bin:/usr/bin:/bin \
      VAGRANT_CHECKPOINT_DISABLE=1 sh -c 'cd "$HOME" && exec vagrant "$@"' vagrant "$@"
  else
    (cd "$OUT" && vagrant "$@")
  fi
}

# The initrd: static busybox, the virtio modules /dev/vda needs (in
# modprobe's order) and an init that loads them, mounts /dev/vda and hands
# over to systemd. initramfs-tools' initrd runs udev and takes ~10 s to do
# the same under emulation (ext4 and crc32c are built into the kernel).
make_initrd() { # make_initrd ROOTFS WORKDIR > initrd.img
  local rootfs=$1 dir=$2 kver mods
  kver=$(basename "$(find "$rootfs/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")
  mkdir -p "$dir/bin" "$dir/dev" "$dir/proc" "$dir/newroot" "$dir/modules"
  cp "$rootfs/bin/busybox" "$dir/bin/busybox"
  mods=$(modprobe -d "$rootfs" -S "$kver" --show-depends -a virtio_pci virtio_blk | awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
  [ -n "$mods" ] || die "no virtio modules for kernel $kver in the rootfs"
  : >"$dir/modules/order"
  for m in $mods; do
    # modprobe -d prints the paths with the root folder in front.
    case $m in "$rootfs"/*) ;; *) m=$rootfs$m ;; esac
    cp "$m" "$dir/modules/"
    basename "$m" >>"$dir/modules/order"
  done
  cat >"$dir/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t proc proc /proc
while read -r m; do /bin/busybox insmod "/modules/$m"; done </modules/order
i=0
while [ ! -b /dev/vda ] && [ $i -lt 300 ]; do /bin/busybox sleep 0.1; i=$((i + 1)); done
if /bin/busybox mount -t ext4 -o rw /dev/vda /newroot; then
  /bin/busybox umount /proc
  /bin/busybox mount --move /dev /newroot/dev
  exec /bin/busybox switch_root /newroot /sbin/init
fi
echo "labctl initrd: cannot mount /dev/vda; a shell follows"
exec /bin/busybox sh
EOF
  chmod 0755 "$dir/init"
  (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1)
}

if [ -f "$BOX" ]; then
  log "cached box $BOX (recipe $HASH)"
else
  log "building box, recipe $HASH, in $OUT"
  mkdir -p "$BOX_CACHE"
  WORK=$(mktemp -d "$BOX_CACHE/.work.XXXXXX")
  ROOTFS=$WORK/rootfs
  cleanup() {
    for m in "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev"; do
      mountpoint -q "$m" 2>/dev/null && umount -l "$m"
    done
    rm -rf "$WORK"
  }
  trap cleanup EXIT

  # The kernel package needs initramfs-tools, whose initrd the box does not
  # use (make_initrd); MODULES=list keeps building it quick. Written before
  # the kernel's postinst builds it, so debootstrap needs two stages.
  log "debootstrap $SUITE (minbase)"
  debootstrap --variant=minbase --include="${PACKAGES%,initramfs-tools,linux-image-cloud-amd64}" \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log"; die "debootstrap failed (log above)"; }
  mkdir -p "$ROOTFS/etc/initramfs-tools/conf.d"
  cat >"$ROOTFS/etc/initramfs-tools/conf.d/labctl.conf" <<'EOF'
MODULES=list
COMPRESS=gzip
EOF
  mkdir -p "$ROOTFS/etc/initramfs-tools"
  printf 'virtio_pci\nvirtio_blk\next4\n' >>"$ROOTFS/etc/initramfs-tools/modules"

  log "installing the kernel in the rootfs"
  mount -t proc proc "$ROOTFS/proc"
  mount -t sysfs sys "$ROOTFS/sys"
  mount --bind /dev "$ROOTFS/dev"
  chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    initramfs-tools linux-image-cloud-amd64 >"$WORK/kernel.log" 2>&1 \
    || { tail -n 30 "$WORK/kernel.log"; die "kernel install in the rootfs failed (log above)"; }
  chroot "$ROOTFS" apt-get clean
  umount "$ROOTFS/dev" "$ROOTFS/sys" "$ROOTFS/proc"

  log "configuring the guest"
  chroot "$ROOTFS" useradd -m -s /bin/bash -G sudo vagrant
  install -d -m 0700 -o 1000 -g 1000 "$ROOTFS/home/vagrant/.ssh"
  install -m 0600 -o 1000 -g 1000 "$INSECURE_PUB" "$ROOTFS/home/vagrant/.ssh/authorized_keys"
  chown 1000:1000 "$ROOTFS/home/vagrant/.ssh" "$ROOTFS/home/vagrant/.ssh/authorized_keys"
  echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$ROOTFS/etc/sudoers.d/vagrant"
  chmod 0440 "$ROOTFS/etc/sudoers.d/vagrant"
  echo 'root:vagrant' | chroot "$ROOTFS" chpasswd
  echo 'vagrant:vagrant' | chroot "$ROOTFS" chpasswd
  echo 'UseDNS no' >"$ROOTFS/etc/ssh/sshd_config.d/labctl.conf"
  echo bookworm >"$ROOTFS/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 bookworm\n' >"$ROOTFS/etc/hosts"
  echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$ROOTFS/etc/fstab"
  # eth0 (the management NIC) by DHCP through systemd-networkd. Vagrant sees
  # networkd active and configures the lab NIC with a .network file too.
  # ClientIdentifier=mac: libvirt finds the lease by MAC address.
  # KeepConfiguration/SendRelease: Vagrant restarts networkd over SSH on
  # eth0 to apply the lab NIC's file; the address must stay meanwhile.
  mkdir -p "$ROOTFS/etc/systemd/network"
  printf '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\nKeepConfiguration=yes\n\n[DHCPv4]\nClientIdentifier=mac\nSendRelease=no\n' \
    >"$ROOTFS/etc/systemd/network/10-eth0.network"
  chroot "$ROOTFS" systemctl enable systemd-networkd.service >/dev/null 2>&1
  : >"$ROOTFS/etc/machine-id"
  rm -f "$ROOTFS/var/lib/dbus/machine-id"
  # Every VM gets its own host key at first boot: ed25519 only, generated in
  # milliseconds (ssh-keygen -A also makes an RSA 3072 key: ~45 s of guest
  # CPU under software emulation, holding sshd back).
  rm -f "$ROOTFS"/etc/ssh/ssh_host_*
  echo 'HostKey /etc/ssh/ssh_host_ed25519_key' >>"$ROOTFS/etc/ssh/sshd_config.d/labctl.conf"
  cat >"$ROOTFS/etc/systemd/system/ssh-host-keys.service" <<'EOF'
[Unit]
Description=Generate the SSH host key
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
[Install]
WantedBy=multi-user.target
EOF
  chroot "$ROOTFS" systemctl enable ssh-host-keys.service >/dev/null 2>&1
  # Units a lab node does not need; under emulation each costs seconds of
  # boot (the modprobe@ and mount units load modules nobody uses, the
  # journal stays in memory).
  for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer man-db.timer logrotate.timer getty@tty1.service getty.target \
    systemd-timesyncd.service systemd-networkd-wait-online.service \
    modprobe@dm_mod.service modprobe@efi_pstore.service modprobe@fuse.service \
    modprobe@loop.service modprobe@configfs.service modprobe@drm.service \
    sys-fs-fuse-connections.mount sys-kernel-config.mount sys-kernel-debug.mount \
    sys-kernel-tracing.mount dev-hugepages.mount systemd-remount-fs.service \
    kmod-static-nodes.service systemd-update-utmp.service systemd-update-utmp-runlevel.service \
    systemd-pstore.service systemd-sysusers.service systemd-network-generator.service \
    dev-mqueue.mount; do
    ln -sf /dev/null "$ROOTFS/etc/systemd/system/$unit"
  done
  mkdir -p "$ROOTFS/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\n' >"$ROOTFS/etc/systemd/journald.conf.d/labctl.conf"
  # udev would load these for the emulated hardware (IDE controller, the
  # host CPU's kvm/crypto features, input, balloon): each module load is
  # signature-checked in emulated code, and nothing in a lab uses them.
  for mod in kvm kvm_amd kvm_intel irqbypass intel_rapl_msr intel_rapl_common iosf_mbi \
    ata_piix ata_generic libata pata_acpi aesni_intel ghash_clmulni_intel sha512_ssse3 \
    sha256_ssse3 sha1_ssse3 crct10dif_pclmul crc32_pclmul polyval_clmulni evdev serio_raw \
    psmouse pcspkr floppy button virtio_balloon qemu_fw_cfg bochs cirrus drm i2c_piix4 \
    joydev; do
    echo "blacklist $mod"
  done >"$ROOTFS/etc/modprobe.d/labctl-blacklist.conf"

  # No br_netfilter here: labctl's agent loads it and sets
  # bridge-nf-call-iptables (the plan's bridgeNetfilter), and this box is
  # how CI proves it does.

  log "making the initrd and the disk image"
  mkdir -p "$WORK/box"
  cp "$ROOTFS"/boot/vmlinuz-* "$WORK/box/vmlinuz"
  make_initrd "$ROOTFS" "$WORK/initrd" >"$WORK/box/initrd.img"
  chmod 0644 "$WORK/box/vmlinuz" "$WORK/box/initrd.img"
  truncate -s "${DISK_GB}G" "$WORK/disk.raw"
  mkfs.ext4 -q -L root -d "$ROOTFS" "$WORK/disk.raw"
  qemu-img convert -O qcow2 "$WORK/disk.raw" "$WORK/box/box.img"
  rm -f "$WORK/disk.raw"
  echo "$HASH" >"$WORK/box/labctl-recipe"
  printf '{"provider":"libvirt","format":"qcow2","virtual_size":%d}\n' "$DISK_GB" \
    >"$WORK/box/metadata.json"
  # The box's own Vagrantfile (merged into every lab's): direct kernel boot.
  # qemu runs as libvirt-qemu and cannot reach files under a 0700 home, so
  # the kernel and initrd are copied to a world-readable folder first.
  cat >"$WORK/box/Vagrantfile" <<EOF
require "fileutils"
box_dir = File.dirname(__FILE__)
boot_dir = "/var/tmp/labctl-boxes/$HASH"
%w[vmlinuz initrd.img].each do |f|
  dst = File.join(boot_dir, f)
  next if File.exist?(dst)
  FileUtils.mkdir_p(boot_dir, mode: 0o755)
  FileUtils.cp(File.join(box_dir, f), dst + ".tmp")
  File.chmod(0o644, dst + ".tmp")
  File.rename(dst + ".tmp", dst)
end
Vagrant.configure("2") do |config|
  # Known guest: Vagrant skips probing ~40 guest types over SSH (~55 s
  # under emulation).
  config.vm.guest = :debian
  # Vagrant runs each of its guest commands (a few dozen per machine) in
  # "bash -l" by default; dash without the login profile starts faster.
  config.ssh.shell = "sh"
  config.vm.provider :libvirt do |lv|
    lv.kernel = File.join(boot_dir, "vmlinuz")
    lv.initrd = File.join(boot_dir, "initrd.img")
    lv.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet mitigations=off"
    # Serial console only: no emulated display to refresh.
    lv.graphics_type = "none"
    # Entropy from the host at once: first-boot key generation would wait
    # for the guest's own under emulation.
    lv.random :model => "random"
  end
end
EOF
  tar -C "$WORK/box" -cf "$WORK/box.tar.tmp" metadata.json Vagrantfile box.img vmlinuz initrd.img labctl-recipe
  mkdir -p "$OUT"
  mv "$WORK/box.tar.tmp" "$BOX"
  log "built $BOX ($(du -h "$BOX" | cut -f1))"
fi

# Another user reads the box file; qemu (libvirt-qemu) the boot files,
# copied here before any Vagrant needs them (the box's Vagrantfile would,
# as whoever runs it first, into a folder another user may own).
chmod 0755 "$BOX_CACHE" "$OUT"
chmod 0644 "$BOX"
BOOT_DIR=/var/tmp/labctl-boxes/$HASH
if [ ! -f "$BOOT_DIR/vmlinuz" ] || [ ! -f "$BOOT_DIR/initrd.img" ]; then
  install -d -m 0755 /var/tmp/labctl-boxes "$BOOT_DIR"
  tar -xf "$BOX" -C "$BOOT_DIR" --no-same-owner vmlinuz initrd.img
  chmod 0644 "$BOOT_DIR/vmlinuz" "$BOOT_DIR/initrd.img"
  log "boot files in $BOOT_DIR"
fi

if [ "$(registered_hash)" = "$HASH" ]; then
  log "$BOX_NAME already registered with recipe $HASH${BOX_USER:+ for $BOX_USER}"
else
  log "vagrant box add --name $BOX_NAME${BOX_USER:+ as $BOX_USER}"
  box_vagrant box add --force --name "$BOX_NAME" --provider libvirt "$BOX" >/dev/null
  [ "$(registered_hash)" = "$HASH" ] || die "vagrant box add did not register recipe $HASH"
  # Older recipes' boxes, boot files and the volumes vagrant-libvirt made of
  # them in the test pool (tests/vm/daemons.sh; rescanned when it starts) go.
  find "$BOX_CACHE" /var/tmp/labctl-boxes -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9a-f]{16}' ! -name "$HASH" -exec rm -rf {} + 2>/dev/null || true
  rm -f "${LABCTL_VM_STATE:-/var/lib/labctl/vm-test}/pool/${BOX_NAME//\//-VAGRANTSLASH-}"_vagrant_box_image_*
fi
log "done"
