#!/usr/bin/env python3
# spike.py PID SECONDS [OUT.json]: samples the server's RssAnon and VmHWM (MiB) and its named
# threads' state and CPU ticks every ~5 ms; prints the maximum RssAnon and every rise of VmHWM
# above the sampled RssAnon + 30 MiB (a peak between two samples), and keeps the samples in OUT.
import json, os, sys, time
pid, seconds = sys.argv[1], float(sys.argv[2])
threads = {}
for t in os.listdir(f'/proc/{pid}/task'):
    name = open(f'/proc/{pid}/task/{t}/comm').read().strip()
    if name.startswith('dialboard-'):
        threads[name[10:15]] = t
rows, end = [], time.time() + seconds
while time.time() < end:
    status = {l.split(':')[0]: int(l.split()[1]) // 1024 for l in open(f'/proc/{pid}/status')
              if l.startswith(('RssAnon', 'VmHWM'))}
    states = []
    for name, t in sorted(threads.items()):
        f = open(f'/proc/{pid}/task/{t}/stat').read().rsplit(')', 1)[1].split()
        states.append(f"{name}:{f[0]}{int(f[11]) + int(f[12])}")
    rows.append((time.time(), status['RssAnon'], status['VmHWM'], ' '.join(states)))
    time.sleep(0.004)
if len(sys.argv) > 3:
    json.dump(rows, open(sys.argv[3], 'w'))
print(len(rows), 'samples; max RssAnon', max(r[1] for r in rows), 'MiB; VmHWM', rows[0][2], '->', rows[-1][2])
for before, now in zip(rows, rows[1:]):
    if now[2] > before[2] and now[2] > now[1] + 30:
        print(f"{now[0] % 100:.3f} VmHWM {before[2]}->{now[2]} RssAnon {before[1]}->{now[1]} | {now[3]}")
