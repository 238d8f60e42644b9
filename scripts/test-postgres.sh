#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:${PGPORT:-5432} with trust auth and a
# database `test` (what .ci/run's second pass uses). When none answers, installs Debian's
# postgresql package if needed (as root), creates a cluster in a temporary directory (as the
# `postgres` user when run as root: the server refuses to run as root) and starts it.
# Prints the data directory when it started one; `scripts/test-postgres.sh stop DIR` stops it.
set -euo pipefail
port=${PGPORT:-5432}

if [ "${1:-}" = stop ]; then
  dir=$2
  as=()
  [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
  "${as[@]}" "$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")")/pg_ctl" \
    -D "$dir" stop -m fast >/dev/null
  rm -rf "$(dirname "$dir")"
  exit 0
fi

if pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" \
    | grep -q 1 || psql -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE test"
  exit 0
fi

bin=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)")")
if [ ! -x "$bin/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's postgresql package" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  else
    echo "PostgreSQL is not installed (Debian: sudo apt-get install postgresql)" >&2
    exit 1
  fi
fi

dir=$(mktemp -d /tmp/lanthorn-pg.XXXXXX)
as=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$dir"
  as=(runuser -u postgres --)
fi
"${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
"$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE test"
echo "$dir/data"
