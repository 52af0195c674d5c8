#!/usr/bin/env bash
# Stages the root file system of a FROM-scratch image for one Vigil binary:
#
#   images/stage.sh BINARY DIR
#
# DIR/rootfs then holds /usr/local/bin/NAME; for a dynamically linked binary, its ELF
# interpreter and the shared libraries ldd resolves, at the paths the binary looks for them
# (a statically linked one needs none); the CA bundle, for outputs that verify a manager's
# certificate against the system roots; /etc/passwd and /etc/group naming root and nonroot
# (65532); and /etc/nsswitch.conf, so names resolve from /etc/hosts, then DNS, as on any
# Linux host. glibc 2.34 and later resolve both without loading NSS modules.
set -euo pipefail

die() { echo "stage: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: $0 BINARY DIR"
bin=$1
dir=$2
[ -x "$bin" ] || die "$bin is not an executable; build it first (cargo build -p vigil-agent -p vigil-operator)"
command -v ldd >/dev/null || die "ldd is missing (Debian: libc-bin)"
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || die "$ca is missing: apt-get install ca-certificates"

root=$dir/rootfs
rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$bin" "$root/usr/local/bin/"

# "not a dynamic executable" (static) gives no paths; otherwise every absolute path ldd
# prints is a library or the interpreter, copied with its symlinks resolved.
ldd_out=$(ldd "$bin" 2>&1 || true)
while read -r lib; do
    [ -n "$lib" ] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done < <(grep -o '/[^ ]*' <<<"$ldd_out" | sort -u)

cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
