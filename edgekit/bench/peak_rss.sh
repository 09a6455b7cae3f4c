#!/system/bin/sh
# Run a benchmark tool on the device and report its peak resident set (VmHWM, kB) from
# /proc/<pid>/status, polled while it runs (VmHWM only grows, so the last reading is the peak).
out="$0.$$.out"
"$@" > "$out" 2>&1 &
pid=$!
hwm=0
while kill -0 "$pid" 2>/dev/null; do
  v=$(sed -n 's/^VmHWM:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
  [ -n "$v" ] && hwm=$v
  sleep 0.05
done
wait "$pid"
rc=$?
cat "$out"
rm -f "$out"
echo "EDGEKIT_VMHWM_KB=$hwm"
exit $rc
