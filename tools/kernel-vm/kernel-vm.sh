#!/bin/bash
# Run commands on another Linux kernel: Debian's stock kernel packages booted
# under QEMU over this machine's own root file system.
#
#   kernel-vm.sh prepare KERNEL DIR     fetch KERNEL's package with apt-get download
#                                       (extracted into DIR, not installed), build
#                                       DIR/initramfs.cpio.gz. KERNEL: 6.1 (Debian 12's
#                                       stock line) | 6.12 (bookworm-security) | a
#                                       linux-image-* package name. Idempotent.
#   kernel-vm.sh run DIR [--] CMD...    boot DIR's kernel, run CMD as root in the current
#                                       directory with the current environment; CMD's
#                                       stdout+stderr arrive on stdout; exit status is
#                                       CMD's (125: the VM died first). Usable as
#                                       `go test -exec "kernel-vm.sh run DIR"`.
#
# The host's / is shared read-only over 9p; the guest lays a tmpfs overlay on
# it, so writes work and vanish with the VM. /dev/kvm here cannot run a stock
# kernel, so QEMU emulates (TCG): boot ≈ 3.5 s, compute ≈ 10× and process
# start 35–60× slower than the host. The runner exports TLSTAP_TEST_TIME_SCALE
# (10, more on a loaded host) so tests stretch their waits by it. No overall timeout: wrap in
# timeout(1). Environment: VM_CPUS (1), VM_MEM MiB (3072), VM_VERBOSE=1 (kernel
# messages on stderr).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '2,24p' "$0" >&2; exit 2; }

# package KERNEL: the Debian package that provides it.
package() {
	case $1 in
	6.1) apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1\./{print $2; exit}' ;;
	6.12) apt-cache pkgnames linux-image-6.12. | grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -V | tail -1 ;;
	linux-image-*) echo "$1" ;;
	*) echo "unknown kernel $1 (6.1, 6.12 or a linux-image-* package)" >&2; return 1 ;;
	esac
}

