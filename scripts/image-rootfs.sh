#!/usr/bin/env bash
# The operator image's root filesystem, built the way distroless images are: no base image,
# only files from Debian packages (apt-get download, dpkg-deb -x). One source of truth for
# what the image holds: scripts/build-image.sh and the Dockerfile both run this.
#   bash scripts/image-rootfs.sh OPERATOR_BINARY BOOTSTRAP_ZIP ROOTFS
# ROOTFS gets:
#   /usr/local/bin/chatroom-operator    the entrypoint
#   /opt/chatroom/bootstrap.zip         the room function (the chart's aws.handlerZip)
#   exactly the shared libraries the binary loads, and the loader (libc6, libgcc-s1)
#   /etc/ssl/certs/ca-certificates.crt  Mozilla's CA bundle (ca-certificates), for AWS over TLS
#   /etc/passwd, /etc/group             the non-root user 65532 (the chart's runAsUser)
#   /etc/nsswitch.conf                  hosts from files, then DNS
#   /usr/share/doc/*/copyright          the packages' licences
set -euo pipefail
binary=$1
zip=$2
rootfs=$3
nonroot=65532

for tool in readelf dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 1; }
done
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
packages=(libc6 libgcc-s1 ca-certificates gcc-12-base)
if ! (cd "$debs" && apt-get download -qq "${packages[@]}" 2>/dev/null); then
  apt-get update -qq
  (cd "$debs" && apt-get download -qq "${packages[@]}" 2>/dev/null)
fi
for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$debs/files"
done
libs="$debs/files/lib/x86_64-linux-gnu"

# The binary must not need a newer glibc than the one it will run with.
glibc=$(dpkg-deb -f "$debs"/libc6_*.deb Version | cut -d- -f1)
needs=$(readelf -W --dyn-syms "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
if [ "$(printf '%s\n%s\n' "$needs" "$glibc" | sort -V | tail -n 1)" != "$glibc" ]; then
  echo "error: $binary needs glibc $needs; Debian's libc6 has $glibc" >&2
  exit 1
fi

rm -rf "$rootfs"
mkdir -p "$rootfs"/{usr/local/bin,opt/chatroom,etc/ssl/certs,lib/x86_64-linux-gnu,lib64}
install -m 0755 "$binary" "$rootfs/usr/local/bin/chatroom-operator"
install -m 0644 "$zip" "$rootfs/opt/chatroom/bootstrap.zip"

# The libraries the binary names (DT_NEEDED), and theirs, until nothing new is needed.
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
pending=$(needed "$binary")
while [ -n "$pending" ]; do
  next=""
  for lib in $pending; do
    [ -e "$rootfs/lib/x86_64-linux-gnu/$lib" ] && continue
    [ -e "$libs/$lib" ] || { echo "error: $lib is in none of ${packages[*]}" >&2; exit 1; }
    install -m 0755 "$libs/$lib" "$rootfs/lib/x86_64-linux-gnu/$lib"
    next="$next $(needed "$libs/$lib")"
  done
  pending=$next
done
interpreter=$(readelf -l "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
[ "$interpreter" = /lib64/ld-linux-x86-64.so.2 ] || { echo "error: unexpected loader $interpreter" >&2; exit 1; }
[ -e "$rootfs/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ] \
  || install -m 0755 "$libs/ld-linux-x86-64.so.2" "$rootfs/lib/x86_64-linux-gnu/"
ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$rootfs/lib64/ld-linux-x86-64.so.2"

# One bundle from the package's certificates, as update-ca-certificates makes it.
find "$debs/files/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort \
  | xargs cat > "$rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$rootfs/etc/ssl/certs/ca-certificates.crt"

printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/nonexistent:/sbin/nologin\n' \
  "$nonroot" "$nonroot" > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$nonroot" > "$rootfs/etc/group"
printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
chmod 0644 "$rootfs"/etc/{passwd,group,nsswitch.conf}

# libgcc-s1's own doc folder is a link to gcc-12-base's.
for package in libc6 ca-certificates gcc-12-base; do
  install -D -m 0644 "$debs/files/usr/share/doc/$package/copyright" \
    "$rootfs/usr/share/doc/$package/copyright"
done
