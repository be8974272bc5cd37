"""The load benchmark: the fake vendor directly, the gateway, and LiteLLM, side by side.

    make bench                               # everything (about 4-5 minutes)
    make bench BENCH_ARGS="--quick"          # 2 s per run, small bursts: a smoke test
    python -m bench.run --scenarios 1,4 --duration 10 --no-peer

What it does (docs/performance.md has the why):
  1. PostgreSQL database `gateway_bench` (made if missing), migrated; a user with a large real
     quota, an API key, models `bench-instant` and `bench-slow` whose base_url is the fake vendor.
  2. Starts the fake vendor (bench.fake_vendor), the gateway exactly as `make serve` runs it
     (gunicorn + uvicorn workers, DEBUG off, access log on, PostgreSQL, Redis db 14), and the
     LiteLLM proxy from .peer-venv (`make bench-peer`) with as many workers.
  3. Runs each scenario against each target with bench.loadgen in its own process, sampling the
     servers' memory (/proc) and CPU, and the database's counters.
  4. Prints one table and writes bench/results/bench-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import raise_open_files_limit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
PEER_VENV = ROOT / ".peer-venv"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

PROMPT = [
    {"role": "system", "content": "You are a concise assistant. Answer in one short paragraph."},
    {"role": "user", "content": "Explain in two sentences why a gateway in front of LLM vendors keeps quotas."},
]
DIALOG_TEXT = "Explain in two sentences why a gateway in front of LLM vendors keeps quotas."


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s: {last}")


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict, log: Path) -> None:
        self.name, self.log = name, log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None and self.name == "gateway-profiled":
            self.proc.send_signal(signal.SIGINT)  # py-spy: write the profile, then the group goes
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None or self.name == "gateway-profiled":
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only its processes
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLK_TCK


class Sampler:
    """Peak RSS (sum over a process tree) and CPU seconds of each server while a run lasts."""

    def __init__(self, servers: dict[str, Server], interval: float = 0.1) -> None:
        self.servers, self.interval = servers, interval
        self.peak = dict.fromkeys(servers, 0)
        self._stop = threading.Event()
        self._pids = {name: s.pids() for name, s in servers.items()}
        self.cpu_start = {name: cpu_seconds(p) for name, p in self._pids.items()}
        self.cpu: dict[str, float] = {}
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.started = time.monotonic()
        self.wall = 0.0

    def _loop(self) -> None:
        tick = 0
        while not self._stop.is_set():
            if tick % 10 == 0:  # workers can be replaced: re-read the trees now and then
                self._pids = {name: s.pids() for name, s in self.servers.items()}
            for name, pids in self._pids.items():
                self.peak[name] = max(self.peak[name], rss_bytes(pids))
            tick += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.wall = time.monotonic() - self.started
        self.cpu = {name: cpu_seconds(self.servers[name].pids()) - self.cpu_start[name] for name in self.servers}


# --- database ---------------------------------------------------------------------------------


class Database:
    def __init__(self, url: str) -> None:
        import psycopg

        self.psycopg = psycopg
        self.url = url
        self.name = url.rsplit("/", 1)[1].split("?")[0]
        admin_url = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.name]).fetchone():
                conn.execute(f'CREATE DATABASE "{self.name}"')

    def counters(self) -> dict:
        """Transactions and row counts of this database (pg_stat_database: flushed within ~1 s)."""
        with self.psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit + xact_rollback, tup_fetched, tup_inserted, tup_updated, tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        return dict(zip(["xacts", "fetched", "inserted", "updated", "deleted"], row, strict=True))


def read_query_counts(directory: Path) -> int:
    total = 0
    for path in directory.glob("queries-*"):
        data = path.read_bytes()
        if len(data) >= 8:
            total += int.from_bytes(data[:8], "little")
    return total


# --- scenarios --------------------------------------------------------------------------------


@dataclass
class Scenario:
    key: str  # "1-c1", "2-c32", ...
    title: str
    endpoint: str  # "chat" or "dialog"
    stream: bool
    concurrency: int
    mode: str = "closed"
    slow: bool = False
    targets: tuple[str, ...] = ("direct", "gateway", "litellm")


def scenarios(args) -> list[Scenario]:
    c = args.concurrency
    out = [
        Scenario("1-c1", "chat, JSON, c=1", "chat", False, 1),
        Scenario(f"1-c{c}", f"chat, JSON, c={c}", "chat", False, c),
        Scenario("2-c1", "chat, SSE, c=1", "chat", True, 1),
        Scenario(f"2-c{c}", f"chat, SSE, c={c}", "chat", True, c),
        Scenario("3-json", f"dialog msg, JSON, c={c}", "dialog", False, c, targets=("direct", "gateway")),
        Scenario("3-sse", f"dialog msg, SSE, c={c}", "dialog", True, c, targets=("direct", "gateway")),
        Scenario("4-burst", f"slow SSE, {args.streams} at once", "chat", True, args.streams, mode="burst", slow=True),
    ]
    wanted = set(args.scenarios.split(","))  # "1,4" or exact keys such as "1-c1,3-sse"
    return [s for s in out if s.key in wanted or s.key.split("-")[0] in wanted]


@dataclass
class Run:
    scenario: Scenario
    target: str
    load: dict
    peak_rss_mib: float | None = None
    server_cpu_s: float | None = None
    vendor_cpu_s: float | None = None
    queries_per_request: float | None = None
    wall_s: float = 0.0  # the whole load run (warm-up included): what the CPU columns divide by
    db: dict = field(default_factory=dict)


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.servers: dict[str, Server] = {}
        self.ports: dict[str, int] = {}
        self.dialogs: list[int] = []
        self.key = ""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.logdir = RESULTS / f"logs-{stamp}"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.json_path = RESULTS / f"bench-{stamp}.json"
        self.qdir = Path(tempfile.mkdtemp(prefix="bench-queries-"))
        self.db = Database(args.database_url)
        self.peer = PEER_VENV / "bin" / "litellm"
        self.use_peer = not args.no_peer and self.peer.exists()

    # setup

    def gateway_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="gateway.settings",
            SECRET_KEY="bench-only-secret-key-0123456789abcdef-0123456789",
            DEBUG="0",
            DATABASE_URL=self.args.database_url,
            REDIS_URL=self.args.redis_url,
            CACHE_KEY_PREFIX="gwbench",
            BENCH_API_KEY="sk-bench-fake",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            BENCH_QUERY_COUNT_DIR=str(self.qdir),
        )
        return env

    def start(self) -> None:
        raise_open_files_limit(65536)
        env = self.gateway_env()
        vport = self.ports["vendor"] = free_port()
        vendor_cmd = [
            PYTHON,
            "-m",
            "bench.fake_vendor",
            "--port",
            str(vport),
            "--reply-tokens",
            str(self.args.reply_tokens),
            "--profile",
            f"slow=0:{self.args.slow_tps}:{self.args.slow_tokens}",
        ]
        self.servers["vendor"] = Server("vendor", vendor_cmd, env, self.logdir / "vendor.log")

        print(f"database {self.args.database_url}: migrating ...", flush=True)
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
        wait_http(f"http://127.0.0.1:{vport}/v1/models", 10, self.servers["vendor"].proc)
        dialog_runs = sum(1 for s in scenarios(self.args) if s.endpoint == "dialog")
        out = subprocess.run(
            [
                PYTHON,
                "-m",
                "bench.setup_data",
                "--vendor-url",
                f"http://127.0.0.1:{vport}",
                "--dialogs",
                str(self.args.dialogs_per_run * dialog_runs),
            ],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        self.key, self.dialogs = data["key"], data["dialogs"]

        gport = self.ports["gateway"] = free_port()
        gateway_cmd = [
            str(ROOT / ".venv" / "bin" / "gunicorn") if (ROOT / ".venv").exists() else "gunicorn",
            "gateway.asgi:application",
            "-k",
            "gateway.server.Worker",
            "-w",
            str(self.args.workers),
            "-b",
            f"127.0.0.1:{gport}",
            "--graceful-timeout",
            "30",
            "-c",
            str(ROOT / "bench" / "gunicorn_conf.py"),
        ]
        if not self.args.no_access_log:
            gateway_cmd += ["--access-logfile", "-"]  # as `make serve` runs it
        if self.args.py_spy:
            # py-spy starts the gateway and samples every worker (--subprocesses), only the thread
            # holding the GIL (--gil: where Python CPU goes, not threads waiting); it writes the
            # collapsed stacks when stopped with SIGINT (Server.stop). Summarise: bench.profile_report.
            py_spy = shutil.which("py-spy") or "/tmp/pyspy-venv/bin/py-spy"
            gateway_cmd = [
                py_spy,
                "record",
                "--subprocesses",
                "--nonblocking",
                "--gil",
                "--full-filenames",
                "--rate",
                "100",
                "--format",
                "raw",
                "-o",
                str(Path(self.args.py_spy).resolve()),
                "--",
                *gateway_cmd,
            ]
        self.servers["gateway"] = Server(
            "gateway-profiled" if self.args.py_spy else "gateway", gateway_cmd, env, self.logdir / "gateway.log"
        )
        wait_http(f"http://127.0.0.1:{gport}/healthz", 60, self.servers["gateway"].proc)

        if self.use_peer:
            self.start_peer(vport)

    def start_peer(self, vport: int) -> None:
        lport = self.ports["litellm"] = free_port()
        config = self.logdir / "litellm.yaml"
        models = [
            ("bench-instant", f"http://127.0.0.1:{vport}/v1"),
            ("bench-slow", f"http://127.0.0.1:{vport}/slow/v1"),
        ]
        lines = ["model_list:"]
        for name, base in models:
            lines += [
                f"  - model_name: {name}",
                "    litellm_params:",
                "      model: openai/gpt-4o-mini",
                f"      api_base: {base}",
                "      api_key: sk-bench-fake",
            ]
        lines += [
            "litellm_settings:",
            "  drop_params: true",
            "  telemetry: false",
            "general_settings:",
            "  master_key: sk-litellm-bench",
        ]
        config.write_text("\n".join(lines) + "\n")
        # Its own environment: none of the gateway's DATABASE_URL / REDIS_URL (LiteLLM would use them).
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
        }
        cmd = [
            str(self.peer),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(lport),
            "--num_workers",
            str(self.args.workers),
        ]
        self.servers["litellm"] = Server("litellm", cmd, env, self.logdir / "litellm.log")
        try:
            wait_http(f"http://127.0.0.1:{lport}/health/liveliness", 180, self.servers["litellm"].proc)
        except RuntimeError as exc:
            print(f"LiteLLM did not start ({exc}); see {self.logdir / 'litellm.log'}. Going on without it.")
            self.servers.pop("litellm").stop()
            self.use_peer = False

    def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.stop()
        shutil.rmtree(self.qdir, ignore_errors=True)

    # running

    def load_args(self, scenario: Scenario, target: str, dialog_pool: list[int]) -> list[str]:
        model = "bench-slow" if scenario.slow else "bench-instant"
        args: list[str] = []
        if target == "direct":
            prefix = "/slow" if scenario.slow else ""
            url = f"http://127.0.0.1:{self.ports['vendor']}{prefix}/v1/chat/completions"
            args += ["--header", "Authorization: Bearer sk-bench-fake"]
            model = "gpt-4o-mini"
        elif target == "litellm":
            url = f"http://127.0.0.1:{self.ports['litellm']}/v1/chat/completions"
            args += ["--header", "Authorization: Bearer sk-litellm-bench"]
        else:
            url = f"http://127.0.0.1:{self.ports['gateway']}/v1/chat/completions"
            args += ["--header", f"Authorization: Bearer {self.key}"]
        if scenario.endpoint == "dialog" and target == "gateway":
            url = f"http://127.0.0.1:{self.ports['gateway']}/api/dialogs/0/messages/"
            for pk in dialog_pool:
                args += ["--path", f"/api/dialogs/{pk}/messages/"]
            args += ["--body", json.dumps({"content": DIALOG_TEXT, "stream": scenario.stream})]
        else:
            body: dict = {"model": model, "messages": PROMPT}
            if scenario.stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            args += ["--body", json.dumps(body)]
        args += [
            "--url",
            url,
            "-c",
            str(scenario.concurrency),
            "--mode",
            scenario.mode,
            "-d",
            str(self.args.duration),
            "-w",
            str(self.args.warmup),
            "--timeout",
            str(self.args.timeout),
        ]
        if scenario.stream:
            args.append("--stream")
        return args

    def run_one(self, scenario: Scenario, target: str, dialog_pool: list[int]) -> Run:
        watched = {name: self.servers[name] for name in ("vendor", target) if name in self.servers and name != "direct"}
        if target == "direct":
            watched = {"vendor": self.servers["vendor"]}
        q0 = read_query_counts(self.qdir)
        db0 = self.db.counters() if target == "gateway" else None
        with Sampler(watched) as sampler:
            proc = subprocess.run(
                [PYTHON, "-m", "bench.loadgen", *self.load_args(scenario, target, dialog_pool)],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"loadgen failed for {scenario.key}/{target}:\n{proc.stderr[-3000:]}")
        load = json.loads(proc.stdout.strip().splitlines()[-1])
        server = "vendor" if target == "direct" else target
        run = Run(
            scenario,
            target,
            load,
            peak_rss_mib=round(sampler.peak[server] / 2**20, 1),
            server_cpu_s=round(sampler.cpu[server], 2),
            vendor_cpu_s=round(sampler.cpu["vendor"], 2) if target != "direct" else None,
            wall_s=round(sampler.wall, 2),
        )
        if target == "gateway":
            time.sleep(1.2)  # PostgreSQL flushes a backend's statistics at most once a second
            db1 = self.db.counters()
            finished = max(load["finished_all"], 1)
            run.queries_per_request = round((read_query_counts(self.qdir) - q0) / finished, 2)
            run.db = {k: round((db1[k] - db0[k]) / finished, 2) for k in db1}
        return run

    def run_all(self) -> list[Run]:
        runs = []
        pools = [
            self.dialogs[i : i + self.args.dialogs_per_run]
            for i in range(0, len(self.dialogs), self.args.dialogs_per_run)
        ]
        for scenario in scenarios(self.args):
            pool = pools.pop(0) if scenario.endpoint == "dialog" and pools else []
            for target in scenario.targets:
                if (target == "litellm" and not self.use_peer) or target not in self.args.targets.split(","):
                    continue
                print(f"  {scenario.key:8} {scenario.title:28} -> {target} ...", end="", flush=True)
                run = self.run_one(scenario, target, pool)
                load = run.load
                print(
                    f" {load['rps']:.0f} req/s, p50 {fmt(load['latency_ms']['p50'])} ms, {load['errors']} errors",
                    flush=True,
                )
                runs.append(run)
                time.sleep(self.args.pause)
        return runs


# --- output -----------------------------------------------------------------------------------


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(runs: list[Run]) -> str:
    direct = {r.scenario.key: r for r in runs if r.target == "direct"}
    headers = [
        "scenario",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "+p50",
        "+p99",
        "TTFT p50",
        "TTFT p99",
        "errors",
        "RSS MiB",
        "q/req",
        "xact/req",
        "srv CPU",
        "vnd CPU",
        "cli CPU",
    ]
    rows = []
    for r in runs:
        lat, ttft = r.load["latency_ms"], r.load["first_token_ms"]
        base = direct.get(r.scenario.key)
        plus50 = plus99 = None
        if base is not None and r.target != "direct" and lat["p50"] is not None and base.load["latency_ms"]["p50"]:
            plus50 = lat["p50"] - base.load["latency_ms"]["p50"]
            plus99 = lat["p99"] - base.load["latency_ms"]["p99"]
        window = r.wall_s
        rows.append(
            [
                r.scenario.title,
                r.target,
                fmt(r.load["rps"]),
                fmt(lat["p50"]),
                fmt(lat["p99"]),
                fmt(plus50),
                fmt(plus99),
                fmt(ttft["p50"]) if r.scenario.stream else "",
                fmt(ttft["p99"]) if r.scenario.stream else "",
                str(r.load["errors"]),
                fmt(r.peak_rss_mib),
                fmt(r.queries_per_request),
                fmt(r.db.get("xacts")) if r.db else "-",
                pct(r.server_cpu_s, window),
                pct(r.vendor_cpu_s, window),
                pct(r.load["client_cpu_s"], window),
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    out = [line, "-" * len(line)]
    for row in rows:
        out.append(
            "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
    return "\n".join(out)


def pct(cpu_s: float | None, window: float) -> str:
    """CPU used over the run as % of one core (200% = both cores of this machine)."""
    if cpu_s is None or not window:
        return "-"
    return f"{100 * cpu_s / window:.0f}%"


def machine() -> dict:
    try:
        load = os.getloadavg()
    except OSError:
        load = (0, 0, 0)
    return {
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load],
        "python": sys.version.split()[0],
        "host": socket.gethostname(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Gateway load benchmark (see docs/performance.md).")
    parser.add_argument("--scenarios", default="1,2,3,4", help="comma-separated: 1,2,3,4")
    parser.add_argument(
        "--targets",
        default="direct,gateway,litellm",
        help="comma-separated: direct (the fake vendor), gateway, litellm",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--streams", type=int, default=1000, help="scenario 4: simultaneous streams")
    parser.add_argument("--reply-tokens", type=int, default=32, help="instant vendor: tokens per reply")
    parser.add_argument("--slow-tps", type=float, default=50.0, help="scenario 4: vendor tokens per second")
    parser.add_argument("--slow-tokens", type=int, default=100, help="scenario 4: tokens per reply (100 = 2 s)")
    parser.add_argument("--workers", type=int, default=2, help="gateway and LiteLLM worker processes")
    parser.add_argument(
        "--dialogs-per-run", type=int, default=1000, help="fresh dialogs per scenario-3 run (requests rotate over them)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    parser.add_argument("--no-peer", action="store_true", help="skip LiteLLM even if .peer-venv has it")
    parser.add_argument("--no-access-log", action="store_true", help="gateway without its access log")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 2 s runs, 0.5 s warm-up, c=4, 50-stream burst of 1 s replies"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gateway_bench"),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        help="'' = no Redis (the gateway's in-process cache; not how production runs)",
    )
    parser.add_argument("--json", help="write the results here (default bench/results/bench-<time>.json)")
    parser.add_argument(
        "--py-spy",
        metavar="OUT",
        help="run the gateway under py-spy, collapsed stacks to OUT "
        "(py-spy on PATH or in /tmp/pyspy-venv); then: python -m bench.profile_report OUT",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs even when all went well")
    quick = argparse.ArgumentParser(add_help=False)
    quick.add_argument("--quick", action="store_true")
    if quick.parse_known_args(argv)[0].quick:  # new defaults; flags given explicitly still win
        parser.set_defaults(
            duration=2.0, warmup=0.5, concurrency=4, pause=0.2, streams=50, slow_tokens=50, dialogs_per_run=200
        )
    args = parser.parse_args(argv)
    if "gateway_bench" not in args.database_url and not os.environ.get("BENCH_ALLOW_ANY_DATABASE"):
        parser.error("the benchmark writes to its database: name it gateway_bench (or set BENCH_ALLOW_ANY_DATABASE)")

    bench = Bench(args)
    print(f"bench: 2 targets{' + LiteLLM' if bench.use_peer else ''}, logs in {bench.logdir}", flush=True)
    info = machine()
    try:
        bench.start()
        runs = bench.run_all()
    finally:
        bench.stop()
    print()
    print(table(runs))
    print(
        "\n+p50/+p99: latency added over the vendor called directly. TTFT: time to the first token. "
        "q/req: SQL statements the gateway sent per request; xact/req: PostgreSQL transactions per "
        f"request. CPU: % of one core over the run (this machine has {os.cpu_count()})."
    )
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": info,
        "args": vars(args),
        "runs": [
            {
                "scenario": r.scenario.key,
                "title": r.scenario.title,
                "target": r.target,
                **r.load,
                "peak_rss_mib": r.peak_rss_mib,
                "server_cpu_s": r.server_cpu_s,
                "vendor_cpu_s": r.vendor_cpu_s,
                "queries_per_request": r.queries_per_request,
                "wall_s": r.wall_s,
                "db_per_request": r.db,
            }
            for r in runs
        ],
    }
    path = Path(args.json) if args.json else bench.json_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"results: {path}")
    failed = sum(r.load["errors"] for r in runs)
    if not failed and not args.keep_logs:
        shutil.rmtree(bench.logdir, ignore_errors=True)
    return 1 if failed and args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
