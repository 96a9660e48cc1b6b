#!/usr/bin/env bash
# Builds the release binary (no development license key) and packs
# dist/topdog-VERSION-x86_64-linux.tar.gz with the binary, install.sh, the
# systemd unit, the example configuration and the README.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
name="topdog-$version-x86_64-linux"
cargo build --release --locked --bin topdog
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"
cp "$target_dir/release/topdog" installer/install.sh systemd/topdog.service topdog.example.toml README.md "$stage/$name/"
chmod 0755 "$stage/$name/topdog" "$stage/$name/install.sh"
mkdir -p dist
tar -C "$stage" --owner=0 --group=0 -czf "dist/$name.tar.gz" "$name"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "dist/$name.tar.gz"
