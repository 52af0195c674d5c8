#!/usr/bin/env bash
# Builds the vigil-agent and vigil-operator images from a release build:
#
#   images/build.sh                        cargo build --release, then both images
#   images/build.sh --binaries DIR         images from binaries already built in DIR
#                                          (e.g. target/debug, as the tests do)
#   options: --repo PREFIX (default ghcr.io/vigil-dev), --tag TAG (default: the
#   workspace version), --push (docker push both after building)
#
# The images are FROM scratch, so no registry is needed to build them. The binaries link
# glibc dynamically; images/stage.sh copies the libraries they need beside them. The
# docker CLI's own settings apply (DOCKER_HOST for another daemon).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "images: $*" >&2; exit 1; }

repo=ghcr.io/vigil-dev
tag=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
binaries=
push=false
while [ $# -gt 0 ]; do
    case $1 in
        --repo) repo=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --binaries) binaries=$2; shift 2 ;;
        --push) push=true; shift ;;
        *) die "unknown option $1 (see the comment at the top of $0)" ;;
    esac
done
[ -n "$tag" ] || die "no --tag and no version in Cargo.toml"
command -v docker >/dev/null || die "the docker CLI is missing (Debian: docker.io)"

if [ -z "$binaries" ]; then
    command -v cargo >/dev/null || die "cargo is missing: install Rust 1.95"
    cargo build --release --locked -p vigil-agent -p vigil-operator
    binaries=${CARGO_TARGET_DIR:-target}/release
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for name in agent operator; do
    images/stage.sh "$binaries/vigil-$name" "$stage/$name"
    # The classic builder needs no BuildKit daemon or plugin, and a scratch image needs
    # nothing BuildKit adds.
    DOCKER_BUILDKIT=0 docker build --quiet \
        --build-arg VERSION="$tag" \
        -f "images/$name.Dockerfile" -t "$repo/vigil-$name:$tag" "$stage/$name" >/dev/null
    echo "$repo/vigil-$name:$tag"
    if $push; then
        docker push "$repo/vigil-$name:$tag"
    fi
done
