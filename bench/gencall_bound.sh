#!/bin/sh
# gen_server:call bound (issue 23): 120 callers on a driver BEAM call `gs` on a target node, every process pinned to
# one CPU (taskset -c 0), against, in rotating order in one run:
#   beam              a BEAM target (beam_bench:target/0): the BEAM -> BEAM figure
#   cnode             bench/cnode_bench.c on libcnode (cn_gen_server), as bench/dist.sh builds it
#   gsb_<mode>        bench/gs_bound.c, the ideal responder (no terms built, one read, replies of a read in one
#                     write), in each of GENCALL_MODES (default "read,batch epoll,batch read,each"; see gs_bound.c);
#                     the item cnode_sbatch adds cnode_bench run as SCHED_BATCH (chrt --batch 0)
# For each run it samples /proc: CPU time (schedstat, all threads) of the target and of the driver, and their
# voluntary (went to sleep: a wake-up follows) and involuntary (preempted) context switches, each per call.
# Prints one line per run and a table of medians; ratio = rate / beam's median rate; busy = the pair's CPU time over
# the run's wall time (below ~0.95: something else ran on that CPU, the figure is suspect). GENCALL_CPU (default 0)
# is the CPU everything is pinned to.
#
#   sh bench/gencall_bound.sh BUILD     (GENCALL_MS per run, default 1000; GENCALL_ROUNDS, default 5: ~1-2 min)
set -u
BUILD=${1:-build}
SUB=gencall
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
# cnode_bench as a user builds it (installed headers); gs_bound is a bound tool and uses dist/ directly.
build_plain cnode_bench
$CC $CFLAGS -I"$ROOT/base" -I"$ROOT/dist" -I"$ROOT/term" -o "$OUT/gs_bound" "$HERE/gs_bound.c" "$LIB" $LDLIBS || exit 1
erlc -o "$OUT" "$HERE/beam_bench.erl" || exit 1

exec python3 - "$OUT" "${GENCALL_MS:-1000}" "${GENCALL_ROUNDS:-5}" "${GENCALL_MODES:-read,batch epoll,batch read,each}" <<'EOF'
import os, sys, socket, subprocess, time, statistics
out, ms, rounds, modes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
env = dict(os.environ, ERL_EPMD_PORT=str(free_port()))
procs = []
epmd = subprocess.Popen(['epmd', '-port', env['ERL_EPMD_PORT'], '-address', '127.0.0.1'], env=env)
procs.append(epmd)
time.sleep(0.3)
cookie, host, tag = 'gcb%d' % os.getpid(), '127.0.0.1', 'g%d' % os.getpid()
erl = ['taskset', '-c', os.environ.get('GENCALL_CPU', '0'), 'erl', '-noshell', '-noinput', '-setcookie', cookie, '-connect_all', 'false',
       '-kernel', 'net_ticktime', '60', '-pa', out]
cpu = os.environ.get('GENCALL_CPU', '0')
pin = ['taskset', '-c', cpu]
targets = [('beam', erl + ['-name', '%s_beam@%s' % (tag, host), '-eval', 'beam_bench:target()']),
           ('cnode', pin + [out + '/cnode_bench', '%s_cnode@%s' % (tag, host), cookie])]
for m in modes:
    if m == 'cnode_sbatch':
        targets.append((m, pin + ['chrt', '--batch', '0', out + '/cnode_bench', '%s_%s@%s' % (tag, m, host), cookie]))
        continue
    lab = 'gsb_' + m.replace(',', '_')
    targets.append((lab, pin + [out + '/gs_bound', '%s_%s@%s' % (tag, lab, host), cookie, m]))
tp, errs = {}, {}
def cpu_ns(pid):
    t = 0
    for task in os.listdir('/proc/%d/task' % pid):
        try: t += int(open('/proc/%d/task/%s/schedstat' % (pid, task)).read().split()[0])
        except OSError: pass
    return t
