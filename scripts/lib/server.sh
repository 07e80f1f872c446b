# shellcheck shell=bash
# Runs a throwaway `sessionctl serve` for the end-to-end scripts (scripts/api-fuzz, scripts/browser-test):
# a fresh SQLite database in a temp dir, a random API key, a free port picked by the OS.
#
#   server_build            cargo build -p sessionctl (debug)
#   server_start            start it; sets SERVER_URL, SERVER_KEY, SERVER_PID, SERVER_DIR; waits for /healthz
#   server_stop [--log]     SIGTERM (then SIGKILL), wait, remove SERVER_DIR; --log first prints the end of
#                           the server's log; safe to call twice (use it in an EXIT trap)
#   api METHOD PATH [JSON]  one authenticated request; sets API_STATUS and API_BODY (no subshell!)
#   api_expect STATUS METHOD PATH [JSON]   the same, failing with the response on another status
#   json_get FIELD.PATH     reads a JSON document on stdin, prints one field (e.g. session.id)
#
# Needs curl and python3 (both on every machine of this kind).

SERVER_BIN=${SERVER_BIN:-${CARGO_TARGET_DIR:-target}/debug/sessionctl}
SERVER_URL=""
SERVER_KEY=""
SERVER_PID=""
SERVER_DIR=""

server_say() { printf '%s\n' "server: $*" >&2; }

server_build() {
  server_say "building sessionctl (cargo build -p sessionctl)"
  CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build --quiet -p sessionctl
}

server_start() {
  local bin
  bin="$(cd "$(dirname "$SERVER_BIN")" && pwd)/$(basename "$SERVER_BIN")"
  if [ ! -x "$bin" ]; then
    server_say "no sessionctl binary at $bin (run server_build first)"
    return 1
  fi
  SERVER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sessionctl-e2e.XXXXXX")
  SERVER_KEY=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
  # Run from the temp dir so a developer's .env (REDIS_URL, DATABASE_URL, ...) is not read, and drop
  # the store variables of the caller's environment: this server sees only its own SQLite file.
  (
    cd "$SERVER_DIR" &&
      exec env -u REDIS_URL -u SESSION_DATA_DIR SESSION_ENV=development \
        DATABASE_URL="sqlite://$SERVER_DIR/e2e.db" SESSION_API_KEY="$SERVER_KEY" \
        RUST_LOG="${RUST_LOG:-warn}" "$bin" serve --addr 127.0.0.1:0
  ) 2>"$SERVER_DIR/server.log" &
  SERVER_PID=$!

  local port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's|^sessionctl: listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$SERVER_DIR/server.log" | head -n 1)
    [ -n "$port" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      server_say "sessionctl exited before listening; its log:"
      cat "$SERVER_DIR/server.log" >&2
      return 1
    fi
    sleep 0.1
  done
  if [ -z "$port" ]; then
    server_say "sessionctl printed no 'listening on' line within 10 s; its log:"
    cat "$SERVER_DIR/server.log" >&2
    return 1
  fi
  SERVER_URL="http://127.0.0.1:$port"

  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$SERVER_URL/healthz" 2>/dev/null; then
      server_say "sessionctl (pid $SERVER_PID) up at $SERVER_URL, database $SERVER_DIR/e2e.db"
      return 0
    fi
    sleep 0.1
  done
  server_say "$SERVER_URL/healthz did not answer 200 within 10 s; server log:"
  cat "$SERVER_DIR/server.log" >&2
  return 1
}

server_stop() {
  if [ "${1:-}" = --log ] && [ -n "$SERVER_DIR" ] && [ -s "$SERVER_DIR/server.log" ]; then
    server_say "last lines of the server log:"
    tail -n 40 "$SERVER_DIR/server.log" | sed 's/^/  | /' >&2
  fi
  if [ -n "$SERVER_PID" ]; then
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -TERM "$SERVER_PID" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$SERVER_PID" 2>/dev/null; then
        server_say "sessionctl (pid $SERVER_PID) ignored SIGTERM for 5 s: killing it"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
      fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
  if [ -n "$SERVER_DIR" ] && [ -d "$SERVER_DIR" ]; then
    rm -rf "$SERVER_DIR"
    SERVER_DIR=""
  fi
}

# api METHOD PATH [JSON BODY]: sets API_STATUS (000 when unreachable) and API_BODY. Call it directly,
# not in $(...), or the two variables are lost with the subshell.
API_STATUS=""
API_BODY=""
api() {
  local method=$1 path=$2 body=${3:-} out
  out=$(mktemp "${TMPDIR:-/tmp}/api-body.XXXXXX")
  local args=(-sS -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $SERVER_KEY")
  if [ -n "$body" ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$body")
  fi
  API_STATUS=$(curl "${args[@]}" "$SERVER_URL$path" 2>/dev/null) || true
  API_STATUS=${API_STATUS:-000}
  API_BODY=$(cat "$out")
  rm -f "$out"
}

# api_expect STATUS METHOD PATH [JSON BODY]: api, then fail with the response on any other status.
api_expect() {
  local want=$1
  shift
  api "$@"
  if [ "$API_STATUS" != "$want" ]; then
    server_say "$1 $2: expected HTTP $want, got $API_STATUS: $API_BODY"
    return 1
  fi
}

json_get() {
  python3 -c '
import json, sys
value = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    value = value[int(part)] if isinstance(value, list) else value[part]
print(value if not isinstance(value, (dict, list)) else json.dumps(value))
' "$1"
}
