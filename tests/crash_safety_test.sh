#!/bin/sh
# crash_safety_test.sh: advtrain survives being killed, a full disk and a diverging run.
#   1. a training run killed with SIGKILL at random moments (some while a checkpoint is being
#      written) and resumed each time ends with the same checkpoints, byte for byte, as one
#      uninterrupted run;
#   2. the same for a resumable evaluation (eval --state): the report equals one uninterrupted
#      evaluation's, apart from the seconds it took;
#   3. a checkpoint write that fails for lack of space (a file-size limit, ulimit -f) leaves the
#      previous checkpoint whole and no temporary file, and the run ends with one line naming the
#      file and the cause;
#   4. a run whose loss becomes non-finite stops at once with one line naming the epoch and batch,
#      keeps the previous epoch's (finite) checkpoint and says why in report.json.
# The kills are random; CRASH_SEED (default: the process id, printed) replays a failing run.
# Usage: crash_safety_test.sh path/to/advtrain
BIN=${1:?usage: crash_safety_test.sh path/to/advtrain}
. "$(dirname "$0")/cli_common.sh"
export OMP_NUM_THREADS=1
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "FAIL: $PY missing (the test kills and compares with it)"; exit 1; }
SEED=${CRASH_SEED:-$$}
echo "crash-safety seed $SEED (CRASH_SEED=$SEED replays it)"

# killer.py MODE ARG -- command...: runs the command and kills it with SIGKILL, either ARG seconds
# after it starts (MODE delay) or, ARG being N:GLOB, as soon as the N-th file matching GLOB is
# created (MODE write: while that checkpoint is being written; the second of an epoch's two
# files is written after the first is in place). Prints "exit N" when the command ended by
# itself, "killed" or "killed-in-write" (the temporary file was still there after the kill).
cat >"$TMP/killer.py" <<'PY'
import ctypes, fnmatch, glob, os, select, signal, struct, subprocess, sys, time
mode, arg, cmd = sys.argv[1], sys.argv[2], sys.argv[4:]
watch = None
if mode == "write":  # inotify: woken the moment the temporary file is created
    nth, arg = arg.split(":", 1)
    nth = int(nth)
    libc = ctypes.CDLL(None, use_errno=True)
    watch = libc.inotify_init()
    os.makedirs(os.path.dirname(arg), exist_ok=True)
    if watch < 0 or libc.inotify_add_watch(watch, os.path.dirname(arg).encode(), 0x100) < 0:
        sys.exit("inotify failed")
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.environ["KILLER_LOG"], "a"))
deadline = time.monotonic() + float(arg) if mode == "delay" else None
hit = False
while p.poll() is None and not hit:
    if mode == "delay":
        hit = time.monotonic() >= deadline
        time.sleep(0.002)
    elif select.select([watch], [], [], 0.05)[0]:
        events = os.read(watch, 65536)
        while events and not hit:
            length = struct.unpack_from("iIII", events)[3]
            name = events[16:16 + length].rstrip(b"\0").decode()
            if fnmatch.fnmatch(name, os.path.basename(arg)):
                nth -= 1
                hit = nth == 0
            events = events[16 + length:]
if not hit:
    p.wait()
    print("exit", p.returncode)
    sys.exit(0)
