#!/usr/bin/env bash
# `make image-test`: build the Dockerfile with podman and run what it built against the fake providers.
#   tools  podman, runc, debootstrap (Debian packages, installed when missing)
#   base   localhost/bookworm-py:latest, debootstrapped once (no registry is reachable here) and reused
#   build  the image, its base passed as BASE; static checks: HEALTHCHECK, user, no pip, no compiler, no apt lists
#   web    read-only root: migrations (the release step), gunicorn: /health, `podman healthcheck run`, AI endpoints
#          answered by the fakes (Gemini; Azure Speech through the SDK's native libraries), the process not root
#   worker the same image as the job worker: a lesson job posted to web runs there; SIGTERM stops it, exit 0
#   drain  `podman stop` while a slow request is in flight: /health/ready 503 while requests are still answered,
#          then the request (outlasting the window) completes 200 and gunicorn exits 0
# Prints each check and the time of each phase; exits non-zero on the first failure; removes its containers always.
# Podman here (see the note at PODMAN below) needs runc and explicit ulimits. Set IMAGE_TEST_REBUILD_BASE=1 to
# debootstrap the base again (from apt's own mirror, or IMAGE_TEST_MIRROR).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IMAGE_TEST_TAG:-localhost/backend-ai:test}"
BASE_IMAGE=localhost/bookworm-py:latest
PY="${PYTHON:-.venv/bin/python}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
RUN_ID="backend-ai-test-$$"
KEY=image-test-key

T0=$EPOCHREALTIME; PHASE=""; PHASE_T=$T0; TIMES=()
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
end_phase() {
  [ -z "$PHASE" ] || { TIMES+=("$PHASE $(since "$PHASE_T")"); echo "   ($PHASE: $(since "$PHASE_T") s)"; }
}
phase() { end_phase; PHASE="$1"; PHASE_T=$EPOCHREALTIME; echo "== $1: $2"; }
ok() { echo "   ok   $*"; }
fail() { echo "   FAIL $*" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/image-test.XXXXXX")"
containers=(); fakes_pid=""
cleanup() {
  set +e
  for name in "${containers[@]}"; do $SUDO podman --runtime runc rm -f -t 0 "$name" >/dev/null 2>&1; done
  [ -z "$fakes_pid" ] || kill "$fakes_pid" 2>/dev/null
  $SUDO rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase tools "podman, runc, debootstrap"
missing=()
for tool in podman runc debootstrap curl; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "   installing ${missing[*]}"
  APT=(apt-get -o DPkg::Lock::Timeout=600)  # wait for another install rather than fail, as system-deps.sh does
  $SUDO "${APT[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Podman on these machines: crun refuses the kernel's hybrid cgroups (runc works; named in case crun is installed
# too), and podman's default ulimits exceed the hard limits that root cannot raise (no CAP_SYS_RESOURCE): without
# --ulimit, runc fails with "error setting rlimits ... operation not permitted".
hard_nofile=$(ulimit -Hn); hard_nproc=$(ulimit -Hu)
nofile=20000; [ "$hard_nofile" = unlimited ] || [ "$hard_nofile" -ge $nofile ] || nofile=$hard_nofile
nproc=32768; [ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -ge $nproc ] || nproc=$hard_nproc
PODMAN=(podman --runtime runc)
[ -z "$SUDO" ] || PODMAN=("$SUDO" "${PODMAN[@]}")
LIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
# Podman 4.3 tries to add a systemd timer for every HEALTHCHECK and logs an error when there is none: only noise,
# since the test runs the check itself (`podman healthcheck run`).
pm() { "${PODMAN[@]}" "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
ok "$(pm --version), runc, ulimits nofile=$nofile nproc=$nproc"

phase base "$BASE_IMAGE"
if [ "${IMAGE_TEST_REBUILD_BASE:-0}" != 1 ] && pm image exists "$BASE_IMAGE"; then
  ok "reused"
else
  # The mirror apt already uses (deb822 sources first, then sources.list), never a security suite.
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }')
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) \
    { print $i; exit } }' /etc/apt/sources.list 2>/dev/null || true)
  mirror="${IMAGE_TEST_MIRROR:-$mirror}"
  [ -n "$mirror" ] || fail "no Debian mirror in apt's sources: set IMAGE_TEST_MIRROR"
  rootfs="$work/rootfs"
  echo "   debootstrap bookworm from $mirror"
  $SUDO debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libssl3 bookworm "$rootfs" \
    "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log"; fail "debootstrap"; }
  $SUDO chroot "$rootfs" apt-get clean
  # No package lists, and nothing of this host (its resolver, its name) in the base.
  $SUDO rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
  $SUDO tar -C "$rootfs" -c . | pm import -q --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  $SUDO rm -rf "$rootfs"
  ok "built"
