"""Serving metrics (serving.runtime.metrics) through prometheus_client, under TF Serving's names."""
import pytest

from serving.runtime.metrics import Metrics
from tests.helpers import metric_samples


def _labels(**labels):
    return tuple(sorted(labels.items()))


def test_metrics_render_prometheus_text_under_tf_servings_names():
    metrics = Metrics()
    metrics.observe("m", "3", "predict", "REST", "OK", 0.0007)
    metrics.observe("m", "3", "predict", "REST", "OK", 0.003)
    text = metrics.render()
    samples = metric_samples(text)
    assert samples[":tensorflow:serving:request_count"] == {
        _labels(model_name="m", version="3", API="predict", entrypoint="REST", status="OK"): 2}
    buckets = samples[":tensorflow:serving:request_latency_bucket"]
    latency = dict(model_name="m", version="3", API="predict", entrypoint="REST")
    assert [buckets[_labels(**latency, le=le)] for le in ("500.0", "1000.0", "+Inf")] == [0, 1, 2]
    assert samples[":tensorflow:serving:request_latency_count"] == {_labels(**latency): 2}
    assert samples[":tensorflow:serving:request_latency_sum"][_labels(**latency)] == pytest.approx(3700)
    assert "mlops_serving_route_requests_total" not in text  # no route: the request reached no version
    assert "_created" not in text and ":tensorflow:serving:request_count_total" not in text


def test_a_request_that_reached_a_version_counts_its_route_and_label_keys_are_bounded(monkeypatch):
    import serving.runtime.metrics as metrics_module

    monkeypatch.setattr(metrics_module, "MAX_KEYED", 2)
    metrics = Metrics()
    for name in ("a", "b", "c", "c"):
        metrics.observe(name, "1", "predict", "GRPC", "OK", 0.001, route="stable")
    metrics.observe("c", "1", "predict", "GRPC", "NOT_FOUND", 0.001)
    samples = metric_samples(metrics.render())
    assert samples["mlops_serving_route_requests_total"][_labels(model_name="c", version="1", route="stable")] == 2
    counts = samples[":tensorflow:serving:request_count"]
    assert counts[_labels(model_name="c", version="1", API="predict", entrypoint="GRPC", status="OK")] == 2
    assert counts[_labels(model_name="c", version="1", API="predict", entrypoint="GRPC", status="NOT_FOUND")] == 1
    assert len(metrics._keys) == 2


def test_gauges_and_counters_by_name_and_labels():
    from serving.runtime.metrics import LOADED_VERSIONS, REQUEST_LOG_DROPPED, SHADOW_COUNT

    metrics = Metrics()
    metrics.set_gauge(LOADED_VERSIONS, (("model_name", "m"), ("version", "3")), 1)
    metrics.set_gauge(LOADED_VERSIONS, (("model_name", "m"), ("version", "3")), 0)
    metrics.set_gauge(REQUEST_LOG_DROPPED, (), 4)
    metrics.count(SHADOW_COUNT, (("model_name", "m"), ("version", "4"), ("outcome", "queued")))
    samples = metric_samples(metrics.render())
    assert samples[LOADED_VERSIONS] == {_labels(model_name="m", version="3"): 0}
    assert samples[REQUEST_LOG_DROPPED] == {(): 4}
    assert samples[SHADOW_COUNT] == {_labels(model_name="m", version="4", outcome="queued"): 1}
