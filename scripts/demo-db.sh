#!/usr/bin/env bash
# Creates the demo audit database used by `make run` and `make screenshots`, once: three operators
# (one per role) and the four synthetic demo accounts of assets/demo, each with three references.
# The PINs below are for the demo database only; they are printed on the sign-in screen's hint.
#
#   scripts/demo-db.sh BINARY DB_PATH
set -euo pipefail
bin="$1"
db="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -f "$db" ]; then
  exit 0
fi
mkdir -p "$(dirname "$db")"
tmp="$db.partial"
rm -f "$tmp" "$tmp-wal" "$tmp-shm"
cs() { "$bin" --db "$tmp" "$@" >/dev/null; }
COUNTERSIGN_NEW_PIN=246810 cs operator add supervisor --role supervisor
export COUNTERSIGN_OPERATOR=supervisor COUNTERSIGN_PIN=246810
COUNTERSIGN_NEW_PIN=135791 cs operator add clerk --role clerk
COUNTERSIGN_NEW_PIN=975310 cs operator add auditor --role auditor
n=1000
for w in "$root"/assets/demo/w*/; do
  w="$(basename "$w")"
  case "$w" in *_forg) continue ;; esac
  n=$((n + 1))
  cs account add "$n" --holder "Demo holder $w"
  cs account enrol "$n" "$root/assets/demo/$w/01.png" "$root/assets/demo/$w/02.png" "$root/assets/demo/$w/03.png"
done
# Checkpoint the WAL into the main file so that the rename below moves one complete database.
"$bin" --db "$tmp" info >/dev/null
mv "$tmp" "$db"
rm -f "$tmp-wal" "$tmp-shm"
echo "demo database ready: $db (operators supervisor/246810, clerk/135791, auditor/975310; accounts 1001-1004)"
