#!/bin/busybox sh
# PID 1 of the test VM (packed into the initramfs by kernel-vm.sh).
# The host's root arrives over 9p (tag "hostroot", read-only on the QEMU side)
# and becomes the lower layer of an overlay whose upper layer is a tmpfs: the
# tests write where they like and nothing reaches the host. It mounts what eBPF
# tooling needs (bpffs, tracefs, debugfs, cgroup2), runs /run/job/cmd (tag
# "job", written by kernel-vm.sh) chrooted into that root, stores its exit
# status in /run/job/rc and powers off.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
die() { echo "vm-init: $*" >/dev/console; poweroff -f; }

for m in $(cat /lib/modules/order); do
	insmod /lib/modules/$m.ko || echo "vm-init: insmod $m failed" >/dev/console
done

# cache=loose: the lower layer never changes while the VM runs, and uncached
# 9p lookups make every exec under TCG several times slower.
o9p="trans=virtio,version=9p2000.L,msize=512000,cache=loose"
R=/newroot
mkdir -p /lower /rw $R
mount -t 9p -o "$o9p,ro" hostroot /lower || die "mount hostroot failed"
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work $R ||
	die "overlay mount failed"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=0755 run $R/run
mount -t tmpfs -o mode=1777 tmp $R/tmp
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
mount -t bpf bpf $R/sys/fs/bpf
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mkdir -p $R/run/job
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,cache=none" job $R/run/job ||
	die "mount job failed"
chroot $R ip link set lo up 2>/dev/null || ip link set lo up
hostname vm
ulimit -l unlimited
ulimit -n 65536

# The command's output goes through the virtio serial port named "out" (fast);
# the serial console keeps the kernel's messages.
out=/dev/console
for p in /sys/class/virtio-ports/*; do
	[ "$(cat $p/name 2>/dev/null)" = out ] && out=/dev/${p##*/}
done
stty -F $out -onlcr 2>/dev/null
chroot $R /bin/bash /run/job/cmd </dev/null >$out 2>&1
echo $? > $R/run/job/rc
sync
umount $R/run/job 2>/dev/null
echo 0 > /proc/sys/kernel/printk
poweroff -f
