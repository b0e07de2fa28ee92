"""Free loopback ports for the processes this project starts on one machine: the training workers'
cluster (TF_CONFIG), and Beam's and the team's services (`make services`), tests and benches. In
``components`` because it is the lowest package that the Trainer's executor and ``ops`` both reach."""
import socket
from typing import List


def free_ports(count: int) -> List[int]:
    """``count`` distinct loopback ports nothing listens on now (held together while picked, so no two
    are the same)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]