def ctx(pid):
    v = n = 0
    for task in os.listdir('/proc/%d/task' % pid):
        try:
            for l in open('/proc/%d/task/%s/status' % (pid, task)):
                if l.startswith('voluntary_ctxt'): v += int(l.split()[1])
                elif l.startswith('nonvoluntary_ctxt'): n += int(l.split()[1])
        except OSError: pass
    return v, n
def sample(pid): return (cpu_ns(pid),) + ctx(pid)
rows = {}
try:
    for lab, argv in targets:
        errs[lab] = open('%s/%s.err' % (out, lab), 'w+')
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errs[lab])
        procs.append(p); tp[lab] = p
    names = ['%s_%s' % (tag, lab) for lab, _ in targets]
    for _ in range(200):
        r = subprocess.run(['epmd', '-port', env['ERL_EPMD_PORT'], '-names'], capture_output=True, text=True).stdout
        if all('name %s ' % n in r for n in names): break
        time.sleep(0.1)
    else:
        sys.exit('gencall_bound: targets did not come up')
    time.sleep(0.5)
    d = subprocess.Popen(erl + ['-name', '%s_d@%s' % (tag, host), '-run', 'beam_bench', 'prof', 'gencall_rot', ms,
                               rounds] + ['%s@%s' % (n, host) for n in names], env=env, stdout=subprocess.PIPE, text=True)
    procs.append(d)
    last = None
    print('%-18s %9s %11s %11s %13s %13s %5s' % ('target', 'calls/s', 'tgt_us/call', 'drv_us/call', 'tgt_vol/invol',
                                               'drv_vol/invol', 'busy'))
    for line in d.stdout:
        now = {lab: sample(p.pid) for lab, p in tp.items()}; now['d'] = sample(d.pid)
        w = line.split()
        if w and w[0] == 'gencall' and last:
            lab = w[1].split('@')[0][len(tag) + 1:]
            rate = float(w[2]); calls = rate * int(ms) / 1000
            t = [(a - b) / calls for a, b in zip(now[lab], last[lab])]
            dr = [(a - b) / calls for a, b in zip(now['d'], last['d'])]
            r = (rate, t[0] / 1e3, dr[0] / 1e3, t[1], t[2], dr[1], dr[2], (t[0] + dr[0]) * calls / (int(ms) * 1e6))
            rows.setdefault(lab, []).append(r)
            print('%-18s %9.0f %11.2f %11.2f %6.3f/%.3f %6.3f/%.3f %5.2f' % ((lab,) + r), flush=True)
        last = now
    d.wait()
finally:
    for p in reversed(procs):
        if p.poll() is None: p.terminate()
        try: p.wait(5)
        except subprocess.TimeoutExpired: p.kill()
if 'beam' not in rows: sys.exit('gencall_bound: no runs')
b = statistics.median(r[0] for r in rows['beam'])
print('\nmedians over %s rounds of %s ms, load %s' % (rounds, ms, open('/proc/loadavg').read().split()[0]))
print('%-18s %9s %6s %11s %11s %11s %13s %13s %5s' % ('target', 'calls/s', 'ratio', 'tgt_us/call', 'drv_us/call',
                                                      'sum_us/call', 'tgt_vol/invol', 'drv_vol/invol', 'busy'))
for lab, _ in targets:
    if lab not in rows: continue
    m = [statistics.median(r[i] for r in rows[lab]) for i in range(8)]
    print('%-18s %9.0f %6.2f %11.2f %11.2f %11.2f %6.3f/%.3f %6.3f/%.3f %5.2f' % (lab, m[0], m[0] / b, m[1], m[2],
                                                                              m[1] + m[2], m[3], m[4], m[5], m[6], m[7]))
for lab, f in errs.items():
    f.seek(0); s = f.read().strip()
    if s: print('%s: %s' % (lab, s.splitlines()[-1]))
EOF
