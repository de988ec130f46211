#!/usr/bin/env bash
# docker-compose on the local stack: docker-compose.chaos.yml + docker-compose.chaos.local.yml (images built
# here, host networking, loopback only). Compose 1.29 (Debian's docker-compose) cannot drop the base file's
# `ports:` in an override, and refuses them on host networking, so the two files are merged with
# `docker-compose config` and written without `ports:`/`build:` (they do not apply on host networking)
# to $CHAOSDRILL_COMPOSE_DIR/local.yml, which every command then uses.
#
#   scripts/compose-local.sh up        build the images (cached), start the stack, wait until healthy
#   scripts/compose-local.sh wait      wait until every container of the stack is healthy (or fail)
#   scripts/compose-local.sh down      stop and remove containers and named volumes of the stack
#   scripts/compose-local.sh ARGS...   any other docker-compose command on the merged file
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CHAOSDRILL_ROOT="$ROOT"
PROJECT="${CHAOSDRILL_COMPOSE_PROJECT:-chaosdrill}"
OUT="${CHAOSDRILL_COMPOSE_DIR:-/tmp/chaosdrill-compose}"
WAIT_S="${CHAOSDRILL_COMPOSE_WAIT:-180}"
COMPOSE="${COMPOSE:-docker-compose}"
mkdir -p "$OUT"
say() { echo "compose-local: $*" >&2; }

"$COMPOSE" -p "$PROJECT" -f "$ROOT/docker-compose.chaos.yml" -f "$ROOT/docker-compose.chaos.local.yml" \
    config >"$OUT/merged.yml"
python3 - "$OUT/merged.yml" "$OUT/local.yml" <<'PY'
import sys
import yaml

doc = yaml.safe_load(open(sys.argv[1]))
for name, svc in doc["services"].items():
    if svc.get("network_mode") != "host":
        sys.exit(f"compose-local: service {name} is not on host networking")
    svc.pop("ports", None)
    svc.pop("build", None)
yaml.safe_dump(doc, open(sys.argv[2], "w"), sort_keys=False)
PY
compose() { "$COMPOSE" -p "$PROJECT" -f "$OUT/local.yml" "$@"; }

wait_healthy() {
    local deadline=$((SECONDS + WAIT_S)) ids states
    while :; do
        ids="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")"
        if [ -n "$ids" ]; then
            # a container without a health check counts when it runs
            states="$(docker inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' $ids)"
            if ! grep -qv ' \(healthy\|running\)$' <<<"$states"; then return 0; fi
            if grep -q ' \(exited\|dead\)$' <<<"$states"; then say "a container stopped: $(grep ' \(exited\|dead\)$' <<<"$states" | tr '\n' ' ')"; return 1; fi
        fi
        if [ $SECONDS -ge $deadline ]; then say "not healthy within ${WAIT_S}s: $(tr '\n' ' ' <<<"$states")"; return 1; fi
        sleep 1
    done
}

case "${1:-}" in
    up)   shift; "$ROOT/scripts/ensure-docker.sh"; "$ROOT/scripts/build-compose-images.sh" "$ROOT"
          compose up -d --no-build "$@"; wait_healthy ;;
    wait) wait_healthy ;;
    down) shift; compose --profile load down -v --remove-orphans "$@" ;;
    *)    compose "$@" ;;
esac
