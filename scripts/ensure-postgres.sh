#!/usr/bin/env bash
# The tests' PostgreSQL 15 at 127.0.0.1:5432 (user postgres, no password): left alone when it
# answers; otherwise installed with apt-get if missing, then started. A running server is never
# restarted. Run as root (.ci/run, and scripts/test-prerequisites.mjs on a fresh machine).
set -euo pipefail

ready() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }

ready && exit 0

fresh=0
if ! command -v pg_ctlcluster >/dev/null; then
  echo "ensure-postgres: installing postgresql" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  fresh=1
fi

hba=/etc/postgresql/15/main/pg_hba.conf
if [ "$fresh" = 1 ] && [ -f "$hba" ]; then
  # Only on the cluster installed just now: the tests connect over loopback without a password,
  # as on the development machines (first matching line wins, so this one goes on top).
  sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
fi

if pg_ctlcluster 15 main status >/dev/null 2>&1; then
  # Started by the package's install script: read the loopback rule, without a restart.
  if [ "$fresh" = 1 ]; then pg_ctlcluster 15 main reload; fi
else
  echo "ensure-postgres: starting PostgreSQL 15 (pg_ctlcluster 15 main start)" >&2
  pg_ctlcluster 15 main start
fi

for _ in $(seq 1 60); do
  ready && exit 0
  sleep 0.5
done
echo "ensure-postgres: PostgreSQL 15 does not answer on 127.0.0.1:5432 after 30 s; see /var/log/postgresql/postgresql-15-main.log" >&2
exit 1
