#!/usr/bin/env bash
# Build the local images of docker-compose.chaos.local.yml with `docker import` (no registry needed;
# docs/recipes.md, section 8), from this machine's own Debian packages and Python:
#
#   chaosdrill-compose-postgres:15   busybox + PostgreSQL 15 (postgresql-15) + an entrypoint that initdbs once
#   chaosdrill-compose-redis:7       busybox + redis-server/redis-cli (redis-server)
#   chaosdrill-compose-python:3.11   busybox + the Python of the project's .venv (stdlib only) + every shared
#                                    library the venv's extensions load, at the interpreter's own prefix
#                                    (where .venv/bin/python points); nothing of the checkout: the checkout
#                                    (source + .venv: chaosdrill, moto, locust) is mounted read-only at its
#                                    own path, so it serves as the Toxiproxy (embedded server), S3 (moto),
#                                    app and Locust image, for any clone
#
# Idempotent and cached by content: each image carries label chaosdrill.hash (a digest of this script
# and of what goes in: package versions, the interpreter, the list of the venv's extensions); a second
# run with the same inputs builds nothing. Usage: build-compose-images.sh [ROOT] (default: the checkout).
set -euo pipefail

ROOT="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
VENV="$ROOT/.venv"
say() { echo "build-compose-images: $*" >&2; }

for bin in /bin/busybox /usr/bin/redis-server /usr/bin/redis-cli /usr/lib/postgresql/15/bin/postgres "$VENV/bin/python"; do
    [ -x "$bin" ] || { say "$bin missing (make deps; apt-get install busybox postgresql-15 redis-server)"; exit 1; }
done
PYHOME="$(sed -n 's/^home = //p' "$VENV/pyvenv.cfg")"      # .../bin of the interpreter the venv was made from
PYPREFIX="$(dirname "$PYHOME")"
PYBIN="$(readlink -f "$VENV/bin/python")"
SELF="$(sha256sum "$0" | cut -c1-64)"

hash_of() { { echo "$SELF"; printf '%s\n' "$@"; } | sha256sum | cut -c1-16; }
current() { docker image inspect -f '{{index .Config.Labels "chaosdrill.hash"}}' "$1" 2>/dev/null || true; }

# Copy files and, for every ELF among them, the shared libraries it loads (host paths kept).
copy_libs() {  # ROOTFS FILE...
    local dest="$1"; shift
    for lib in $(for f in "$@"; do ldd "$f" 2>/dev/null || true; done | grep -o '/[^ ]*' | sort -u); do
        [ -e "$lib" ] && cp -L --parents "$lib" "$dest"
    done
}
base_rootfs() {  # ROOTFS
    mkdir -p "$1/bin" "$1/tmp" "$1/etc" "$1/usr/bin"
    chmod 1777 "$1/tmp"
    cp /bin/busybox "$1/bin/"
    for a in sh ls cat mkdir rm chown env sleep id test; do ln -s busybox "$1/bin/$a"; done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$1/etc/passwd"
    echo 'root:x:0:' >"$1/etc/group"
}
import() {  # ROOTFS IMAGE HASH CHANGE...
    local dest="$1" image="$2" hash="$3"; shift 3
    local args=(-c "LABEL chaosdrill.hash=$hash" -c "LABEL chaosdrill.compose=local")
    for c in "$@"; do args+=(-c "$c"); done
    tar -C "$dest" -c . | docker import "${args[@]}" - "$image" >/dev/null
    say "built $image ($hash)"
}

