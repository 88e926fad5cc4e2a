#!/usr/bin/env bash
# Build a local stand-in for the Dockerfile's base image (python:3.11.x-slim-bookworm) where no
# image registry can be reached: debootstrap of Debian bookworm with Debian's own Python 3.11,
# imported into podman as the image named by $1. What differs from the official image is in the
# README (Run with Docker > The image built here with podman).
set -euo pipefail

image="${1:?usage: container-base.sh IMAGE}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT

# python-is-python3: the official image has `python`, which the Dockerfile's HEALTHCHECK runs.
# python3-venv and python3-pip: the official image's `python -m venv` and `pip`.
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
  bookworm "$rootfs" "$mirror"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import --change 'CMD ["python3"]' - "$image"
