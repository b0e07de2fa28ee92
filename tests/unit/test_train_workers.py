"""--train-workers: TF_CONFIG read as TensorFlow writes it, bad counts and combinations refused in
one line, and a worker that fails is named with its last line (real worker processes)."""
import json

import pytest

from components.tf_config import TrainCluster, TrainWorkersError, cluster_from_env
from components.train_workers import run_workers
from pipelines.configure import ConfigError
from tests.helpers import run_cli_config


def test_tf_config_names_this_worker_among_the_cluster():
    config = TrainCluster(["127.0.0.1:1", "127.0.0.1:2"], 1).tf_config()
    assert cluster_from_env({"TF_CONFIG": config}) == TrainCluster(["127.0.0.1:1", "127.0.0.1:2"], 1)
    chief = {"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}
    assert cluster_from_env({"TF_CONFIG": json.dumps(chief)}).index == 1  # Vertex's layout: the chief apart
    assert cluster_from_env({}) is None
    assert cluster_from_env({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1"]},
                                                      "task": {"type": "worker", "index": 0}})}) is None
    with pytest.raises(TrainWorkersError, match="TF_CONFIG: task .* is not among the 2 workers"):
        cluster_from_env({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                   "task": {"type": "worker", "index": 5}})})
    with pytest.raises(TrainWorkersError, match="TF_CONFIG does not describe a cluster"):
        cluster_from_env({"TF_CONFIG": "{not json"})


@pytest.mark.parametrize("extra, message", [
    (("--train-workers", "0"), "--train-workers 0: give 1 to 16"),
    (("--train-workers", "17"), "--train-workers 17: give 1 to 16"),
    (("--train-workers", "2", "--tune", "random"), "--train-workers 2 with --tune: that training runs in one process"),
])
def test_bad_worker_counts_and_combinations_are_one_line(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        run_cli_config(*extra, home=tmp_path)


def test_two_workers_reach_the_trainer_and_the_default_stays_one(tmp_path):
    assert run_cli_config("--train-workers", "2", home=tmp_path).train_spec().train_workers == 2
    assert "train_workers" not in run_cli_config(home=tmp_path).train_spec().to_dict()  # cache keys unchanged


def test_a_worker_that_fails_is_named_with_its_last_line(tmp_path):
    (tmp_path / "job.json").write_text("{}")  # no inputs: each worker stops on its first read
    with pytest.raises(TrainWorkersError, match=r"training worker \d of the --train-workers run exited with 1: "
                                                r"KeyError: 'input'"):
        run_workers(str(tmp_path), ["127.0.0.1:1", "127.0.0.1:2"])