fi

phase build "$IMAGE from ./Dockerfile (BASE=$BASE_IMAGE)"
build=(--format docker --network=host --build-arg "BASE=$BASE_IMAGE" -t "$IMAGE")
# Outbound TLS is re-signed by a local CA the host trusts: pip gets the host's bundle for this build only.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  build+=(-v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt)
fi
pm build "${build[@]}" "${LIMITS[@]}" . >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; fail "build"; }
size=$(pm image inspect --format '{{.Size}}' "$IMAGE")
ok "built: $(awk -v s="$size" 'BEGIN { printf "%.0f MB", s / 1e6 }')"
pm image inspect "$IMAGE" | "$PY" -c '
import json, sys
image = json.load(sys.stdin)[0]
config = image["Config"]
test = (image.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test") or []  # podman keeps it outside
assert any("/health" in part for part in test), f"no HEALTHCHECK on /health: {test}"
assert config.get("User") == "10001:10001", "user " + repr(config.get("User"))
assert config.get("StopSignal") in ("SIGTERM", "15"), "stop signal " + repr(config.get("StopSignal"))
assert "8000/tcp" in (config.get("ExposedPorts") or {}), "port 8000 not exposed"
' || fail "image config"
ok "config: HEALTHCHECK on /health, user 10001, STOPSIGNAL SIGTERM, EXPOSE 8000"
# As root, to look everywhere: no compiler, no pip, no apt lists or pip cache; every library the Speech SDK links
# resolves (GStreamer aside: the codec extension is for compressed input, which the service never sends).
# shellcheck disable=SC2016  # the container's shell expands these
pm run --rm "${LIMITS[@]}" --user 0 --network=none "$IMAGE" sh -c '
  set -e
  for tool in gcc cc make; do ! command -v $tool >/dev/null || { echo "$tool present"; exit 1; }; done
  ! python -m pip --version >/dev/null 2>&1 || { echo "pip present"; exit 1; }
  [ -z "$(find /var/lib/apt/lists -type f ! -name lock 2>/dev/null)" ] || { echo "apt lists present"; exit 1; }
  [ ! -e /root/.cache/pip ] || { echo "pip cache present"; exit 1; }
  sdk=$(python -c "import azure.cognitiveservices.speech as s, os; print(os.path.dirname(s.__file__))")
  missing=$(ldd "$sdk"/*.so | grep "not found" | grep -v -e libgst -e libglib -e libgobject | sort -u || true)
  [ -z "$missing" ] || { echo "Speech SDK libraries missing: $missing"; exit 1; }
  owned=$(find / -xdev -user 10001 ! -path "/app/var" ! -path "/app/var/*")
  [ -z "$owned" ] && [ "$(stat -c %u /app/var)" = 10001 ] || { echo "owned by the app user: $owned"; exit 1; }
' || fail "image contents"
ok "contents: no compiler, pip, apt lists or pip cache; Speech SDK libraries resolve; only /app/var is the app's"

phase web "release step, gunicorn against the fakes"
"$PY" - "$work/fakes" "$work/speech.wav" <<'EOF' &
import signal, sys, threading
from pathlib import Path
from tests.audio_samples import speech_wav
from tests.fakes.azure_speech import FakeAzureSpeech
from tests.fakes.gemini import FakeGemini
gemini, azure = FakeGemini().start(), FakeAzureSpeech(latency_ms=50).start()
Path(sys.argv[2]).write_bytes(speech_wav(segments=2))
Path(sys.argv[1] + ".tmp").write_text(f"{gemini.base_url} {azure.host_url} {azure.port}\n")
Path(sys.argv[1] + ".tmp").rename(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
threading.Event().wait()
EOF
fakes_pid=$!
for _ in $(seq 1 100); do [ -f "$work/fakes" ] || sleep 0.1; done
[ -f "$work/fakes" ] || fail "the fakes did not start"
read -r gemini_url azure_host azure_port <"$work/fakes"
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
mkdir -p "$work/data" && $SUDO chown 10001:10001 "$work/data"
cat >"$work/env" <<EOF
APP_ENV=production
API_KEYS=ci:$KEY
ADMIN_API_KEY=image-test-admin
GEMINI_API_KEY=simulated
GEMINI_BASE_URL=$gemini_url
AZURE_SPEECH_KEY=simulated
AZURE_SPEECH_HOST=$azure_host
DATABASE_URL=sqlite:////app/var/backend-ai.db
HOST=127.0.0.1
PORT=$port
EOF
# Read-only, as Kubernetes runs it (readOnlyRootFilesystem): podman puts a tmpfs on /tmp, and /app/var (SQLite, the
# job queue, the disk cache) is a volume, shared by web and worker as on one VM.
RUN=(pm run "${LIMITS[@]}" --read-only --network=host --env-file "$work/env" -v "$work/data:/app/var")
if ! "${RUN[@]}" --rm "$IMAGE" flask --app wsgi db upgrade >"$work/migrate.log" 2>&1; then
  cat "$work/migrate.log"; fail "migrations"
fi
ok "release step: flask --app wsgi db upgrade"
containers+=("$RUN_ID-web")
"${RUN[@]}" -d --name "$RUN_ID-web" "$IMAGE" >/dev/null
t=$EPOCHREALTIME
for _ in $(seq 1 300); do
  curl -sf -o /dev/null "$base/health" && break
  [ "$(pm inspect --format '{{.State.Running}}' "$RUN_ID-web")" = true ] || break
  sleep 0.2
done
curl -sf -o /dev/null "$base/health" || { pm logs "$RUN_ID-web" | tail -n 30; fail "/health"; }
ok "/health answers $(since "$t") s after start"
pm healthcheck run "$RUN_ID-web" >/dev/null || fail "podman healthcheck run: unhealthy"
ok "podman healthcheck run: healthy"
[ "$(pm exec "$RUN_ID-web" id -u)" = 10001 ] || fail "exec user is not 10001"
# shellcheck disable=SC2016  # awk's $2
pid1_uid=$(pm exec "$RUN_ID-web" awk '/^Uid:/ { print $2 }' /proc/1/status)
[ "$pid1_uid" = 10001 ] || fail "gunicorn runs as uid $pid1_uid"
ok "non-root: id -u and gunicorn (pid 1) are 10001"
calls() { curl -sf "$1/_fake/calls" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["calls"])'; }
analyze() {  # analyze TEXT OUT: status code on stdout, headers and body in OUT.*
  curl -s -o "$2.body" -D "$2.headers" -w '%{http_code}' -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d "{\"text\": \"$1\"}" "$base/api/analyze"
}
before=$(calls "$gemini_url")
code=$(analyze "Yesterday i recieve a letter from my freind." "$work/analyze")
provider=$(awk -F': ' 'tolower($1) == "x-provider" { print $2 }' "$work/analyze.headers" | tr -d '\r')
[ "$code" = 200 ] || { cat "$work/analyze.body"; fail "POST /api/analyze: $code"; }
if [ "$provider" != gemini ] || [ "$(calls "$gemini_url")" -le "$before" ]; then
  fail "analyze not answered by Gemini (${provider:-no provider})"
fi
ok "POST /api/analyze: 200 from the fake Gemini"
code=$(curl -s -o "$work/transcribe.body" -w '%{http_code}' -H "X-API-Key: $KEY" -F "audio=@$work/speech.wav" \
  "$base/api/transcribe")
[ "$code" = 200 ] || { cat "$work/transcribe.body"; fail "POST /api/transcribe: $code"; }
[ "$(calls "http://127.0.0.1:$azure_port")" -gt 0 ] || fail "transcribe did not reach the fake Azure Speech"
ok "POST /api/transcribe: 200 through the Speech SDK from the fake Azure"

phase worker "python -m backend.jobs.worker from the same image"
containers+=("$RUN_ID-worker")
"${RUN[@]}" -d --name "$RUN_ID-worker" "$IMAGE" python -m backend.jobs.worker >/dev/null
job=$(curl -sf -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d '{"topic": "Travel", "level": "A2", "sections": 2}' "$base/api/lessons" \
  | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["data"]["job_id"])') || fail "POST /api/lessons"
status=""
for _ in $(seq 1 300); do
  status=$(curl -sf -H "X-API-Key: $KEY" "$base/api/jobs/$job" \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["data"]["status"])' || true)
  case "$status" in succeeded|failed|cancelled) break ;; esac
  sleep 0.2
done
[ "$status" = succeeded ] || { pm logs "$RUN_ID-worker" | tail -n 30; fail "lesson job: ${status:-no status}"; }
ok "a lesson job posted to web ran in the worker container: succeeded"
t=$EPOCHREALTIME
pm stop -t 30 "$RUN_ID-worker" >/dev/null
exit_code=$(pm inspect --format '{{.State.ExitCode}}' "$RUN_ID-worker")
[ "$exit_code" = 0 ] || { pm logs "$RUN_ID-worker" | tail -n 30; fail "worker exit status $exit_code"; }
pm logs "$RUN_ID-worker" 2>&1 | grep -q "job worker exited" || fail "the worker did not log its exit"
ok "SIGTERM: the worker stopped cleanly in $(since "$t") s, exit 0"

phase drain "podman stop during a slow request"
curl -sf -d '{"latency_ms": 7000}' "$gemini_url/_fake/config" >/dev/null  # outlasts the 5 s drain window
before=$(calls "$gemini_url")
analyze "She go to school every days." "$work/slow" >"$work/slow.code" &
slow_pid=$!
for _ in $(seq 1 100); do [ "$(calls "$gemini_url")" -gt "$before" ] && break; sleep 0.05; done
[ "$(calls "$gemini_url")" -gt "$before" ] || fail "the slow request did not reach the fake Gemini"
t=$EPOCHREALTIME
pm stop -t 30 "$RUN_ID-web" >/dev/null &
stop_pid=$!
# The drain window (SHUTDOWN_DRAIN_SECONDS, 5 s by default): readiness says 503 while requests are still answered.
ready=""
for _ in $(seq 1 80); do
  ready=$(curl -s -o /dev/null -w '%{http_code}' "$base/health/ready" || true)
  [ "$ready" = 503 ] && break
  sleep 0.05
done
[ "$ready" = 503 ] || fail "/health/ready did not turn 503 after SIGTERM (last: ${ready:-no answer})"
during=$(curl -s -o /dev/null -w '%{http_code}' "$base/health" || true)
[ "$during" = 200 ] || fail "a request sent during the drain window: ${during:-no answer}"
ok "draining: /health/ready 503 while a new request is still answered 200"
wait "$stop_pid"
stopped_in=$(since "$t")
wait "$slow_pid" || true
code=$(cat "$work/slow.code")
provider=$(awk -F': ' 'tolower($1) == "x-provider" { print $2 }' "$work/slow.headers" 2>/dev/null | tr -d '\r')
if [ "$code" != 200 ] || [ "$provider" != gemini ]; then
  fail "the in-flight request: $code (${provider:-no provider})"
fi
ok "the request in flight at SIGTERM completed: 200 from Gemini"
exit_code=$(pm inspect --format '{{.State.ExitCode}}' "$RUN_ID-web")
[ "$exit_code" = 0 ] || { pm logs "$RUN_ID-web" | tail -n 30; fail "gunicorn exit status $exit_code"; }
ok "gunicorn drained and exited 0 in $stopped_in s (not killed)"
for name in web worker; do
  pm logs "$RUN_ID-$name" >"$work/$name.log" 2>&1
  if grep -E 'Traceback|"level": "(ERROR|CRITICAL)"|Permission denied' "$work/$name.log" >"$work/errors"; then
    head -n 20 "$work/errors"; fail "$name logged errors"
  fi
done
ok "no errors, tracebacks or permission problems in the web and worker logs"

end_phase
echo "== image-test passed in $(since "$T0") s; image $IMAGE $(awk -v s="$size" 'BEGIN { printf "%.0f MB", s / 1e6 }')"
printf '   %s s\n' "${TIMES[@]}"
