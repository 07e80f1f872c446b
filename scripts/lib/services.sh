# shellcheck shell=bash
# Makes sure PostgreSQL and Redis answer on 127.0.0.1: starts them when installed but stopped, and
# installs them (Debian packages) when asked to. Sourced by scripts/test and scripts/bench.
#
#   ensure_services [--install]
#
# Exports SM_TEST_POSTGRES_URL and SM_TEST_REDIS_URL for the tests, unless already set.

PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

say() { printf '%s\n' "services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 50); do
    port_open "$port" && return 0
    sleep 0.2
  done
  say "$name did not start listening on 127.0.0.1:$port"
  return 1
}

install_packages() {
  if [ "$(id -u)" != 0 ]; then
    say "installing needs root: run 'sudo apt-get install -y postgresql redis-server' (or run this script as root with --install)"
    return 1
  fi
  say "installing postgresql and redis-server from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null
}

start_postgres() {
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    return 1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  say "PostgreSQL is not running: starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || return 1
  wait_for_port "$PG_PORT" PostgreSQL || return 1
  # A fresh Debian cluster asks TCP clients for a password; give the postgres role the one the
  # test URL carries (ignored where authentication is 'trust').
  if command -v psql >/dev/null; then
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
  fi
}

start_redis() {
  command -v redis-server >/dev/null || return 1
  say "Redis is not running: starting redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >/dev/null || return 1
  wait_for_port "$REDIS_PORT" Redis
}

ensure_services() {
  local install=${1:-}
  local missing=()
  if ! port_open "$PG_PORT"; then
    start_postgres || missing+=(postgresql)
  fi
  if ! port_open "$REDIS_PORT"; then
    start_redis || missing+=(redis-server)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$install" = --install ]; then
      install_packages || return 1
      port_open "$PG_PORT" || start_postgres || { say "PostgreSQL still not reachable on 127.0.0.1:$PG_PORT"; return 1; }
      port_open "$REDIS_PORT" || start_redis || { say "Redis still not reachable on 127.0.0.1:$REDIS_PORT"; return 1; }
    else
      say "not installed or not startable: ${missing[*]}"
      say "install them with: sudo apt-get install -y ${missing[*]}   (or: scripts/test --install, as root)"
      return 1
    fi
  fi
  export SM_TEST_POSTGRES_URL=${SM_TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:$PG_PORT/postgres}
  export SM_TEST_REDIS_URL=${SM_TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
  say "PostgreSQL on 127.0.0.1:$PG_PORT and Redis on 127.0.0.1:$REDIS_PORT are up"
}
