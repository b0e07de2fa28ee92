"""Prometheus metrics in the text exposition format, under TF Serving's metric names
(``:tensorflow:serving:request_count``, ``:tensorflow:serving:request_latency``), with the
model version as a label as well."""
import bisect
import threading
from collections import defaultdict
from typing import Dict, List, Tuple

# microseconds, as TF Serving's request_latency histogram
LATENCY_BUCKETS_US: Tuple[float, ...] = (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
                                         250000, 500000, 1000000, 2500000, 5000000)
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
LOADED_VERSIONS = ":tensorflow:serving:loaded_versions"
REQUEST_LOG_DROPPED = "mlops_serving_request_log_dropped_total"
ROUTE_COUNT = "mlops_serving_route_requests_total"  # per model, version and route (direct, stable, canary)
SHADOW_COUNT = "mlops_serving_shadow_requests_total"  # per model, shadow version and outcome (queued, dropped)


def _labels(pairs: Tuple[Tuple[str, str], ...]) -> str:
    escaped = (f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
               for k, v in pairs)
    return "{" + ",".join(escaped) + "}"


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Dict[Tuple, int] = defaultdict(int)
        self._latency: Dict[Tuple, List[float]] = {}
        self._gauges: Dict[Tuple[str, Tuple], float] = {}
        self._counters: Dict[Tuple[str, Tuple], int] = defaultdict(int)  # our own counters, by name and labels

    def observe(self, model: str, version: str, api: str, entrypoint: str, status: str, seconds: float) -> None:
        micros = seconds * 1e6
        with self._lock:
            self._counts[(("model_name", model), ("version", version), ("API", api),
                          ("entrypoint", entrypoint), ("status", status))] += 1
            key = (("model_name", model), ("version", version), ("API", api), ("entrypoint", entrypoint))
            state = self._latency.get(key)
            if state is None:
                state = self._latency[key] = [0.0] * (len(LATENCY_BUCKETS_US) + 2)  # buckets.., +Inf, sum
            state[bisect.bisect_left(LATENCY_BUCKETS_US, micros)] += 1
            state[-1] += micros

    def count(self, name: str, labels: Tuple[Tuple[str, str], ...]) -> None:
        with self._lock:
            self._counters[(name, labels)] += 1

    def set_gauge(self, name: str, labels: Tuple[Tuple[str, str], ...], value: float) -> None:
        with self._lock:
            self._gauges[(name, labels)] = value

    def render(self) -> str:
        with self._lock:
            lines = [f"# TYPE {REQUEST_COUNT} counter"]
            lines += [f"{REQUEST_COUNT}{_labels(k)} {v}" for k, v in sorted(self._counts.items())]
            lines.append(f"# TYPE {REQUEST_LATENCY} histogram")
            for key, state in sorted(self._latency.items()):
                cumulative = 0.0
                for bound, count in zip((*LATENCY_BUCKETS_US, "+Inf"), state[:-1]):
                    cumulative += count
                    lines.append(f"{REQUEST_LATENCY}_bucket{_labels((*key, ('le', str(bound))))} {int(cumulative)}")
                lines.append(f"{REQUEST_LATENCY}_sum{_labels(key)} {state[-1]:.0f}")
                lines.append(f"{REQUEST_LATENCY}_count{_labels(key)} {int(cumulative)}")
            for name in sorted({n for n, _ in self._counters}):
                lines.append(f"# TYPE {name} counter")
                lines += [f"{name}{_labels(labels)} {value}"
                          for (n, labels), value in sorted(self._counters.items()) if n == name]
            for name in sorted({n for n, _ in self._gauges}):
                lines.append(f"# TYPE {name} gauge")
                lines += [f"{name}{_labels(labels)} {value:g}"
                          for (n, labels), value in sorted(self._gauges.items()) if n == name]
            return "\n".join(lines) + "\n"
