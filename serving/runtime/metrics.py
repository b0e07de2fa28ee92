"""Prometheus metrics through ``prometheus_client``, under TF Serving's metric names
(``:tensorflow:serving:request_count``, ``:tensorflow:serving:request_latency``) with the model
version as a label as well. With ``--workers`` (PROMETHEUS_MULTIPROC_DIR set before the workers
start) every worker writes its own files and any worker's scrape adds them all up."""
import os
import threading
from typing import Dict, Iterator, Optional, Tuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

# microseconds, as TF Serving's request_latency histogram
LATENCY_BUCKETS_US: Tuple[float, ...] = (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
                                         250000, 500000, 1000000, 2500000, 5000000)
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
LOADED_VERSIONS = ":tensorflow:serving:loaded_versions"
REQUEST_LOG_DROPPED = "mlops_serving_request_log_dropped_total"
ROUTE_COUNT = "mlops_serving_route_requests_total"  # per model, version and route (direct, stable, canary)
SHADOW_COUNT = "mlops_serving_shadow_requests_total"  # per model, shadow version and outcome (queued, dropped)
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
MAX_KEYED = 4096  # label combinations whose series are kept at hand (client-chosen model names can be many)
LATENCY_LABELS = ("model_name", "version", "API", "entrypoint")
HELP = {LOADED_VERSIONS: "Model versions loaded (1) or unloaded (0)",
        REQUEST_LOG_DROPPED: "Sampled request rows the request log dropped (its queue was full)",
        ROUTE_COUNT: "Requests that reached a version, by route (direct, stable, canary)",
        SHADOW_COUNT: "Requests mirrored to a shadow version, by outcome (queued, dropped)"}

disable_created_metrics()  # TF Serving shows no *_created series


class _TfServingNames:
    """prometheus_client writes a counter as ``<name>_total``; TF Serving's request_count has no
    suffix, and dashboards built on TF Serving query it so: shown under its own name (untyped)."""

    def __init__(self, source):
        self.source = source

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            if family.name != REQUEST_COUNT:
                yield family
                continue
            renamed = Metric(REQUEST_COUNT, family.documentation, "unknown")
            for sample in family.samples:
                if sample.name == REQUEST_COUNT + "_total":
                    renamed.add_sample(REQUEST_COUNT, sample.labels, sample.value)
            yield renamed


class Metrics:
    def __init__(self):
        self._registry = CollectorRegistry(auto_describe=True)
        multiprocess = bool(os.environ.get(MULTIPROCESS_DIR))
        self._requests = Counter(REQUEST_COUNT, "Requests, by model, version, API, entrypoint and status",
                                 (*LATENCY_LABELS, "status"), registry=self._registry)
        self._latency = Histogram(REQUEST_LATENCY, "Request latency in microseconds", LATENCY_LABELS,
                                  buckets=LATENCY_BUCKETS_US, registry=self._registry)
        self._made: Dict[str, object] = {}
        self._lock = threading.Lock()
        self._keys: Dict[Tuple, Tuple] = {}  # a request's labels -> its series (see observe)
        self._gauge_mode = "livemax" if multiprocess else "all"
        exposed = MultiProcessCollector(CollectorRegistry()) if multiprocess else self._registry
        self._exposed = CollectorRegistry(auto_describe=False)
        self._exposed.register(_TfServingNames(exposed))

    def _metric(self, kind: type, name: str, label_names: Tuple[str, ...]):
        with self._lock:
            metric = self._made.get(name)
            if metric is None:
                extra = {"multiprocess_mode": self._gauge_mode} if kind is Gauge else {}
                metric = self._made[name] = kind(name, HELP.get(name, name), label_names,
                                                 registry=self._registry, **extra)
            return metric

    def observe(self, model: str, version: str, api: str, entrypoint: str, status: str, seconds: float,
                route: Optional[str] = None) -> None:
        """One request: its count by status, its latency, and (when it reached a version) its route."""
        labels = (model, version, api, entrypoint, status, route)
        series = self._keys.get(labels)
        if series is None:
            series = (self._requests.labels(model, version, api, entrypoint, status),
                      self._latency.labels(model, version, api, entrypoint),
                      None if route is None else self._metric(Counter, ROUTE_COUNT, ("model_name", "version", "route"))
                      .labels(model, version, route))
            if len(self._keys) < MAX_KEYED:
                self._keys[labels] = series
        count, latency, route_count = series
        count.inc()
        latency.observe(seconds * 1e6)
        if route_count is not None:
            route_count.inc()

    def count(self, name: str, labels: Tuple[Tuple[str, str], ...]) -> None:
        self._metric(Counter, name, tuple(k for k, _ in labels)).labels(*(v for _, v in labels)).inc()

    def set_gauge(self, name: str, labels: Tuple[Tuple[str, str], ...], value: float) -> None:
        gauge = self._metric(Gauge, name, tuple(k for k, _ in labels))
        (gauge.labels(*(v for _, v in labels)) if labels else gauge).set(value)

    def render(self) -> str:
        return generate_latest(self._exposed).decode()