prepare() {
	local kernel=$1 dir=$2 pkg kver
	pkg=$(package "$kernel")
	if [ -z "$pkg" ]; then # a fresh machine may have no package lists yet
		apt-get update -qq >&2
		pkg=$(package "$kernel")
	fi
	[ -n "$pkg" ] || { echo "no package for kernel $kernel in the apt lists" >&2; exit 1; }
	mkdir -p "$dir"
	if [ "$(cat "$dir/package" 2>/dev/null)" != "$pkg" ]; then
		rm -rf "${dir:?}"/*
		(cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
		dpkg -x "$dir/$pkg"_*.deb "$dir/root"
		rm -f "$dir/$pkg"_*.deb
		kver=$(ls "$dir/root/lib/modules")
		depmod -b "$dir/root" "$kver"
		vmlinux "$dir/root/boot/vmlinuz-$kver" "$dir/vmlinux"
		echo "$pkg" > "$dir/package"
	fi
	if ! [ "$dir/initramfs.cpio.gz" -nt "$here/init.sh" ] || ! [ "$dir/initramfs.cpio.gz" -nt "$dir/package" ]; then
		initramfs "$dir/root" "$dir/initramfs.cpio.gz"
	fi
	echo "kernel $(ls "$dir/root/lib/modules") ($pkg) ready in $dir" >&2
}

# vmlinux BZIMAGE OUT: the uncompressed kernel inside a bzImage. QEMU boots an
# ELF vmlinux through its PVH note, which skips decompression in the guest
# (2–4 s under emulation). Debian compresses 6.1 with xz, 6.12 with zstd.
vmlinux() {
	local z
	z=$(mktemp)
	python3 - "$1" "$z" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
for magic in (b'\xfd7zXZ\x00', b'\x28\xb5\x2f\xfd'):
    i = d.find(magic)
    if i >= 0:
        open(sys.argv[2], 'wb').write(d[i:])
        break
else:
    sys.exit('no xz or zstd payload in ' + sys.argv[1])
PY
	# The payload is followed by other data, so the decompressors complain at
	# its end; the ELF check below is what counts.
	case $(head -c 4 "$z" | od -An -tx1 | tr -d ' ') in
	fd377a58) xz -dcq "$z" > "$2" 2>/dev/null || true ;;
	*) zstd -dcq "$z" > "$2" 2>/dev/null || true ;;
	esac
	rm -f "$z"
	file "$2" | grep -q 'ELF 64-bit' || { echo "vmlinux extraction from $1 failed" >&2; rm -f "$2"; }
}

# initramfs KROOT OUT: static busybox, init.sh as /init, and the guest kernel's
# modules for virtio, 9p and overlayfs with their dependencies, in load order.
initramfs() {
	local kroot=$1 out=$2 kver work m kw path name
	kver=$(ls "$kroot/lib/modules")
	file -L /bin/busybox | grep -q 'statically linked' || { echo "/bin/busybox is not static (busybox-static)" >&2; exit 1; }
	work=$(mktemp -d)
	mkdir -p "$work"/{bin,dev,proc,sys,lib/modules}
	cp /bin/busybox "$work/bin/busybox"
	cp "$here/init.sh" "$work/init"
	chmod 755 "$work/init"
	: > "$work/lib/modules/order"
	for m in virtio_pci 9pnet_virtio 9p overlay virtio_console; do
		modprobe -d "$kroot" -S "$kver" --show-depends "$m" | while read -r kw path _; do
			[ "$kw" = insmod ] || continue
			name=$(basename "$path"); name=${name%%.ko*}
			grep -qx "$name" "$work/lib/modules/order" && continue
			case $path in
			*.ko.xz) xz -dc "$path" ;; *.ko.zst) zstd -dcq "$path" ;; *) cat "$path" ;;
			esac > "$work/lib/modules/$name.ko"
			echo "$name" >> "$work/lib/modules/order"
		done
	done
	(cd "$work" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$out"
	rm -rf "$work"
}

run() {
	local dir=$1 job kernel rc
	shift
	[ "${1:-}" = -- ] && shift
	[ $# -gt 0 ] || usage
	[ -f "$dir/initramfs.cpio.gz" ] || { echo "$dir is not prepared (kernel-vm.sh prepare)" >&2; exit 2; }
	kernel=$dir/vmlinux
	[ -f "$kernel" ] || kernel=$(ls "$dir"/root/boot/vmlinuz-*)
	job=$(mktemp -d "${TMPDIR:-/tmp}/kernel-vm.XXXXXX")
	trap 'rm -rf "$job"' EXIT
	# Waits stretch 10× for the emulation, and by the host's load on top
	# (load 20 on 2 cores leaves the VM a tenth of its usual share), at most 100×.
	local scale
	scale=$(awk -v n="$(nproc)" '{f = $1 / n; if (f < 1) f = 1; s = int(10 * f + 0.5); print (s > 100 ? 100 : s)}' /proc/loadavg)
	export TLSTAP_TEST_TIME_SCALE=${TLSTAP_TEST_TIME_SCALE:-$scale}
	{
		echo '#!/bin/bash'
		local v
		for v in $(compgen -e); do
			case $v in BASH*|SHLVL|PWD|OLDPWD|_|SHELLOPTS|PPID|UID|EUID|TMPDIR) continue ;; esac
			printf 'export %s=%q\n' "$v" "${!v}"
		done
		printf 'cd -- %q || exit 126\n' "$PWD"
		printf 'exec'; printf ' %q' "$@"; echo
	} > "$job/cmd"
	# The guest's clock: QEMU's emulated TSC counts at the host's TSC rate,
	# but a guest calibrating it on a loaded host got it 4× wrong once (its
	# clock ran 4× fast: every test timeout fired early). Tell it the rate.
	local clock="tsc=reliable" khz
	khz=$(awk '/^flags/ && / constant_tsc/ {c=1} /^cpu MHz/ && !m {m=$4} END {if (c && m) printf "%d", m*1000}' /proc/cpuinfo)
	[ -n "$khz" ] && clock="$clock tsc_early_khz=$khz"
	local console=$job/console.log quiet="quiet loglevel=1"
	[ "${VM_VERBOSE:-0}" = 1 ] && console=/dev/stderr quiet=""
	# QEMU's stdin: a FIFO nobody writes to but that never reaches EOF (at EOF
	# the stdio chardev closes and the guest's writes to the port block).
	mkfifo "$job/stdin"
	exec 3<>"$job/stdin"
	set +e
	# One vCPU by default: with two, the guest livelocked (soft lockup on
	# both CPUs at syscall_trace_enter's jump label) in 3 of 7 runs while
	# the kernel live-patched it for our raw syscall tracepoints; with one,
	# 4 of 4 runs passed, in ~80 s instead of 4-10 min (README, Kernels).
	qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
		-machine q35 -accel tcg,thread=multi -cpu max -smp "${VM_CPUS:-1}" -m "${VM_MEM:-3072}" \
		-chardev file,id=ser,path="$console",append=on -serial chardev:ser \
		-device virtio-serial-pci -chardev stdio,id=out -device virtserialport,chardev=out,name=out \
		-kernel "$kernel" -initrd "$dir/initramfs.cpio.gz" \
		-append "console=ttyS0 $quiet panic=-1 mitigations=off $clock no_timer_check 8250.nr_uarts=1 ${VM_APPEND:-}" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs local,path="$job",mount_tag=job,security_model=none <&3
	rc=$?
	set -e
	[ -f "$job/rc" ] && exit "$(cat "$job/rc")"
	echo "kernel-vm: the VM stopped before the command finished (qemu exit $rc)" >&2
	# the kernel's first complaint, then its last words
	[ -f "$job/console.log" ] && { grep -m1 -A25 -E 'Oops|BUG:|WARNING:|panic' "$job/console.log"; echo ...; tail -n 15 "$job/console.log"; } >&2
	exit 125
}

case ${1:-} in
prepare) [ $# -eq 3 ] || usage; prepare "$2" "$3" ;;
run) [ $# -ge 3 ] || usage; dir=$2; shift 2; run "$dir" "$@" ;;
*) usage ;;
esac
