#!/usr/bin/env bash
# Build the Dockerfile's base image locally, for machines that cannot pull from Docker Hub:
# Debian bookworm (python3 3.11) made by debootstrap from the machine's Debian mirror, imported with `docker import`.
#   docker/base-image.sh [TAG]        (default pocketlm-base:bookworm; needs root, debootstrap and docker)
# Certificate authorities this machine trusts beyond Debian's (/usr/local/share/ca-certificates, e.g. a
# proxy's) are copied in, so pip and uv inside the build reach PyPI through the same proxy.
set -euo pipefail
TAG=${1:-pocketlm-base:bookworm}
# The Debian mirror this machine's own apt uses (a local mirror or proxy where there is one); DEBIAN_MIRROR overrides.
apt_mirror() {
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" {print ($2 ~ /^\[/ ? $3 : $2)}'
      cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$1 == "URIs:" {for (i = 2; i <= NF; i++) print $i}'
    } | grep -E '/debian/?$' | head -n 1
}
MIRROR=${DEBIAN_MIRROR:-$(apt_mirror)}
if [ -z "$MIRROR" ]; then
    echo "no Debian mirror in /etc/apt (sources.list, sources.list.d): set DEBIAN_MIRROR=http://.../debian" >&2
    exit 1
fi
echo "Debian mirror: $MIRROR"
if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "$TAG exists"; exit 0
fi
ROOT=$(mktemp -d /tmp/pocketlm-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOT" "$MIRROR"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    chroot "$ROOT" update-ca-certificates >/dev/null
fi
# What a container never needs: package lists, caches, docs.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/*
tar -C "$ROOT" -c . | docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$TAG"
docker image ls "$TAG"
