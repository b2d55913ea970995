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
OUT=${SCREENSHOTS_OUT:-$ROOT/docs/screenshots}
SCREENS=${SCREENS:-"signin verify queue calibrate audit train batch"}
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
DEMO=${COUNTERSIGN_DEMO:-$ROOT/assets/demo}
export COUNTERSIGN_DEMO=$DEMO

# Seed the database: the demo supervisor, and a few decisions so the Audit screen has rows.
COUNTERSIGN_NEW_PIN=$COUNTERSIGN_PIN "$BIN" --db "$COUNTERSIGN_DB" operator add "$COUNTERSIGN_OPERATOR" --role supervisor >"$TMP/seed.log" 2>&1 \
    || { echo "screenshots: could not create the demo operator:" >&2; cat "$TMP/seed.log" >&2; exit 1; }
if [[ -f $DEMO/batch.csv ]]; then
    # A night's batch over the demo cheques writes one audit row per cheque (its REFERs go to the
    # referral queue). Its cheque ids are prefixed so that the Batch screen's own run of
    # assets/demo/batch.csv decides them afresh; the paths are made absolute for the copy.
    sed -E -e '2,$ s/^/night-/' -e "s#(,|;)(cheques/|w[0-9]{4}/)#\1$DEMO/\2#g" "$DEMO/batch.csv" >"$TMP/night.csv"
    "$BIN" --db "$COUNTERSIGN_DB" --device cpu batch --manifest "$TMP/night.csv" --out "$TMP/batch-results.csv" >>"$TMP/seed.log" 2>&1 || true
fi

# Four eyes: a second supervisor asks for a threshold change, so the Queue screen shows one waiting
# for the demo supervisor's approval.
COUNTERSIGN_NEW_PIN=730214 "$BIN" --db "$COUNTERSIGN_DB" operator add second-supervisor --role supervisor >>"$TMP/seed.log" 2>&1 \
    && COUNTERSIGN_OPERATOR=second-supervisor COUNTERSIGN_PIN=730214 "$BIN" --db "$COUNTERSIGN_DB" settings thresholds \
        --accept 0.85 --reject 0.25 --reason "quarterly review of the ROC on the 2026 Q4 archive" >>"$TMP/seed.log" 2>&1 \
    || { echo "screenshots: could not seed the approval flow:" >&2; cat "$TMP/seed.log" >&2; exit 1; }

# Runs the app in screenshot mode $1 until it says it is ready; with $2 = capture, saves the window.
run_app() {
    local mode=$1 capture=$2
    local ready=$TMP/ready-$mode
    rm -f "$ready"
    COUNTERSIGN_SCREENSHOT=$mode COUNTERSIGN_SCREENSHOT_READY=$ready DISPLAY=":$DISPLAY_NUM" \
        "$BIN" --device cpu gui >"$TMP/app-$mode.log" 2>&1 &
    APP_PID=$!
    for _ in $(seq 1 900); do
        [[ -e $ready ]] && break
        if ! kill -0 "$APP_PID" 2>/dev/null; then break; fi
        sleep 0.2
    done
    if [[ ! -e $ready ]]; then
        echo "screenshots: $mode did not become ready; log:" >&2
        cat "$TMP/app-$mode.log" >&2
        exit 1
    fi
    if [[ $capture == capture ]]; then
        sleep 0.5
        import -display ":$DISPLAY_NUM" -window root "$OUT/$mode.png"
        echo "screenshots: wrote $OUT/$mode.png"
    fi
    grep -h "first frame" "$TMP/app-$mode.log" | sed "s/^/$mode: /" || true
    kill "$APP_PID" 2>/dev/null || true
    wait "$APP_PID" 2>/dev/null || true
    APP_PID=""
}

mkdir -p "$OUT"
# The seed run verifies and confirms every demo cheque through the Verify screen, so the Audit screen
# has rows made by the real application.
if [[ -d $DEMO ]]; then
    run_app seed no
fi
for screen in $SCREENS; do
    run_app "$screen" capture
done
