"""Benchmark: API writes the node agent (`gpu-scheduler agent`) makes, per node and hour, and
what that means for a fleet of 10,000 nodes.

    .venv/bin/python tests/benchmarks/bench_agent.py [--nodes 10] [--hours 24]
                                                     [--nodes-profile typical|large] [--profile]

The real `Agent` (scheduler/telemetry/agent.py: NVML read, health rules, publish on change or on
the jittered heartbeat) reads a fake NVML (scheduler/telemetry/fake_nvml.py) loaded from
tests/telemetry/fixtures/dgx-h200.json (a healthy DGX H200, 8 GPUs). Time is simulated: the
agent's `now` and the fake NVML's clock are injected and `Agent.tick()` is called every
`--interval` (the agent's default, 10 s) over `--hours` of programme time. Each publish is one
merge patch of the Node (one API write); the sample's writes are counted, per node and hour at
steady state (after each agent's first publish), and extrapolated to `--fleet` nodes.

Scenarios:

- **healthy**: `--nodes` agents, every GPU healthy: only heartbeats are published.
- **one GPU flapping**: one agent whose GPU 3 reports a critical XID (48, a double-bit ECC error)
  every P (`--flap-every`, several periods): it turns unhealthy at once, healthy again after the
  quiet period (10 minutes, doubled for each flap within an hour, up to 6 hours), and every change
  is published. The fleet figure is the healthy rate for all nodes but one, plus this node.
- **against the sandbox** (skip with `--no-sandbox`): a few agents publish through the real
  `NodeAnnotationPublisher` to the sandbox API server (its own process) for a simulated hour,
  while the controller's `Watcher` watches the nodes: it checks that one publish is one API write
  and counts how many of them wake the controller (each wake-up is a reconcile 2 s later). Its
  nodes are those of the real programme's pools as one cluster (tests/realpolicy.py): one API.

Nothing here is a pass/fail test: it prints figures.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import ROOT  # noqa: E402

from tests.keys import KEYS  # noqa: E402
from scheduler.policy.types import parse_duration  # noqa: E402
from scheduler.telemetry.agent import Agent, AgentConfig  # noqa: E402
from scheduler.telemetry.fake_nvml import FakeNvml  # noqa: E402
from scheduler.telemetry.nvml import NvmlReader  # noqa: E402

FIXTURE = ROOT / "tests" / "telemetry" / "fixtures" / "dgx-h200.json"
T0 = datetime(2026, 1, 15, tzinfo=timezone.utc)
FLAP_XID = 48       # double-bit ECC error: critical
FLAP_GPU = 3


@dataclass
class Published:
    times: list[float] = field(default_factory=list)   # simulated seconds
    sizes: list[int] = field(default_factory=list)     # bytes of the annotation
    healthy: list[int] = field(default_factory=list)   # healthy GPUs in the report


class CountingPublisher:
    """Stands in for NodeAnnotationPublisher: one publish = one merge patch = one API write."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.by_node: dict[str, Published] = {}

    def publish(self, node: str, annotation: str) -> None:
        p = self.by_node.setdefault(node, Published())
        p.times.append(self.clock[0])
        p.sizes.append(len(annotation))
        p.healthy.append(json.loads(annotation)["healthy_gpus"])