WORK="$(mktemp -d /tmp/chaosdrill-compose-rootfs.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# -- PostgreSQL 15 -----------------------------------------------------------------------------------
IMAGE=chaosdrill-compose-postgres:15
H="$(hash_of "$(dpkg-query -W postgresql-15 busybox libc6)")"
if [ "$(current $IMAGE)" != "$H" ]; then
    R="$WORK/pg"; base_rootfs "$R"
    mkdir -p "$R/usr/lib/postgresql" "$R/usr/share/postgresql" "$R/usr/share" "$R/var/lib/postgresql/data"
    cp -a /usr/lib/postgresql/15 "$R/usr/lib/postgresql/"
    rm -rf "$R"/usr/lib/postgresql/15/lib/llvmjit* "$R"/usr/lib/postgresql/15/lib/bitcode  # JIT: ~100 MB of LLVM
    cp -aL /usr/share/postgresql/15 "$R/usr/share/postgresql/"
    [ -d /usr/share/zoneinfo ] && cp -aL /usr/share/zoneinfo "$R/usr/share/"
    copy_libs "$R" /usr/lib/postgresql/15/bin/* $(ls /usr/lib/postgresql/15/lib/*.so | grep -v llvmjit)
    echo 'postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh' >>"$R/etc/passwd"
    echo 'postgres:x:999:' >>"$R/etc/group"
    chown -R 999:999 "$R/var/lib/postgresql"; chmod 700 "$R/var/lib/postgresql/data"
    cat >"$R/usr/bin/pg-entry" <<'SH'
#!/bin/sh
# initdb once (trust on loopback: the stack binds 127.0.0.1 only), then PostgreSQL on 127.0.0.1:$PGPORT.
set -e
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses=127.0.0.1 -p "${PGPORT:-5432}" -k /tmp "$@"
SH
    chmod 755 "$R/usr/bin/pg-entry"
    import "$R" "$IMAGE" "$H" 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin' 'ENV TZ=UTC' 'USER postgres' \
        'ENTRYPOINT ["/usr/bin/pg-entry"]'
fi

# -- Redis 7 -----------------------------------------------------------------------------------------
IMAGE=chaosdrill-compose-redis:7
H="$(hash_of "$(dpkg-query -W redis-server redis-tools busybox libc6)")"
if [ "$(current $IMAGE)" != "$H" ]; then
    R="$WORK/redis"; base_rootfs "$R"; mkdir -p "$R/data"
    cp -L /usr/bin/redis-server /usr/bin/redis-cli "$R/usr/bin/"
    copy_libs "$R" /usr/bin/redis-server /usr/bin/redis-cli
    import "$R" "$IMAGE" "$H" 'ENV PATH=/usr/bin:/bin' 'WORKDIR /data' 'ENTRYPOINT ["/usr/bin/redis-server"]'
fi

# -- Python 3.11 (the venv's interpreter) ------------------------------------------------------------
IMAGE=chaosdrill-compose-python:3.11
mapfile -t EXTS < <(find "$VENV/lib" "$PYPREFIX/lib/python3.11/lib-dynload" -name '*.so*' -type f | sort)
H="$(hash_of "$PYBIN" "$("$PYBIN" -c 'import sys; print(sys.version)')" "$(dpkg-query -W busybox libc6)" \
    "$(printf '%s\n' "${EXTS[@]}" | sed "s|^$ROOT|ROOT|")")"
if [ "$(current $IMAGE)" != "$H" ]; then
    R="$WORK/py"; base_rootfs "$R"
    mkdir -p "$R$PYPREFIX/bin" "$R$PYPREFIX/lib"
    cp -a "$PYPREFIX"/bin/python3* "$R$PYPREFIX/bin/"
    cp -a "$PYPREFIX"/lib/libpython3* "$R$PYPREFIX/lib/" 2>/dev/null || true
    # the standard library, without its tests, site-packages (the venv has its own), Tk and build files
    tar -C "$PYPREFIX/lib" -c --exclude=python3.11/test --exclude=python3.11/site-packages \
        --exclude=python3.11/idlelib --exclude=python3.11/tkinter --exclude='python3.11/config-*' \
        --exclude=python3.11/ensurepip --exclude=python3.11/lib2to3/tests python3.11 | tar -C "$R$PYPREFIX/lib" -x
    mkdir -p "$R$PYPREFIX/lib/python3.11/site-packages"
    copy_libs "$R" "$PYBIN" "${EXTS[@]}"
    # extensions' own bundled libraries (*.libs/ of manylinux wheels) live in the mounted venv: not copied
    rm -rf "$R$ROOT"
    # Nothing of the checkout goes into the image, not even its path: the cache key above leaves the
    # checkout's path out (ROOT), so one image serves every clone on this machine. The compose override
    # puts the mounted checkout's .venv/bin first on PATH per run (it once was baked in here, and a clone
    # elsewhere then got an image whose PATH named another checkout: "python": executable file not found).
    import "$R" "$IMAGE" "$H" "ENV PATH=$PYPREFIX/bin:/usr/bin:/bin" 'ENV PYTHONDONTWRITEBYTECODE=1' \
        'ENV PYTHONUNBUFFERED=1' 'ENV HOME=/tmp' 'WORKDIR /tmp'
fi
# The venv's python must start in the image (its symlink resolves to $PYBIN, copied above) with this
# checkout mounted as the compose override mounts it: fail here with one line, not in a health check.
if ! out="$(docker run --rm --network none -v "$ROOT:$ROOT:ro" -e "PATH=$VENV/bin:/usr/bin:/bin" "$IMAGE" \
        python -c 'import harness, sys; print(sys.prefix)' 2>&1)" || [ "$(tail -n 1 <<<"$out")" != "$VENV" ]; then
    say "$IMAGE cannot run $VENV/bin/python (-> $PYBIN): $(tail -n 1 <<<"$out")"; exit 1
fi
