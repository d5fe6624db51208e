#!/bin/bash
# hwm.sh DIR [bench args…]: runs BIN's bench (default ./target/release of the directory it is started from) from DIR and,
# every 1 s, appends to DIR/samples: time, 100k lines so far, load, server VmRSS kB, VmHWM kB,
# bench ticks, server ticks, then comm=ticks summed per thread name.
d=$1; shift; bin=${BIN:-$(pwd)/target/release}
rm -rf $d; mkdir -p $d; cp $bin/dialboard $bin/dialboard-bench $d/; cd $d
( ./dialboard-bench "$@" > run.out 2>&1 ) & bp=$!
while kill -0 $bp 2>/dev/null; do
  p=$(for x in $(pgrep -x dialboard); do [ "$(readlink /proc/$x/exe)" = "$d/dialboard" ] && echo $x; done | head -1)
  b=$(pgrep -x dialboard-bench | head -1)
  if [ -n "$p" ]; then
    th=$(for t in /proc/$p/task/*; do echo "$(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat)"; done | awk '{s[$1]+=$2} END{for(k in s) printf "%s=%d ", k, s[k]}')
    pg=$(for q in $(pgrep -u postgres); do awk '{print $14+$15}' /proc/$q/stat 2>/dev/null; done | awk '{s+=$1} END{print s+0}')
    th="$th postgres=$pg"
    echo "$(date +%s) $(grep -c 'last 100k' run.out) $(cut -d' ' -f1 /proc/loadavg) $(awk '/VmRSS/{print $2}' /proc/$p/status) $(awk '/VmHWM/{print $2}' /proc/$p/status) $(awk '{print $14+$15}' /proc/$b/stat 2>/dev/null || echo 0) $(awk '{print $14+$15}' /proc/$p/stat) $th" >> samples
  fi
  sleep 1
done
