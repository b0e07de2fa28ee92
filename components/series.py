"""Windows built in the pipeline: an ExampleGen executor that turns a time series CSV into
(window, target) examples, one per position, for forecasting.

Each input split is its own file (train: the earlier years, eval: the later ones), so no window of
the eval split is seen in training. Parameters come from the component's custom_config, a
``google.protobuf.Struct`` packed in ``example_gen_pb2.CustomConfig``: ``column`` (the series),
``lookback`` (window length) and ``horizon`` (steps to forecast), and for a table of many series
``key``, the column naming each row's series: windows are then built within each series, never
across two. A user's series also gives ``covariates`` (columns whose values a window carries over
its lookback and horizon: they are known ahead) and ``dates`` (the column of each point's ISO
date: each window then carries its first forecast step's date, ``next_date``, for calendar parts).
"""
import csv
import json
import os
from typing import Any, Dict, Iterator, List, Sequence

import apache_beam as beam
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from serving.codec.periods import NEXT_DATE_INPUT

WINDOW, TARGET = "window", "target"


def series_config(column: str, lookback: int, horizon: int, key: str = "", covariates: Sequence[str] = (),
                  dates: str = "") -> example_gen_pb2.CustomConfig:
    fields = {"column": struct_pb2.Value(string_value=column), "lookback": struct_pb2.Value(number_value=lookback),
              "horizon": struct_pb2.Value(number_value=horizon)}
    if key:  # absent for one series, so the built-in use case's cache key stays what it was
        fields["key"] = struct_pb2.Value(string_value=key)
    if covariates:
        fields["covariates"] = struct_pb2.Value(list_value=struct_pb2.ListValue(
            values=[struct_pb2.Value(string_value=name) for name in covariates]))
    if dates:
        fields["dates"] = struct_pb2.Value(string_value=dates)
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct_pb2.Struct(fields=fields))
    return config


def _read_config(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    config = example_gen_pb2.CustomConfig()
    json_format.Parse(exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY], config)
    fields = struct_pb2.Struct()
    config.custom_config.Unpack(fields)
    values = json.loads(json_format.MessageToJson(fields))
    return {"column": values["column"], "lookback": int(values["lookback"]), "horizon": int(values["horizon"]),
            "key": values.get("key", ""), "covariates": list(values.get("covariates", [])),
            "dates": values.get("dates", "")}


def _floats(values: Sequence[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def windows(values: List[float], lookback: int, horizon: int, covariates: Dict[str, List[float]] = None,
            dates: Sequence[str] = ()) -> Iterator[tf.train.Example]:
    """Every (window, target) of a series; with ``covariates`` each window's covariate values over
    its lookback and horizon, with ``dates`` its first target's date."""
    for start in range(len(values) - lookback - horizon + 1):
        end = start + lookback + horizon
        feature = {WINDOW: _floats(values[start:start + lookback]), TARGET: _floats(values[start + lookback:end])}
        feature.update({name: _floats(series[start:end]) for name, series in (covariates or {}).items()})
        if dates:
            feature[NEXT_DATE_INPUT] = tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[dates[start + lookback].encode()]))
        yield tf.train.Example(features=tf.train.Features(feature=feature))


def _file_windows(path: str, config: Dict[str, Any]) -> Iterator[tf.train.Example]:
    with tf.io.gfile.GFile(path) as f:
        rows = list(csv.DictReader(f))
    if not rows or config["column"] not in rows[0]:
        raise ValueError(f"{path}: series column '{config['column']}' not found")
    series: Dict[str, List[Dict[str, str]]] = {}
    for row in rows:  # rows of a series are contiguous and in time order (as staged)
        series.setdefault(row[config["key"]] if config["key"] else "", []).append(row)
    for name, points in series.items():
        if len(points) < config["lookback"] + config["horizon"]:
            raise ValueError(f"{path}: series {name!r} has {len(points)} values, fewer than lookback + horizon")
        covariates = {c: [float(p[c]) for p in points] for c in config["covariates"]}
        dates = [p[config["dates"]] for p in points] if config["dates"] else ()
        yield from windows([float(p[config["column"]]) for p in points], config["lookback"], config["horizon"],
                           covariates, dates)


@beam.ptransform_fn
@beam.typehints.with_output_types(tf.train.Example)
def _SeriesToWindows(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],  # noqa: N802 (Beam naming)
                     split_pattern: str) -> beam.pvalue.PCollection:
    config = _read_config(exec_properties)
    files = sorted(tf.io.gfile.glob(os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                                                 split_pattern)))
    if not files:
        raise ValueError(f"no series file matches {split_pattern}")
    return pipeline | "Files" >> beam.Create(files) | "Windows" >> beam.FlatMap(_file_windows, config)


class SeriesExampleGenExecutor(base_example_gen_executor.BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX API)
        return _SeriesToWindows


def series_example_gen(input_base: str, column: str, lookback: int, horizon: int, key: str = "",
                       validation: bool = False, covariates: Sequence[str] = (),
                       dates: str = "") -> FileBasedExampleGen:
    """Train windows from ``train/*.csv``, eval windows from ``eval/*.csv`` under input_base, and with
    ``validation`` the windows of ``valid/*.csv`` (what the Trainer stops early on, so the eval split
    stays unseen until the Evaluator)."""
    names = ["train", *(["valid"] if validation else []), "eval"]
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=name, pattern=f"{name}/*.csv") for name in names]),
        custom_config=series_config(column, lookback, horizon, key, covariates, dates),
        custom_executor_spec=executor_spec.BeamExecutorSpec(SeriesExampleGenExecutor),
    ).with_id("SeriesExampleGen")
