#!/usr/bin/env bash
# Builds the Debian package: sfprocessor and sfprint in /usr/bin, the systemd unit, the
# default configuration in /etc/sfprocessor/ (conffiles), the logrotate rule, the docs; the
# package creates the system user sysflow the unit runs as. Needs dpkg-deb only.
#   packaging/deb/build.sh                 release binaries (built if missing)
#   BIN_DIR=target/debug packaging/deb/build.sh   other binaries (the tests package these)
#   OUT_DIR=DIR                            where the .deb goes (default target/debian)
# Prints the path of the package it wrote.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
bin_dir=${BIN_DIR:-target/release}
out_dir=${OUT_DIR:-target/debian}
if [ -z "${BIN_DIR:-}" ] && { [ ! -x "$bin_dir/sfprocessor" ] || [ ! -x "$bin_dir/sfprint" ]; }; then
  cargo build --release --bin sfprocessor --bin sfprint >&2
fi
for b in sfprocessor sfprint; do
  test -x "$bin_dir/$b" || { echo "build.sh: $bin_dir/$b is missing" >&2; exit 1; }
done
stage=$(mktemp -d "${TMPDIR:-/tmp}/sfprocessor-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
  "$stage/etc/sfprocessor/policies" "$stage/etc/logrotate.d" "$stage/usr/share/doc/sfprocessor"
for b in sfprocessor sfprint; do
  install -m 0755 "$bin_dir/$b" "$stage/usr/bin/$b"
  # Debug info stays in the build tree; the package carries stripped binaries.
  strip --strip-debug "$stage/usr/bin/$b" 2>/dev/null || true
done
install -m 0644 config/systemd/sfprocessor.service "$stage/lib/systemd/system/"
install -m 0644 packaging/deb/pipeline.json "$stage/etc/sfprocessor/pipeline.json"
install -m 0644 packaging/deb/policies-README "$stage/etc/sfprocessor/policies/README"
install -m 0644 packaging/deb/logrotate "$stage/etc/logrotate.d/sfprocessor"
install -m 0644 README.md docs/*.md "$stage/usr/share/doc/sfprocessor/"
install -d "$stage/usr/share/doc/sfprocessor/examples"
install -m 0644 config/systemd/sf-collector.service.d/sfprocessor.conf \
  "$stage/usr/share/doc/sfprocessor/examples/sf-collector.service.d-sfprocessor.conf"
cat > "$stage/usr/share/doc/sfprocessor/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sfprocessor
License: Apache-2.0
Files: *
Copyright: the sfprocessor authors
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPY
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CTRL
Package: sfprocessor
Version: $version
Architecture: $arch
Maintainer: sfprocessor maintainers <sfprocessor@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libssl3 | libssl3t64, zlib1g, adduser
Recommends: logrotate
Section: admin
Priority: optional
Homepage: https://github.com/sysflow-telemetry
Description: SysFlow processor: policies, alerts and exports for SysFlow telemetry
 A drop-in replacement for the Go sf-processor: reads SysFlow traces or the
 collector's live stream, applies Falco-style and Sigma policies, and exports
 to Kafka, syslog, Elasticsearch, files or the terminal. Also ships sfprint,
 the successor of sysprint, to print and convert traces.
CTRL
printf '/etc/sfprocessor/pipeline.json\n/etc/sfprocessor/policies/README\n/etc/logrotate.d/sfprocessor\n' > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
if [ "$1" = "configure" ]; then
  # The unit runs as sysflow; the collector (root, or a user added to group sysflow) reaches
  # its socket through the group.
  if ! getent passwd sysflow >/dev/null; then
    adduser --system --group --no-create-home --home /nonexistent --quiet sysflow
  fi
  install -d -o sysflow -g sysflow -m 0750 /var/log/sysflow
fi
# The unit is installed, not enabled: enable it once /etc/sfprocessor/pipeline.json suits.
if [ "$1" = "configure" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
POST
cat > "$stage/DEBIAN/postrm" <<'POST'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
POST
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"
mkdir -p "$out_dir"
deb="$out_dir/sfprocessor_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