def spec_with_flaps(base: dict, every_s: float | None, hours: float) -> dict:
    spec = json.loads(json.dumps(base))
    if every_s:
        spec["events"] = [{"after_s": k * every_s, "gpu": FLAP_GPU, "xid": FLAP_XID}
                          for k in range(1, int(hours * 3600 // every_s) + 1)]
    return spec


def make_agents(names: list[str], spec: dict, publisher, clock: list[float], interval: timedelta,
                seed: int) -> list[Agent]:
    agents = []
    for i, name in enumerate(names):
        nvml = FakeNvml(spec, clock=lambda: clock[0], source=str(FIXTURE))
        agents.append(Agent(NvmlReader(nvml), publisher, AgentConfig(name, interval=interval),
                            now=lambda: T0 + timedelta(seconds=clock[0]), rng=random.Random(seed + i)))
    return agents


def simulate(agents: list[Agent], clock: list[float], interval_s: float, hours: float) -> tuple[int, float]:
    """Tick every agent every `interval_s` simulated seconds; returns (ticks, CPU seconds)."""
    steps = int(hours * 3600 // interval_s) + 1
    c0 = time.process_time()
    for step in range(steps):
        clock[0] = step * interval_s
        for a in agents:
            a.tick()
    return steps * len(agents), time.process_time() - c0


def steady_rate(p: Published, hours: float) -> float:
    """Writes per hour after the agent's first publish (which every agent makes at start)."""
    return (len(p.times) - 1) / hours


def patch_bytes(annotation_len: int) -> int:
    return len(json.dumps({"metadata": {"annotations": {KEYS.telemetry: "x" * annotation_len}}}))


# --------------------------------------------------------------------------- scenarios

def healthy(args, base: dict, interval: timedelta) -> dict:
    clock = [0.0]
    pub = CountingPublisher(clock)
    names = [f"node-{i:05d}" for i in range(args.nodes)]
    agents = make_agents(names, base, pub, clock, interval, args.seed)
    ticks, cpu = simulate(agents, clock, interval.total_seconds(), args.hours)
    rates = [steady_rate(pub.by_node[n], args.hours) for n in names]
    gaps = [b - a for n in names for a, b in zip(pub.by_node[n].times, pub.by_node[n].times[1:])]
    sizes = [s for n in names for s in pub.by_node[n].sizes]
    return {"rates": rates, "gaps": gaps, "size": statistics.mean(sizes), "ticks": ticks, "cpu": cpu}


def flapping(args, base: dict, interval: timedelta, every: str) -> dict:
    every_s = parse_duration(every).total_seconds()
    clock = [0.0]
    pub = CountingPublisher(clock)
    agents = make_agents(["flappy"], spec_with_flaps(base, every_s, args.hours), pub, clock, interval, args.seed)
    simulate(agents, clock, interval.total_seconds(), args.hours)
    p = pub.by_node["flappy"]
    changes = sum(1 for a, b in zip(p.healthy, p.healthy[1:]) if a != b)
    unhealthy_s = sum(t1 - t0 for (t0, h), t1 in zip(zip(p.times, p.healthy), p.times[1:] + [args.hours * 3600])
                      if h < 8)
    return {"rate": steady_rate(p, args.hours), "changes": changes, "xids": int(args.hours * 3600 // every_s),
            "unhealthy": unhealthy_s / (args.hours * 3600)}


def against_sandbox(args, base: dict, interval: timedelta) -> dict:
    """A few agents publish over HTTP to the sandbox for one simulated hour while the
    controller's Watcher watches: API writes per publish, watch wake-ups per publish."""
    from scheduler.actuator.watch import Watcher
    from scheduler.actuator.connect import connect
    from scheduler.telemetry.agent import NodeAnnotationPublisher
    from tests.realpolicy import one_cluster_policy

    k = min(args.nodes, 5)
    policy = one_cluster_policy()  # the real programme as one cluster (tests/realpolicy.py): one sandbox API
    pp = benchlib.pairs(policy)
    nodes = [benchlib.node_json(i, pp) for i in range(k)]
    names = [n["metadata"]["name"] for n in nodes]
    sandbox = benchlib.SandboxProcess(seed=2)
    tmp = Path(tempfile.mkdtemp(prefix="gpu-scheduler-bench-agent-"))
    try:
        sandbox.call("load_list", {"apiVersion": "v1", "kind": "List", "items": nodes})
        api = connect(sandbox.call("kubeconfig", str(tmp / "kubeconfig")))
        wakes = [0]
        watcher = Watcher(api, KEYS, on_change=lambda: wakes.__setitem__(0, wakes[0] + 1)).start()
        woken_at_start = wakes[0]
        clock = [0.0]
        real = NodeAnnotationPublisher(api, KEYS.telemetry)
        published = [0]

        class Both:
            def publish(self, node: str, annotation: str) -> None:
                published[0] += 1
                real.publish(node, annotation)
        w0 = sandbox.writes()
        agents = make_agents(names, base, Both(), clock, interval, args.seed)
        steps = int(3600 // interval.total_seconds()) + 1
        for step in range(steps):
            clock[0] = step * interval.total_seconds()
            for a in agents:
                a.tick()
        # let the watch deliver what is in flight
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 1.5:
            if wakes[0] != last:
                last, quiet_since = wakes[0], time.monotonic()
            time.sleep(0.1)
        watcher.stop()
        writes = sandbox.writes() - w0
        api.close()
    finally:
        sandbox.stop()
    return {"nodes": k, "published": published[0], "writes": sum(writes.values()), "kinds": dict(writes),
            "wakes": wakes[0] - woken_at_start}


# --------------------------------------------------------------------------- report

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=10, help="agents in the healthy sample (default 10)")
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    ap.add_argument("--fleet", type=int, default=10_000, help="nodes to extrapolate to (default 10000)")
    ap.add_argument("--interval", default="10s", help="NVML read interval, as the agent's --interval (default 10s)")
    ap.add_argument("--flap-every", default="5m,11m,30m,2h",
                    help="periods of the flapping GPU's XIDs, comma separated (default 5m,11m,30m,2h)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-sandbox", action="store_true", help="skip the check against the sandbox API")
    benchlib.add_profile_argument(ap)
    ap.add_argument("--profile", action="store_true", help="cProfile one agent's ticks (top entries printed)")
    ap.add_argument("--top", type=int, default=25, help="profile entries to print (default 25)")
    args = ap.parse_args(argv)
    benchlib.use_profile(args.nodes_profile)  # the nodes loaded into the sandbox
    interval = parse_duration(args.interval)
    base = json.loads(FIXTURE.read_text())
    started = time.monotonic()

    benchlib.header("bench_agent: API writes of the node agent (simulated time, fake NVML)")
    cfg = AgentConfig("x", interval=interval)
    print(f"agent: read every {interval.total_seconds():g} s, heartbeat {cfg.heartbeat.total_seconds():g} s "
          f"+-{cfg.jitter:.0%}, quiet period {cfg.rules.quiet_period}, flap window {cfg.rules.flap_window}, "
          f"max quiet {cfg.rules.max_quiet}; NVML: {FIXTURE.relative_to(ROOT)} ({len(base['gpus'])} GPUs)", flush=True)

    h = healthy(args, base, interval)
    rate = statistics.mean(h["rates"])
    fleet_rate = rate * args.fleet / 3600
    size = h["size"]
    print(f"\nhealthy: {args.nodes} agents x {args.hours:g} h, {h['ticks']:,} ticks in {h['cpu']:.1f} s CPU "
          f"({1e6 * h['cpu'] / h['ticks']:.0f} us a tick: {h['cpu'] / h['ticks'] * 3600 / interval.total_seconds():.2f} s "
          f"CPU per node-hour)")
    print(f"  writes per node per hour at steady state: mean {rate:.2f} (min {min(h['rates']):.2f}, max "
          f"{max(h['rates']):.2f}); interval between writes: mean {statistics.mean(h['gaps']):.0f} s, "
          f"min {min(h['gaps']):.0f} s, max {max(h['gaps']):.0f} s")
    print(f"  annotation {size:.0f} bytes, merge patch {patch_bytes(int(size))} bytes")
    print(f"  {args.fleet:,} nodes: {fleet_rate:.1f} writes/s ({rate * args.fleet:,.0f} an hour), "
          f"{fleet_rate * patch_bytes(int(size)) / 1024:.0f} KiB/s of patches; plus one write per node "
          f"on every agent start (a fleet-wide restart: {args.fleet:,} writes within one {interval.total_seconds():g} s "
          f"interval, spreading by +-{cfg.jitter:.0%} of the heartbeat after that)", flush=True)

    print(f"\none GPU flapping (XID {FLAP_XID} on GPU {FLAP_GPU} every P), one agent x {args.hours:g} h:")
    for every in [e.strip() for e in args.flap_every.split(",") if e.strip()]:
        fl = flapping(args, base, interval, every)
        fleet = (rate * (args.fleet - 1) + fl["rate"]) / 3600
        print(f"  P={every:>4}: {fl['rate']:.2f} writes/h ({fl['changes']} health change(s) for {fl['xids']} XIDs; "
              f"unhealthy {fl['unhealthy']:.0%} of the time); {args.fleet:,} nodes with one such node: "
              f"{fleet:.3f} writes/s (+{fleet - fleet_rate:.5f}); if 1% of nodes flapped so: "
              f"{(rate * args.fleet * 0.99 + fl['rate'] * args.fleet * 0.01) / 3600:.1f} writes/s", flush=True)

    if not args.no_sandbox:
        s = against_sandbox(args, base, interval)
        heartbeats = s["published"] - s["nodes"]  # each agent's first publish brings news: its GPUs
        steady = max(s["wakes"] - s["nodes"], 0)
        per = steady / max(heartbeats, 1)
        print(f"\nagainst the sandbox API: {s['nodes']} agents x 1 simulated hour: {s['published']} publishes -> "
              f"{s['writes']} API writes ({', '.join(f'{verb} {res} {v}' for (verb, res), v in s['kinds'].items())}); the controller's "
              f"Watcher woke {s['wakes']} times: {s['nodes']} for the agents' first reports, "
              f"{steady} for {heartbeats} heartbeats ({per:.2f} per heartbeat)")
        print(f"  -> at {args.fleet:,} healthy nodes, heartbeats wake the daemon's watch ~{fleet_rate * per:.1f} times a second")

    if args.profile:
        clock = [0.0]
        pub = CountingPublisher(clock)
        agents = make_agents(["profiled"], base, pub, clock, interval, args.seed)
        prof = cProfile.Profile()
        prof.enable()
        simulate(agents, clock, interval.total_seconds(), min(args.hours, 6.0))
        prof.disable()
        benchlib.print_top(prof, args.top, f"one healthy agent, {min(args.hours, 6.0):g} h of ticks")
        benchlib.print_top(prof, 12, "one healthy agent", sort="tottime")
    print(f"\nload average at the end: {benchlib.load_average()}; bench_agent took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
