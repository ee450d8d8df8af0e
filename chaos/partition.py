"""Cutting one broker node off from the other two, on loopback, with iptables.

Every node runs as its own user id (deploy/local/rabbitmq-cluster.sh). A partition of
node N drops, in one chain of our own:

* INPUT: packets to N's distribution port, and from it (the connections N accepted);
* OUTPUT: packets N's user id sends to the other nodes' distribution ports (the
  connections N opened; the owner match works on OUTPUT only).

Clients still reach every node's AMQP port: on the minority side the node pauses itself
(``pause_minority``) and drops them, as it would in production. :meth:`heal` removes the
chain and its jumps; :func:`remove_leftovers` does so for a run that died mid-partition.
"""

from __future__ import annotations

import subprocess

from chaos.cluster import NODES, RabbitCluster


def _iptables(*args: str, check: bool = True) -> bool:
    done = subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True)  # noqa: S603, S607
    if check and done.returncode != 0:
        raise RuntimeError(f"iptables {' '.join(args)}: {done.stderr.strip()}")
    return done.returncode == 0


class Partition:
    def __init__(self, cluster: RabbitCluster, node: int) -> None:
        self.cluster, self.node = cluster, node
        self.prefix = chain_prefix(cluster)

    def cut(self) -> None:
        c, n = self.cluster, self.node
        inbound, outbound = f"{self.prefix}-IN", f"{self.prefix}-OUT"
        try:
            _iptables("-N", inbound)
            _iptables("-N", outbound)
            dist = str(c.dist_port(n))
            _iptables("-A", inbound, "-i", "lo", "-p", "tcp", "--dport", dist, "-j", "DROP")
            _iptables("-A", inbound, "-i", "lo", "-p", "tcp", "--sport", dist, "-j", "DROP")
            for peer in NODES:
                if peer != n:
                    _iptables("-A", outbound, "-o", "lo", "-p", "tcp", "-m", "owner",
                              "--uid-owner", str(c.uid(n)), "--dport", str(c.dist_port(peer)),
                              "-j", "DROP")
            _iptables("-I", "INPUT", "1", "-j", inbound)
            _iptables("-I", "OUTPUT", "1", "-j", outbound)
        except BaseException:
            self.heal()
            raise

    def heal(self) -> None:
        remove_chains(self.prefix)


def chain_prefix(cluster: RabbitCluster) -> str:
    return f"ET-PART-{cluster.base}"


def remove_chains(prefix: str) -> None:
    for builtin, chain in (("INPUT", f"{prefix}-IN"), ("OUTPUT", f"{prefix}-OUT")):
        while _iptables("-D", builtin, "-j", chain, check=False):
            pass
        _iptables("-F", chain, check=False)
        _iptables("-X", chain, check=False)


def remove_leftovers(cluster: RabbitCluster) -> None:
    remove_chains(chain_prefix(cluster))
