"""Prometheus metrics in the text exposition format, under TF Serving's metric names
(``:tensorflow:serving:request_count``, ``:tensorflow:serving:request_latency``), with the
model version as a label as well."""
import bisect
import threading
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

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


MAX_KEYED = 4096  # label combinations whose series keys are kept (client-chosen model names can be many)


def _request_keys(model: str, version: str, api: str, entrypoint: str, status: str,
                  route: Optional[str]) -> Tuple[Tuple, Tuple, Optional[Tuple]]:
    """A request's series: its count (with status), its latency histogram, its route counter."""
    latency = (("model_name", model), ("version", version), ("API", api), ("entrypoint", entrypoint))
    return ((*latency, ("status", status)), latency,
            None if route is None else (ROUTE_COUNT, (("model_name", model), ("version", version), ("route", route))))


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Dict[Tuple, int] = defaultdict(int)
        self._latency: Dict[Tuple, List[float]] = {}
        self._gauges: Dict[Tuple[str, Tuple], float] = {}
        self._counters: Dict[Tuple[str, Tuple], int] = defaultdict(int)  # our own counters, by name and labels
        self._keys: Dict[Tuple, Tuple] = {}  # a request's labels -> its series' keys (see _request_keys)

    def observe(self, model: str, version: str, api: str, entrypoint: str, status: str, seconds: float,
                route: Optional[str] = None) -> None:
        """One request: its count by status, its latency, and (when it reached a version) its route."""
        labels = (model, version, api, entrypoint, status, route)
        keys = self._keys.get(labels)
        if keys is None:
            keys = _request_keys(*labels)
            if len(self._keys) < MAX_KEYED:
                self._keys[labels] = keys
        count_key, latency_key, route_key = keys
        micros = seconds * 1e6
        with self._lock:
            self._counts[count_key] += 1
            state = self._latency.get(latency_key)
            if state is None:
                state = self._latency[latency_key] = [0.0] * (len(LATENCY_BUCKETS_US) + 2)  # buckets.., +Inf, sum
            state[bisect.bisect_left(LATENCY_BUCKETS_US, micros)] += 1
            state[-1] += micros
            if route_key is not None:
                self._counters[route_key] += 1

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
