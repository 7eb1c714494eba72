#!/usr/bin/env bash
# `make image`: build the image, run it, wait for /ready, send docs/deploy.md's curl, report size and start-to-ready
# (the figures are kept in BENCHMARKS.md, "Docker image").
#   docker/prove.sh [IMAGE] [BASE]
# A local dockerd must be running. BuildKit builds only the stages the target needs (the Lambda stages
# are skipped), which Docker's legacy builder cannot do.
set -euo pipefail
IMAGE=${1:-pocketlm:latest}
BASE=${2:-pocketlm-base:bookworm}
PORT=${PORT:-5055}
DOCKER=${DOCKER:-docker}
cd "$(dirname "$0")/.."

if ! $DOCKER image inspect "$BASE" >/dev/null 2>&1; then
    case "$BASE" in
        pocketlm-base:*) docker/base-image.sh "$BASE" ;;
        *) $DOCKER pull "$BASE" ;;
    esac
fi
build_start=$(date +%s)
DOCKER_BUILDKIT=1 $DOCKER build --build-arg BASE="$BASE" -t "$IMAGE" .
echo "build: $(( $(date +%s) - build_start )) s"
size=$($DOCKER image inspect -f '{{.Size}}' "$IMAGE")
echo "image size: $(( size / 1000000 )) MB ($size bytes)"

name=pocketlm-prove-$$
now() { python3 -c 'import time; print(time.time())'; }
start=$(now)
$DOCKER run -d --name "$name" -p "127.0.0.1:$PORT:5000" "$IMAGE" >/dev/null
trap '$DOCKER stop -t 35 "$name" >/dev/null 2>&1; $DOCKER rm "$name" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null; then break; fi
    if [ "$($DOCKER inspect -f '{{.State.Running}}' "$name")" != true ]; then
        echo "the container exited:"; $DOCKER logs "$name" 2>&1 | tail -20; exit 1
    fi
    sleep 0.1
done
ready=$(now)
python3 -c "print(f'start-to-ready: {$ready - $start:.2f} s (docker run to 200 on /ready)')"
echo "user: $($DOCKER exec "$name" id -un)"
# "KV cache f16" when the image's attention kernel loaded (an x86 CPU with AVX2/F16C/FMA), "q8_0/f16" without it.
echo "start-up: $($DOCKER logs "$name" 2>&1 | grep -m1 'KV cache')"

# The seeds' request of README.md and docs/deploy.md, unchanged.
response=$(curl -sf -X POST -H "Content-Type: application/json" -d '{"prompt": "The capital of France is"}' "http://localhost:$PORT/generate")
echo "curl /generate: $response"
echo "$response" | python3 -c 'import json, sys; r = json.load(sys.stdin)["response"]; assert r.startswith("The capital of France is") and len(r) > 24, r'

for _ in $(seq 1 100); do   # the HEALTHCHECK's first probe runs at its interval
    status=$($DOCKER inspect -f '{{.State.Health.Status}}' "$name")
    [ "$status" != starting ] && break
    sleep 1
done
echo "HEALTHCHECK: $status"
[ "$status" = healthy ]
