"""Benchmark (not a test): what idle nodes cost. N sim nodes (the real firmware on the real
MicroPython interpreter, as `streetnode sim` runs them) against a real broker; once every
node has booted and published its first reading, their processes are watched for a while
in which nothing is due but keepalive pings:

- CPU seconds per node-hour (user + system time of the node processes, from /proc);
- wake-ups per node per second (voluntary context switches: each time the process slept
  and was woken, from /proc);
- with --strace, the system calls of one node in that window (`strace -c -f`);
- then the time from a command sent to its result arriving, for commands sent to an idle
  node (median and worst of --commands).

    python -m streetnode.bench.idle [--nodes 1] [--duration 30] [--interval 3600] [--strace] [--markdown]
    python -m streetnode.bench.idle --nodes 20 --duration 30 --markdown --update docs/benchmarks.md

Linux only (/proc). The interval defaults to an hour so that the window holds no sampling
cycle: what is measured is the cost of waiting.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from streetnode.common import deps
from streetnode.common import mqtt as common_mqtt
from streetnode.common.broker import Broker
from streetnode.common.build import compile_tree
from streetnode.sim.fleet import NodeProcess, available_sensors, delivery, node_config, node_outbox

_TICKS = os.sysconf("SC_CLK_TCK")


def _tasks(pid):
    try:
        return os.listdir("/proc/%d/task" % pid)
    except OSError:
        return []


def process_counters(pid):
    """(cpu seconds, voluntary context switches, involuntary ones) of a process, all threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    vol = invol = 0
    for tid in _tasks(pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except OSError:  # a thread that just ended
            pass
    return cpu, vol, invol


def _rss_kib(pid):
    """VmRSS of a process in KiB (0 when it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _mem_total_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def parse_strace_summary(text):
    """`strace -c` output -> ({syscall: calls}, total calls)."""
    calls = {}
    total = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0].replace(".", "", 1).isdigit():
            name = parts[-1]
            n = int(parts[3])
            if name == "total":
                total = n
            else:
                calls[name] = n
    if total is None:
        total = sum(calls.values())
    return calls, total


class _Watcher:
    """Who is online, readings seen, command results (through the host tools' one client)."""

    def __init__(self, broker):
        self.lock = threading.Lock()
        self.online = set()
        self.data = {}
        self.seqs = {}  # node -> seqs received
        self.results = {}
        opts = common_mqtt.BrokerOptions(broker.host, broker.port)
        self.client = common_mqtt.connect(opts, "bench-idle-%d" % os.getpid(), on_message=self._msg,
                                          subscribe=("streetnode/+/status", "streetnode/+/data",
                                                     "streetnode/+/cmd/result"))  # fmt: skip

    def _msg(self, client, userdata, msg):
        t = time.perf_counter()
        node = msg.topic.split("/")[1]
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if msg.topic.endswith("/status") and body.get("state") == "online":
                self.online.add(node)
            elif msg.topic.endswith("/data"):
                self.data[node] = self.data.get(node, 0) + 1
                if type(body.get("seq")) is int:
                    self.seqs.setdefault(node, set()).add(body["seq"])
            elif msg.topic.endswith("/cmd/result"):
                self.results.setdefault(body.get("id"), t)

    def wait(self, cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if cond():
                    return True
            time.sleep(0.01)
        return False

    def command_rtt_ms(self, node, k):
        rtts = []
        for i in range(k):
            time.sleep(0.37)  # not in step with anything the node does
            cid = "bench-%d" % i
            t0 = time.perf_counter()
            # QoS 0: with QoS 1 the broker's PUBACK to us would hold the result back behind
            # Nagle's algorithm and our delayed ACK (40 ms on Linux): a broker artefact.
            self.client.publish("streetnode/%s/cmd" % node, json.dumps({"id": cid, "cmd": "health"}), qos=0)
            if self.wait(lambda: cid in self.results, 10):
                rtts.append((self.results[cid] - t0) * 1000)
        return rtts

    def close(self):
        common_mqtt.close(self.client)


def run(nodes=1, duration=30.0, interval=3600, use_strace=False, commands=10, heap="512k"):
    if nodes < 1 or duration <= 0 or interval <= 0:
        raise ValueError("--nodes, --duration and --interval must be positive")
    if use_strace and not shutil.which("strace"):
        raise RuntimeError("--strace: strace is not installed (apt-get install strace)")
    lib = compile_tree(lib=deps.device_lib())
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    procs = []
    res = {"nodes": nodes, "window_s": duration, "interval_s": interval, "load_before": os.getloadavg()[0]}
    try:
        with Broker() as broker:
            res["broker"] = broker.kind
            watch = _Watcher(broker)
            opts = common_mqtt.BrokerOptions(broker.host, broker.port)
            sensors = available_sensors()
            for i in range(1, nodes + 1):
                d = work / ("sim-%d" % i)
                d.mkdir()
                cfg = node_config("sim-%d" % i, opts, interval, sensors, seed=i)
                (d / "config.json").write_text(json.dumps(cfg))
                p = NodeProcess("sim-%d" % i, d, heap, lib, None)
                p.start()
                procs.append(p)
            names = ["sim-%d" % i for i in range(1, nodes + 1)]
            booted = watch.wait(lambda: all(watch.data.get(n) for n in names), 60 + nodes)
            if not booted:
                raise RuntimeError("not every node published its first reading within %d s" % (60 + nodes))
            time.sleep(2)  # the first cycle's health and PUBACKs are through
            tracer = None
            if use_strace:
                tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(procs[0].proc.pid)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
                time.sleep(0.5)  # attached
            bpid = broker.proc.pid if getattr(broker, "proc", None) is not None else None  # mosquitto
            b0 = process_counters(bpid) if bpid else None
            before = [process_counters(p.proc.pid) for p in procs]
            t0 = time.monotonic()
            time.sleep(duration)
            after = [process_counters(p.proc.pid) for p in procs]
            res["rss_mib_per_node"] = round(sum(_rss_kib(p.proc.pid) for p in procs) / nodes / 1024, 1)
            if b0 is not None:
                res["broker_cpu_percent_of_a_core"] = round((process_counters(bpid)[0] - b0[0]) / duration * 100, 2)
            dt = time.monotonic() - t0
            if tracer is not None:
                tracer.send_signal(2)  # SIGINT: strace prints its summary and detaches
                _, err = tracer.communicate(timeout=30)
                calls, total = parse_strace_summary(err)
                top = sorted(calls.items(), key=lambda kv: -kv[1])[:5]
                res["strace_node1"] = {"syscalls_per_s": round(total / duration, 1), "top": dict(top)}
            cpu = sum(a[0] - b[0] for a, b in zip(after, before))
            vol = sum(a[1] - b[1] for a, b in zip(after, before))
            invol = sum(a[2] - b[2] for a, b in zip(after, before))
            res["cpu_s_per_node_hour"] = round(cpu / nodes / dt * 3600, 2)
            res["cpu_resolution_s_per_node_hour"] = float("%.2g" % (1.0 / _TICKS / nodes / dt * 3600))  # one clock tick
            res["cpu_percent_of_a_core_all_nodes"] = round(cpu / dt * 100, 2)
            res["wakeups_per_node_s"] = round(vol / nodes / dt, 2)
            res["preempted_per_node_s"] = round(invol / nodes / dt, 2)
            with watch.lock:
                res["readings_in_window"] = sum(watch.data.values()) - nodes
            if commands:
                rtts = watch.command_rtt_ms("sim-1", commands)
                res["cmd_answered"] = "%d/%d" % (len(rtts), commands)
                if rtts:
                    res["cmd_rtt_ms_median"] = round(statistics.median(rtts), 1)
                    res["cmd_rtt_ms_max"] = round(max(rtts), 1)
            for p in procs:
                p.stop()
            procs = []
            watch.wait(lambda: False, 2)  # what left the nodes before they stopped arrives
            watch.close()
            res.update(_count(work, names, watch))
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)
    res["load_after"] = os.getloadavg()[0]
    return res


def _count(work, names, watch):
    """Every node's readings counted against what it committed on its flash (its outbox,
    read after it stopped): missing = committed, never received, and no longer waiting."""
    committed = missing = queued = 0
    for n in names:
        last, waiting = node_outbox(work / n, image=False, where="outbox")  # no slots: outbox/ at its root
        c, q, m = delivery(set(range(1, last + 1)), waiting, watch.seqs.get(n, set()))  # a fresh node: seq 1 on
        committed, queued, missing = committed + c, queued + q, missing + m
    return {"committed": committed, "missing": missing, "queued": queued}


def markdown(res):
    """The result as the Markdown table docs/benchmarks.md carries (one column per run)."""
    n = res["nodes"]
    rows = [
        ("CPU seconds per node-hour (one clock tick in the window: %s)" % res["cpu_resolution_s_per_node_hour"],
         "%s" % res["cpu_s_per_node_hour"]),
        ("CPU of one core, all %d node(s) together" % n, "%s %%" % res["cpu_percent_of_a_core_all_nodes"]),
    ]
    if "broker_cpu_percent_of_a_core" in res:
        rows.append(("CPU of one core, the broker", "%s %%" % res["broker_cpu_percent_of_a_core"]))
    rows += [
        ("wake-ups per node per second (voluntary context switches)", "%s" % res["wakeups_per_node_s"]),
        ("preemptions per node per second (involuntary)", "%s" % res["preempted_per_node_s"]),
        ("readings published in the window", "%s" % res["readings_in_window"]),
        ("memory per node process (VmRSS, mean; the interpreter runs inside a CPython process)",
         "%s MiB" % res["rss_mib_per_node"]),
        ("readings committed, missing, still queued (every node's outbox read after the run)",
         "%d, %d, %d" % (res["committed"], res["missing"], res["queued"])),
    ]
    if "strace_node1" in res:
        st = res["strace_node1"]
        top = ", ".join("%s %d" % kv for kv in st["top"].items())
        rows.append(("system calls per second, node 1 (`strace -c -f`)", "%s (%s)" % (st["syscalls_per_s"], top or "none")))
    if "cmd_answered" in res:
        rtt = ("%s ms (%s ms)" % (res["cmd_rtt_ms_median"], res["cmd_rtt_ms_max"])) if "cmd_rtt_ms_median" in res else "-"
        rows.append(("command to its result, median (max); %s answered" % res["cmd_answered"], rtt))
    rows.append(("load average before, after", "%.1f, %.1f" % (res["load_before"], res["load_after"])))
    cores = os.cpu_count() or 1
    mem_mib = _mem_total_kib() // 1024
    per_node = res["cpu_percent_of_a_core_all_nodes"] / n + res.get("broker_cpu_percent_of_a_core", 0) / n
    by_cpu = int(cores * 100 / per_node) if per_node > 0 else None
    by_mem = int(mem_mib / res["rss_mib_per_node"]) if res["rss_mib_per_node"] else None
    rows.append(("nodes this machine carries at this interval (%d cores, %d MiB): by CPU (nodes and broker), "
                 "by memory" % (cores, mem_mib),
                 "%s, %s" % (by_cpu if by_cpu is not None else "-", by_mem if by_mem is not None else "-")))  # fmt: skip
    head = "%d idle sim node(s), interval %g s, watched %g s, broker %s" % (n, res["interval_s"], res["window_s"],
                                                                        res["broker"])  # fmt: skip
    lines = ["| %s | |" % head, "| --- | ---: |"] + ["| %s | %s |" % r for r in rows]
    lines.append("")
    lines.append("- CPU and wake-ups: user + system time and voluntary context switches of the node processes "
                 "(/proc) in the window, after every node published its first reading; each node's flash a host "
                 "directory")  # fmt: skip
    if "strace_node1" in res:
        lines.append("- with strace attached to node 1 for the whole window: its stops at each system call "
                     "count as wake-ups (about two per call), so run without --strace for the bare figure")  # fmt: skip
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="streetnode-bench-idle", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1, help="idle sim nodes (default 1)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds watched (default 30)")
    p.add_argument("--interval", type=float, default=3600, help="the nodes' sampling interval in s (default 3600)")
    p.add_argument("--strace", action="store_true", help="also count node 1's system calls with strace -c -f")
    p.add_argument("--commands", type=int, default=10, help="commands sent to node 1 afterwards (default 10)")
    p.add_argument("--heap", default="512k", help="MicroPython heap per node (default 512k, as the sim)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table instead of JSON")
    args = p.parse_args(argv)
    try:
        res = run(args.nodes, args.duration, args.interval, args.strace, args.commands, args.heap)
    except (RuntimeError, ValueError) as e:
        print("bench idle: %s" % e, file=sys.stderr)
        return 2
    print(markdown(res) if args.markdown else json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.idle", main))
