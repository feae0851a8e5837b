#!/bin/sh
# report_test.sh ADVTRAIN: a short adversarial run, an evaluation with a curve and one under the
# corruption suite, the HTML report of them, and that page loaded in headless Chromium (Debian's
# chromium): the DOM must hold the report's sections (the reliability diagrams of the evaluation's
# calibration and the corruption table among them), and a screenshot must show a real page (many
# colours, not blank).
set -eu
BIN=$1
HERE=$(dirname "$0")
DATA=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
command -v chromium >/dev/null || { echo "chromium is not installed (apt-get install chromium)"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BIN" train --data-dir "$DATA" --train-size 512 --val-size 128 --epochs 2 --batch-size 64 \
    --method pgd-at --eps 0.1 --steps 2 --no-final-pgd --final-suite quick --final-n 32 \
    --out "$TMP/run" --quiet >/dev/null
"$BIN" eval --checkpoint "$TMP/run/best.safetensors" --data-dir "$DATA" --n 32 --attack fgsm \
    --eps 0.1 --curve 0,0.05,0.1 --json "$TMP/run/eval-curve.json" --no-checks --quiet >/dev/null
"$BIN" eval --checkpoint "$TMP/run/best.safetensors" --data-dir "$DATA" --n 32 --suite corruptions \
    --corruptions fog,contrast --baseline "$TMP/run/last.safetensors" \
    --json "$TMP/run/eval-corruptions.json" --quiet >/dev/null
"$BIN" report "$TMP/run" --data-dir "$DATA" >/dev/null
for f in report.html figures/accuracy.svg figures/loss.svg figures/curve0.svg figures/examples.png \
    figures/reliability0-clean.svg figures/reliability0-adversarial.svg; do
    [ -s "$TMP/run/$f" ] || { echo "FAIL: $f missing"; exit 1; }
done
grep -q "src=\"http" "$TMP/run/report.html" && { echo "FAIL: the page loads something from outside"; exit 1; }
CHROME="chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --user-data-dir=$TMP/profile"
$CHROME --dump-dom "file://$TMP/run/report.html" 2>/dev/null >"$TMP/dom.html"
for text in "advtrain report" "Final evaluation" "Attack suite" "Training" "Adversarial examples" \
    "Reproducibility" "<svg" "data:image/png;base64" "Calibration" "reliability: clean inputs" \
    "reliability: adversarial inputs" 'id="diagonal"' "Common corruptions" "<td>contrast</td>" \
    "mCE"; do
    grep -q "$text" "$TMP/dom.html" || { echo "FAIL: the rendered page lacks '$text'"; exit 1; }
done
$CHROME --window-size=1200,2400 --screenshot="$TMP/shot.png" "file://$TMP/run/report.html" >/dev/null 2>&1
/usr/bin/python3 "$HERE/png_check.py" "$TMP/shot.png" 1200 2400 40
echo "report page renders in headless Chromium"
