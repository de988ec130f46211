#!/usr/bin/env bash
# Make a Docker engine answer on this machine, idempotently (docs/recipes.md, section 8).
#
#   no dockerd binary  -> apt-get install docker.io (root only)
#   no engine answers  -> start dockerd in the background: vfs storage, no bridge, no iptables,
#                         so containers use host networking only and never touch private ranges
#   then               -> wait until `docker version` answers (or fail with one line)
#
# Pid and log live in $CHAOSDRILL_DOCKERD_DIR (default /tmp/chaosdrill-dockerd).
# Exit 0 when an engine answers; non-zero with one line on stderr otherwise.
set -euo pipefail

RUN_DIR="${CHAOSDRILL_DOCKERD_DIR:-/tmp/chaosdrill-dockerd}"
WAIT_S="${CHAOSDRILL_DOCKERD_WAIT:-30}"
mkdir -p "$RUN_DIR"

say() { echo "ensure-docker: $*" >&2; }

engine_answers() {
    if command -v docker >/dev/null 2>&1; then
        docker version --format '{{.Server.Version}}' >/dev/null 2>&1
    else
        # no CLI: ask the socket directly
        python3 - <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2)
s.connect("/var/run/docker.sock"); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
sys.exit(0 if b"OK" in s.recv(1024) else 1)
PY
    fi
}

if engine_answers; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        say "dockerd is not installed and installing docker.io needs root"; exit 1
    fi
    say "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends docker.io >"$RUN_DIR/apt.log" 2>&1; then
        apt-get update >>"$RUN_DIR/apt.log" 2>&1 || true
        apt-get install -y --no-install-recommends docker.io >>"$RUN_DIR/apt.log" 2>&1 \
            || { say "apt-get install docker.io failed; see $RUN_DIR/apt.log"; exit 1; }
    fi
fi

# A dockerd of ours may still be starting: do not start a second one.
if [ -f "$RUN_DIR/dockerd.pid" ] && kill -0 "$(cat "$RUN_DIR/dockerd.pid")" 2>/dev/null; then
    say "dockerd $(cat "$RUN_DIR/dockerd.pid") is already starting"
else
    if [ "$(id -u)" != 0 ]; then
        say "no Docker engine answers and starting dockerd needs root"; exit 1
    fi
    say "starting dockerd (vfs, no bridge, no iptables); log $RUN_DIR/dockerd.log"
    # The child writes its own pid before it execs dockerd (same pid), so a kill of this script
    # anywhere cannot leave a dockerd that no pid file names (and a second one started next time).
    # CHAOSDRILL_CHILD=dockerd marks it (and its containerd) like every other child of chaosdrill.
    rm -f "$RUN_DIR/dockerd.pid"
    PIDFILE="$RUN_DIR/dockerd.pid" nohup setsid env CHAOSDRILL_CHILD=dockerd sh -c \
        'echo $$ >"$PIDFILE.tmp" && mv -f "$PIDFILE.tmp" "$PIDFILE" && exec dockerd "$@"' sh \
        --storage-driver=vfs --bridge=none --iptables=false --ip-masq=false \
        --ip-forward=false >"$RUN_DIR/dockerd.log" 2>&1 </dev/null &
    # Wait until the pid file names it (the loop below reads it).
    for _ in $(seq 100); do [ -s "$RUN_DIR/dockerd.pid" ] && break; sleep 0.02; done
fi

deadline=$((SECONDS + WAIT_S))
while [ $SECONDS -lt $deadline ]; do
    if engine_answers; then exit 0; fi
    if ! kill -0 "$(cat "$RUN_DIR/dockerd.pid")" 2>/dev/null; then
        say "dockerd exited: $(tail -n 1 "$RUN_DIR/dockerd.log" 2>/dev/null)"; exit 1
    fi
    sleep 0.1
done
say "dockerd did not answer within ${WAIT_S}s; see $RUN_DIR/dockerd.log"
exit 1
