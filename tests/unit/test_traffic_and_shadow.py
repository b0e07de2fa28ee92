"""Traffic split and shadow, pure logic: traffic.json's checks and atomic edits, the canary choice
(share and stickiness), the table a server re-reads, and the shadow report's arithmetic."""
import json
import os
import random
import time

import numpy as np
import pytest

from serving.runtime import traffic
from serving.runtime.model_config import ModelConfigError
from serving.runtime.shadow import shadow_report


def test_splits_are_edited_atomically_and_an_ended_split_leaves_no_entry(tmp_path):
    path = traffic.traffic_path(tmp_path)
    assert traffic.read(path) == {}
    assert traffic.set_split(path, "fraud", canary_percent=20) == traffic.Split(20.0, False)
    assert traffic.set_split(path, "fraud", shadow=True) == traffic.Split(20.0, True)
    assert traffic.set_split(path, "churn", canary_percent=5).canary_percent == 5
    assert traffic.read(path)["fraud"] == traffic.Split(20.0, True)
    traffic.set_split(path, "fraud", canary_percent=0, shadow=False)
    assert json.loads(path.read_text())["fraud"] == {"canary_percent": 0.0, "shadow": False}  # stays: on stable
    with pytest.raises(ModelConfigError, match="from 0 to 100"):
        traffic.set_split(path, "churn", canary_percent=101)
    assert traffic.read(path)["churn"].canary_percent == 5  # a refused edit changes nothing


@pytest.mark.parametrize("text, message", [
    ("{", "not JSON"), ("[]", "an object"), ('{"a": {"canary_percent": "10"}}', "a number"),
    ('{"a": {"canary": 10}}', "expected"), ('{"a": {"shadow": 1}}', "true or false"), ('{"../x": {}}', "expected"),
])
def test_a_bad_traffic_file_is_named(text, message):
    with pytest.raises(ModelConfigError, match=message):
        traffic.parse(text, "traffic.json")


def test_the_canary_takes_its_share_at_random_and_a_client_key_always_lands_on_one_side():
    rng = random.Random(0)
    share = sum(traffic.to_canary(20, rng=rng) for _ in range(20_000)) / 20_000
    assert 0.19 <= share <= 0.21
    keys = [f"user-{i}" for i in range(5_000)]
    assert all(traffic.to_canary(20, k) == traffic.to_canary(20, k) for k in keys[:100])
    assert 0.18 <= sum(traffic.to_canary(20, k) for k in keys) / len(keys) <= 0.22
    assert not traffic.to_canary(0, "x") and traffic.to_canary(100, "x")
    # a larger share keeps every key that was already on the canary there
    assert all(traffic.to_canary(50, k) for k in keys if traffic.to_canary(20, k))
    assert traffic.metadata_client_key([("user-agent", "grpc"), ("x-client-key", "k1")]) == "k1"


def test_a_server_re_reads_the_file_and_keeps_the_last_good_one(tmp_path, monkeypatch):
    monkeypatch.setattr(traffic, "RECHECK_SECONDS", 0.0)
    path = traffic.traffic_path(tmp_path)
    table = traffic.TrafficTable(path)
    assert table.split("fraud") is None
    traffic.set_split(path, "fraud", canary_percent=10)
    assert table.split("fraud").canary_percent == 10
    path.write_text("{broken")
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)
    assert table.split("fraud").canary_percent == 10 and "not JSON" in table.error


def _log(path, rows):
    with open(path, "w") as f:
        for at, mine, theirs, error in rows:
            f.write(json.dumps({"at": at, "primary_version": 1, "shadow_version": 2, "primary_ms": 1.0 + at,
                                "shadow_ms": 2.0, "primary": mine, "shadow": theirs, "error": error}) + "\n")


def test_the_shadow_report_compares_classes_or_values(tmp_path):
    path = tmp_path / "m.jsonl"
    _log(path, [(0, [[0.9], [0.2]], [[0.8], [0.7]], None), (1, [[0.1]], [[0.3]], None),
                (2, [[0.6]], None, "RuntimeError: boom")])
    report = shadow_report(path, "binary")
    assert (report["requests"], report["compared"], report["rows"], report["shadow_errors"]) == (3, 2, 3, 1)
    assert report["agreement"] == pytest.approx(2 / 3)
    assert report["confusion"] == {"0": {"1": 1, "0": 1}, "1": {"1": 1}}
    assert report["versions"] == [(1, 2)] and report["shadow_ms_p50"] == 2.0
    assert shadow_report(path, "binary", since=1)["requests"] == 2

    _log(path, [(0, [[0.1, 0.7, 0.2]], [[0.6, 0.3, 0.1]], None)])
    assert shadow_report(path, "multiclass")["confusion"] == {"1": {"0": 1}}
    _log(path, [(0, [[1.0], [3.0]], [[1.5], [2.0]], None)])
    assert shadow_report(path, "regression")["mean_abs_difference"] == pytest.approx(0.75)
    assert np.isclose(shadow_report(tmp_path / "none.jsonl", "binary")["requests"], 0)