p.send_signal(signal.SIGKILL)
p.wait()
print("killed-in-write" if mode == "write" and glob.glob(arg) else "killed")
PY
export KILLER_LOG="$TMP/killed.log"
# random DIGITS: a number in [0, 1) from the seed and a counter, the same for the same seed
draws=0
random() { draws=$((draws + 1)); echo "$SEED $draws" | cksum | awk '{printf "%.3f", ($1 % 1000) / 1000}'; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- 1. training: uninterrupted, then killed and resumed until it completes
TRAIN="train --data-dir $DATA --model smallcnn --method pgd-at --eps 0.1 --steps 2 --epochs 5 \
--train-size 300 --val-size 50 --batch-size 50 --no-final-pgd --quiet"
start=$(date +%s.%N)
"$BIN" $TRAIN --out "$TMP/A" >"$TMP/out" 2>&1 || fail "uninterrupted training failed: $(head -c 300 "$TMP/out")"
run_seconds=$(echo "$(date +%s.%N) $start" | awk '{print $1 - $2}')
kills=0 in_write=0 delayed=0 attempts=0
# kills alternately at a random moment (early enough to leave epochs to do) and the instant a
# checkpoint's temporary file appears (which loses the epoch: last.safetensors comes last),
# until three of each have landed (at most twelve tries), then runs to the end
while :; do
    attempts=$((attempts + 1))
    [ "$attempts" -gt 40 ] && { fail "training did not complete after 40 runs"; break; }
    resume=""
    [ -f "$TMP/B/last.safetensors" ] && resume=--resume
    if [ "$attempts" -gt 12 ] || { [ "$delayed" -ge 3 ] && [ "$in_write" -ge 3 ]; }; then
        mode=delay arg=100000
    elif [ $((attempts % 2)) -eq 1 ] && [ "$delayed" -lt 3 ] || [ "$in_write" -ge 3 ]; then
        mode=delay arg=$(echo "$(random) $run_seconds" | awk '{print 0.2 + $1 * $2 * 0.15}')
    else
        mode=write arg="$((in_write % 2 + 1)):$TMP/B/*.safetensors.tmp.*"
        rm -f "$TMP"/B/*.tmp.* # a killed writer's leftover is not this run's write
    fi
    result=$("$PY" "$TMP/killer.py" $mode "$arg" -- "$BIN" $TRAIN --out "$TMP/B" $resume)
    case $result in
    killed) kills=$((kills + 1)) && [ "$mode" = delay ] && delayed=$((delayed + 1)) ;;
    killed-in-write) kills=$((kills + 1)) in_write=$((in_write + 1)) ;;
    "exit 0") break ;;
    *) fail "an interrupted training run's next session ended with '$result': $(tail -c 300 "$KILLER_LOG")"; break ;;
    esac
done
echo "training: $kills kills ($in_write during a checkpoint write) in $attempts runs"
[ "$kills" -ge 5 ] || fail "only $kills kills landed (the run is shorter than the kill delays?)"
[ "$in_write" -ge 2 ] || fail "only $in_write kills landed during a checkpoint write"
for f in last.safetensors best.safetensors; do
    [ -f "$TMP/B/$f" ] && [ "$(sha "$TMP/A/$f")" = "$(sha "$TMP/B/$f")" ] ||
        fail "$f of the killed and resumed run differs from the uninterrupted run's"
done
cmp -s "$TMP/A/report.json" "$TMP/B/report.json" 2>/dev/null ||
"$PY" - "$TMP/A/report.json" "$TMP/B/report.json" <<'PY' || fail "the resumed run's report differs"
import json, sys
def strip(v):  # seconds and speeds differ from run to run, nothing else may
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if "seconds" not in k and "per_second" not in k}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
a, b = (strip(json.load(open(f))) for f in sys.argv[1:])
a.pop("checkpoint", None), b.pop("checkpoint", None)
sys.exit(0 if a == b else 1)
PY

# --- 2. a resumable evaluation, killed and continued
EVAL="eval --checkpoint $TMP/A/best.safetensors --data-dir $DATA --attack pgd --eps 0.1 --n 800 \
--batch-size 50 --no-checks --quiet"
start=$(date +%s.%N)
"$BIN" $EVAL --state "$TMP/e1.state" --json "$TMP/e1.json" >"$TMP/out" 2>&1 ||
    fail "uninterrupted evaluation failed: $(head -c 300 "$TMP/out")"
run_seconds=$(echo "$(date +%s.%N) $start" | awk '{print $1 - $2}')
kills=0 attempts=0
while :; do
    attempts=$((attempts + 1))
    [ "$attempts" -gt 30 ] && { fail "the evaluation did not complete after 30 runs"; break; }
    if [ "$kills" -lt 4 ]; then
        mode=delay arg=$(echo "$(random) $run_seconds" | awk '{print 0.1 + $1 * $2 * 0.3}')
    else
        mode=delay arg=100000
    fi
    result=$("$PY" "$TMP/killer.py" $mode "$arg" -- "$BIN" $EVAL --state "$TMP/e2.state" --json "$TMP/e2.json")
    case $result in
    killed) kills=$((kills + 1)) ;;
    "exit 0") break ;;
    *) fail "an interrupted evaluation's next session ended with '$result': $(tail -c 300 "$KILLER_LOG")"; break ;;
    esac
done
echo "evaluation: $kills kills in $attempts runs"
[ "$kills" -ge 3 ] || fail "only $kills kills of the evaluation landed"
"$PY" - "$TMP/e1.json" "$TMP/e2.json" <<'PY' || fail "the resumed evaluation's report differs from the uninterrupted one's"
import json, sys
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if "seconds" not in k and "per_second" not in k}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
a, b = (strip(json.load(open(f))) for f in sys.argv[1:])
if a != b:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            print("differs:", k)
    sys.exit(1)
PY

# --- 3. a full disk: the checkpoint write fails, the previous checkpoint stays
SHORT="train --data-dir $DATA --model smallcnn --method pgd-at --eps 0.1 --steps 2 --epochs 2 \
--train-size 300 --val-size 100 --batch-size 50 --no-final-pgd --quiet --out $TMP/C"
"$BIN" $SHORT --stop-after 1 >"$TMP/out" 2>&1 || fail "first epoch of the full-disk run failed: $(head -c 300 "$TMP/out")"
last=$(sha "$TMP/C/last.safetensors") best=$(sha "$TMP/C/best.safetensors")
# limit written files to a quarter of the checkpoint (ulimit -f counts blocks of 512 or 1024 bytes)
blocks=$(($(wc -c <"$TMP/C/last.safetensors") / 4096))
(ulimit -f "$blocks" && exec "$BIN" $SHORT --resume) >"$TMP/out" 2>&1
code=$?
[ "$code" -ne 0 ] || fail "a run that could not write its checkpoint exited 0"
[ "$code" -lt 128 ] || fail "a run that could not write its checkpoint died of a signal ($code)"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "a failed checkpoint write printed $(wc -l <"$TMP/out") lines: $(head -c 400 "$TMP/out")"
grep -q "safetensors.*File too large" "$TMP/out" || fail "the failed write does not name the file and the cause: $(head -c 300 "$TMP/out")"
[ "$(sha "$TMP/C/last.safetensors")" = "$last" ] || fail "a failed write changed last.safetensors"
[ "$(sha "$TMP/C/best.safetensors")" = "$best" ] || fail "a failed write changed best.safetensors"
ls "$TMP"/C/*.tmp.* >/dev/null 2>&1 && fail "a failed write left a temporary file: $(ls "$TMP"/C)"
# with room again the run continues from the checkpoint that survived
"$BIN" $SHORT --resume >"$TMP/out" 2>&1 || fail "resuming after the full disk failed: $(head -c 300 "$TMP/out")"

# --- 4. divergence: a learning rate warming up to 100 turns the loss non-finite
DIVERGE="train --data-dir $DATA --model smallcnn --method standard --epochs 200 --stop-after 4 \
--lr 100 --warmup-epochs 40 --train-size 400 --val-size 100 --batch-size 50 --quiet --out $TMP/D"
"$BIN" $DIVERGE >"$TMP/out" 2>&1
code=$?
[ "$code" -eq 1 ] || fail "a diverging run exited $code, expected 1: $(head -c 300 "$TMP/out")"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "a diverging run printed $(wc -l <"$TMP/out") lines: $(head -c 400 "$TMP/out")"
epoch=$(sed -n 's/.*became .* at epoch \([0-9]*\) batch [0-9]*.*/\1/p' "$TMP/out")
[ -n "$epoch" ] || fail "the divergence message names no epoch and batch: $(head -c 300 "$TMP/out")"
grep -q "\"stopped\": \"diverged: .*at epoch $epoch batch" "$TMP/D/report.json" 2>/dev/null ||
    fail "report.json does not say the run diverged at epoch $epoch"
if [ "${epoch:-1}" -ge 2 ]; then
    "$PY" - "$TMP/D/last.safetensors" "$((epoch - 1))" <<'PY' || fail "the checkpoint kept after the divergence is not epoch $((epoch - 1))'s finite weights"
import array, json, math, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
assert header["__metadata__"]["epoch"] == sys.argv[2], header["__metadata__"]["epoch"]
body = data[8 + n:]
for name, t in header.items():
    if name != "__metadata__" and t["dtype"] == "F32":
        a, b = t["data_offsets"]
        values = array.array("f", body[a:b])
        assert all(math.isfinite(x) for x in values), name
PY
else
    echo "note: the run diverged in epoch 1, before any checkpoint"
    [ -f "$TMP/D/last.safetensors" ] && fail "a run that diverged in epoch 1 wrote a checkpoint"
fi

if [ "$failures" -gt 0 ]; then
    echo "$failures crash-safety check(s) failed (seed $SEED)"
    exit 1
fi
echo "all crash-safety checks passed"
