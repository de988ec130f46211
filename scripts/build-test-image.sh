#!/usr/bin/env bash
# Build the tiny test image `chaosdrill-test-redis:7` with `docker import` (docs/recipes.md, section 8):
# busybox + redis-server/redis-cli + the shared libraries they load; no registry needed.
# Idempotent: does nothing when the image exists. Usage: build-test-image.sh [IMAGE]
set -euo pipefail

IMAGE="${1:-chaosdrill-test-redis:7}"
docker image inspect "$IMAGE" >/dev/null 2>&1 && exit 0

if [ ! -x /bin/busybox ] && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox >/dev/null 2>&1 \
        || { apt-get update >/dev/null 2>&1 || true; \
             DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox >/dev/null 2>&1; } \
        || true
fi
for bin in /bin/busybox /usr/bin/redis-server /usr/bin/redis-cli; do
    [ -x "$bin" ] || { echo "build-test-image: $bin missing (apt-get install busybox redis-server)" >&2; exit 1; }
done

ROOT="$(mktemp -d /tmp/chaosdrill-rootfs.XXXXXX)"
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/bin" "$ROOT/data" "$ROOT/tmp" "$ROOT/etc"
cp /bin/busybox "$ROOT/bin/"
ln -s busybox "$ROOT/bin/sh"
cp -L /usr/bin/redis-server /usr/bin/redis-cli "$ROOT/bin/"
for lib in $( (ldd /usr/bin/redis-server; ldd /usr/bin/redis-cli) | grep -o '/[^ ]*' | sort -u); do
    cp -L --parents "$lib" "$ROOT"
done
echo 'root:x:0:0:root:/:/bin/sh' >"$ROOT/etc/passwd"
tar -C "$ROOT" -c . | docker import -c 'ENTRYPOINT ["/bin/redis-server"]' -c 'WORKDIR /data' - "$IMAGE" >/dev/null
echo "build-test-image: built $IMAGE" >&2
