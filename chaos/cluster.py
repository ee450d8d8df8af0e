"""The local cluster, driven through deploy/local's scripts: start, stop, and the node
processes the faults act on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from chaos.ports import free_block

SCRIPTS = Path(__file__).resolve().parent.parent / "deploy" / "local"
NODES = (1, 2, 3)


def missing_prerequisite() -> str | None:
    """Why the cluster cannot run here, in one line, or None."""
    if os.geteuid() != 0:
        return "needs root (nodes run as their own user ids; partitions use iptables)"
    for tool in ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/sbin/iptables"):
        if not Path(tool).exists():
            return f"{tool} is not installed"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_basebackup")):
        return "PostgreSQL server binaries are not installed"
    return None


def _run(*args: str, timeout: float = 180) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {done.stderr.strip()[-600:]}")
    return done.stdout


@dataclass
class RabbitCluster:
    directory: Path
    base: int

    @classmethod
    def start(cls) -> RabbitCluster:
        directory = Path(tempfile.mkdtemp(prefix="exchange-tokens-rabbit-"))
        directory.chmod(0o755)  # the nodes run as other user ids
        cluster = cls(directory, free_block(30))
        try:
            _run(str(SCRIPTS / "rabbitmq-cluster.sh"), "start", str(directory), str(cluster.base),
                 timeout=300)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def stop(self) -> None:
        _run(str(SCRIPTS / "rabbitmq-cluster.sh"), "stop", str(self.directory))

    def amqp_port(self, node: int) -> int:
        return self.base + node

    def dist_port(self, node: int) -> int:
        return self.base + 10 + node

    def uid(self, node: int) -> int:
        return self.base + node

    def url(self, node: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port(node)}/%2F"

    @property
    def amqp_url(self) -> str:
        """Every node, as the service takes them (``;``-separated)."""
        return ";".join(self.url(n) for n in NODES)

    def node_name(self, node: int) -> str:
        return f"c{node}-{self.base}@localhost"

    def pid(self, node: int) -> int | None:
        try:
            return int((self.directory / f"node{node}" / "beam.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def ctl(self, node: int, *args: str, timeout: float = 120) -> str:
        return _run(str(SCRIPTS / "rabbitmq-cluster.sh"), "ctl", str(self.directory),
                    str(node), *args, timeout=timeout)

    def kill(self, node: int) -> None:
        pid = self.pid(node)
        if pid:
            os.kill(pid, signal.SIGKILL)
            # erl_child_setup and friends die with it; wait until the port is closed.
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)

    def start_node(self, node: int) -> None:
        _run(str(SCRIPTS / "rabbitmq-cluster.sh"), "start-node", str(self.directory), str(node),
             timeout=300)

    def pause(self, node: int) -> None:
        pid = self.pid(node)
        if pid:
            os.kill(pid, signal.SIGSTOP)

    def resume(self, node: int) -> None:
        pid = self.pid(node)
        if pid:
            os.kill(pid, signal.SIGCONT)

    def leaders(self, queue_prefix: str, asked: int = 1) -> dict[int, int]:
        """How many quorum queues of ``queue_prefix`` each node leads."""
        out = self.ctl(asked, "list_queues", "--quiet", "--no-table-headers", "name", "leader",
                       timeout=60)
        counts = {n: 0 for n in NODES}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith(queue_prefix):
                match = re.match(r"c(\d)-", parts[1])
                if match:
                    counts[int(match.group(1))] += 1
        return counts

    def running_nodes(self, asked: int) -> int:
        out = self.ctl(asked, "eval", "length(rabbit_nodes:all_running()).", timeout=30)
        return int(out.strip() or 0)


@dataclass
class PostgresPair:
    directory: Path
    base: int

    @classmethod
    def start(cls) -> PostgresPair:
        directory = Path(tempfile.mkdtemp(prefix="exchange-tokens-pg-"))
        pair = cls(directory, free_block(2))
        try:
            _run(str(SCRIPTS / "postgres-replicated.sh"), "start", str(directory), str(pair.base))
        except BaseException:
            pair.stop()
            raise
        return pair

    def stop(self) -> None:
        _run(str(SCRIPTS / "postgres-replicated.sh"), "stop", str(self.directory))

    @property
    def primary_port(self) -> int:
        return self.base

    @property
    def standby_port(self) -> int:
        return self.base + 1

    def url(self, database: str) -> str:
        """Both servers, as libpq takes them: the one that takes writes wins."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary_port},"
                f"127.0.0.1:{self.standby_port}/{database}?target_session_attrs=read-write")

    def primary_pid(self) -> int | None:
        try:
            return int((self.directory / "primary" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill_primary(self) -> None:
        """kill -9 of the primary and of every backend: the host died, nothing flushed."""
        pid = self.primary_pid()
        if not pid:
            return
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)  # noqa: S603, S607
        os.kill(pid, signal.SIGKILL)
        for child in children.stdout.split():
            try:
                os.kill(int(child), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def promote(self) -> None:
        _run(str(SCRIPTS / "postgres-replicated.sh"), "promote", str(self.directory))
