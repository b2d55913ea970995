#!/usr/bin/env bash
# Captures every screen of the real application under Xvfb into docs/screenshots/<screen>.png.
#
# The binary runs in its screenshot mode (COUNTERSIGN_SCREENSHOT=<screen>): it signs in a demo
# supervisor from a temporary database, opens the screen with the demo data in assets/demo, and
# touches a "ready" file once the screen has settled; only then is the window captured. Everything this
# script starts is stopped by its PID.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${COUNTERSIGN_BIN:-$ROOT/target/release/countersign}
OUT=$ROOT/docs/screenshots
SCREENS=${SCREENS:-"signin verify calibrate audit train batch"}
WIDTH=1440
HEIGHT=900

if [[ ! -x $BIN ]]; then
    echo "screenshots: $BIN not found; run 'make build' first" >&2
    exit 1
fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need Xvfb || ! need import; then
    if [[ $(id -u) -eq 0 ]] && need apt-get; then
        echo "screenshots: installing xvfb and imagemagick" >&2
        apt-get install -y -qq xvfb imagemagick >/dev/null || { apt-get update -qq && apt-get install -y -qq xvfb imagemagick >/dev/null; }
    else
        echo "screenshots: needs Xvfb and ImageMagick's import (apt-get install xvfb imagemagick)" >&2
        exit 1
    fi
fi

# A free X display number: no socket and no lock file.
DISPLAY_NUM=""
for n in $(seq 90 160); do
    if [[ ! -e /tmp/.X11-unix/X$n && ! -e /tmp/.X$n-lock ]]; then
        DISPLAY_NUM=$n
        break
    fi
done
if [[ -z $DISPLAY_NUM ]]; then
    echo "screenshots: no free X display between :90 and :160" >&2
    exit 1
fi

TMP=$(mktemp -d)
XVFB_PID=""
APP_PID=""
cleanup() {
    if [[ -n $APP_PID ]]; then kill "$APP_PID" 2>/dev/null || true; wait "$APP_PID" 2>/dev/null || true; fi
    if [[ -n $XVFB_PID ]]; then kill "$XVFB_PID" 2>/dev/null || true; wait "$XVFB_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

Xvfb ":$DISPLAY_NUM" -screen 0 "${WIDTH}x${HEIGHT}x24" -nolisten tcp >"$TMP/xvfb.log" 2>&1 &
XVFB_PID=$!
for _ in $(seq 1 50); do
    [[ -e /tmp/.X11-unix/X$DISPLAY_NUM ]] && break
    sleep 0.1
done

export COUNTERSIGN_DB=$TMP/audit.sqlite3
export COUNTERSIGN_OPERATOR=demo-supervisor
export COUNTERSIGN_PIN=demo-pin-2026
DEMO=$ROOT/assets/demo

# Seed the database: the demo supervisor, and a few decisions so the Audit screen has rows.
"$BIN" --db "$COUNTERSIGN_DB" operator add --name "$COUNTERSIGN_OPERATOR" --role supervisor --bootstrap >"$TMP/seed.log" 2>&1 \
    || { echo "screenshots: could not create the demo operator:" >&2; cat "$TMP/seed.log" >&2; exit 1; }
if [[ -d $DEMO ]]; then
    mapfile -t CHEQUES < <(find "$DEMO" -iname '*cheque*.png' | sort | head -n 4)
    mapfile -t REFS < <(find "$DEMO" -path '*_forg*' -prune -o -iname '*.png' -print | grep -vi cheque | sort | head -n 1)
    for c in "${CHEQUES[@]}"; do
        [[ ${#REFS[@]} -gt 0 ]] || break
        "$BIN" --db "$COUNTERSIGN_DB" --device cpu verify --reference "${REFS[0]}" --cheque "$c" >>"$TMP/seed.log" 2>&1 || true
    done
fi

mkdir -p "$OUT"
for screen in $SCREENS; do
    ready=$TMP/ready-$screen
    rm -f "$ready"
    COUNTERSIGN_SCREENSHOT=$screen COUNTERSIGN_SCREENSHOT_READY=$ready DISPLAY=":$DISPLAY_NUM" \
        "$BIN" --device cpu gui >"$TMP/app-$screen.log" 2>&1 &
    APP_PID=$!
    for _ in $(seq 1 600); do
        [[ -e $ready ]] && break
        if ! kill -0 "$APP_PID" 2>/dev/null; then break; fi
        sleep 0.2
    done
    if [[ ! -e $ready ]]; then
        echo "screenshots: $screen did not become ready; log:" >&2
        cat "$TMP/app-$screen.log" >&2
        exit 1
    fi
    sleep 0.5
    import -display ":$DISPLAY_NUM" -window root "$OUT/$screen.png"
    grep -h "first frame" "$TMP/app-$screen.log" | sed "s/^/$screen: /" || true
    kill "$APP_PID" 2>/dev/null || true
    wait "$APP_PID" 2>/dev/null || true
    APP_PID=""
    echo "screenshots: wrote docs/screenshots/$screen.png"
done
