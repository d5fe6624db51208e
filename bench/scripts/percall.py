#!/usr/bin/env python3
# percall.py DIR A B: CPU µs a call per thread name between the first sample with ≥A and ≥B lines
import sys
d, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = []
for line in open(d + '/samples'):
    f = line.split()
    if len(f) < 7 or not all(x.lstrip("-").isdigit() for x in (f[3], f[4], f[5], f[6])): continue
    th = dict(x.split('=') for x in f[7:] if '=' in x)
    rows.append((int(f[0]), int(f[1]), float(f[2]), int(f[3]), int(f[4]), int(f[5]), int(f[6]), {k: int(v) for k, v in th.items()}))
ra = next(r for r in rows if r[1] >= a); rb = next(r for r in rows if r[1] >= b)
calls = (rb[1] - ra[1]) * 100_000
us = lambda t: t * 10_000 / calls
print(f"{calls} calls in {rb[0]-ra[0]} s = {calls/(rb[0]-ra[0]):.0f}/s; load {ra[2]}..{rb[2]}; rss {ra[3]//1024}->{rb[3]//1024} MB hwm {rb[4]//1024} MB")
print(f"server {us(rb[6]-ra[6]):.1f} µs  bench {us(rb[5]-ra[5]):.1f} µs")
for k in sorted(rb[7], key=lambda k: -(rb[7][k] - ra[7].get(k, 0))):
    v = us(rb[7][k] - ra[7].get(k, 0))
    if v >= 0.1: print(f"  {k:24s} {v:.1f}")
