"""Batch scoring (`mlops score`): a registered model (the ``champion`` by default) applied to new,
unlabelled rows on Beam, predictions written as CSV and as TFRecords of tf.Examples, with the
model's name, registry version and serving version on every row.

TFX's BulkInferrer cannot do this on this stack (it crashes on Keras models in TFX 1.16,
tensorflow/tfx#7782). Rows go through the model's ``serving_default`` signature (raw features, the
Transform inside), in batches, one model load per Beam worker.
"""
import csv
import glob
import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam

from serving.codec.columns import PARQUET_SUFFIXES, TABLE_SUFFIXES, is_missing_text, read_columns, sniff_delimiter

OUTPUT_PREFIX = "predictions"  # predictions-*.csv and predictions-*.tfrecord.gz
MODEL_COLUMNS = ("model_name", "model_version", "serving_version")


class ScoringError(Exception):
    pass


@dataclass(frozen=True)
class ScoringModel:
    name: str
    version: str  # the registry version ("" when scored from a directory)
    serving_version: str
    path: str


def _signature(model_dir: str):
    """serving_default's inputs (name -> numpy dtype name) and output names, from saved_model.pb."""
    from serving.codec.signature import tensor_spec
    from serving.runtime.servable import read_signature_defs

    signature = read_signature_defs(Path(model_dir))["serving_default"]
    specs = {name: tensor_spec(name, info) for name, info in signature.inputs.items()}
    return ({name: "object" if spec.kind == "string" else spec.dtype.as_numpy_dtype.__name__
             for name, spec in specs.items()}, sorted(signature.outputs))


def _cell(value: Any, dtype: str, column: str) -> Any:
    """A raw value as serving_default takes it: text, or a number with NaN for missing."""
    if isinstance(value, list):
        return [_cell(v, dtype, column) for v in value]
    if dtype == "object":
        return "" if is_missing_text(value) else str(value)
    if is_missing_text(value):
        return float("nan")
    try:
        return float(value)
    except ValueError:
        raise ScoringError(f"column '{column}': {value!r} is not a number") from None


def table_kind(data: str) -> str:
    """'text' (a delimited table), 'parquet', or 'tfrecord' (a file, dir or glob of tf.Examples)."""
    name = data.lower()[:-3] if data.lower().endswith(".gz") else data.lower()
    return "text" if name.endswith(TABLE_SUFFIXES) else "parquet" if name.endswith(PARQUET_SUFFIXES) else "tfrecord"


def _open_text(path: str):
    opener = gzip.open if path.lower().endswith(".gz") else open
    return opener(path, "rt", newline="", encoding="utf-8-sig")


def _text_header(path: str) -> Tuple[List[str], str]:
    """(column names, delimiter) of a delimited table."""
    with _open_text(path) as f:
        first = f.readline()
    delimiter = sniff_delimiter(first)
    return [h.strip() for h in next(csv.reader([first], delimiter=delimiter), [])], delimiter


def _read_rows(path: str, kind: str, delimiter: str) -> Iterable[Dict[str, Any]]:
    """A table's rows as dicts by column name: read whole, by the csv module (a quoted text cell may
    hold line breaks, which a line-per-record read splits into broken rows) or by pyarrow."""
    if kind == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            yield from batch.to_pylist()
        return
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = [h.strip() for h in next(reader, [])]
        for values in reader:
            if values:
                yield dict(zip(header, values))


def _example_row(record: bytes) -> Dict[str, Any]:
    from serving.codec.examples import decode, scalar_or_list

    return {name: scalar_or_list(values) for name, values in decode(record).items() if values}


class _Score(beam.DoFn):
    """Loads the SavedModel once per worker; scores a batch of raw rows."""

    def __init__(self, model: ScoringModel, specs: Dict[str, str]):
        self._model, self._specs = model, specs

    def setup(self):
        import tensorflow as tf

        self._loaded = tf.saved_model.load(self._model.path)
        self._predict = self._loaded.signatures["serving_default"]
        self._names = read_columns(self._model.path)

    def process(self, rows: List[Dict[str, Any]]) -> Iterable[Dict[str, Any]]:
        import numpy as np
        import tensorflow as tf

        feed = {}
        keyed = [self._names.rename(row) for row in rows]  # original column names -> the model's keys
        for name, dtype in self._specs.items():
            column = [_cell(row.get(name), dtype, self._names.name_of(name)) for row in keyed]
            feed[name] = tf.constant(np.array(column, dtype=object if dtype == "object" else dtype))
        outputs = {key: value.numpy() for key, value in self._predict(**feed).items()}
        for i, row in enumerate(rows):
            scored = {**row, "model_name": self._model.name, "model_version": self._model.version,
                      "serving_version": self._model.serving_version}
            for key, values in outputs.items():
                value = np.reshape(values[i], [-1])
                scored[key] = value.tolist() if value.size > 1 else value[0].item() \
                    if not isinstance(value[0], bytes) else value[0].decode()
            yield scored


def _csv_line(values: Sequence[Any]) -> str:
    """One CSV record without its terminator; a cell with a line break is quoted (with no
    terminator given, the csv module does not know to quote it)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()[:-1]


def _to_csv(columns: Sequence[str]):
    def line(row: Dict[str, Any]) -> str:
        return _csv_line([json.dumps(row[c]) if isinstance(row.get(c), list) else row.get(c, "") for c in columns])
    return line


def score(model: ScoringModel, data: str, output: Path, beam_args: Sequence[str] = ()) -> Dict[str, Any]:
    """Scores ``data`` (a delimited table or Parquet file, or TFRecord files of tf.Examples: a file, dir or glob) into
    ``output``/predictions-*.csv and predictions-*.tfrecord.gz; returns the counts and paths."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from core.beam_runners import beam_temp_dir
    from core.config import LOCAL_BEAM_ARGS

    # absolute: another runner's workers resolve a relative path in their own working dir
    data, output = os.path.abspath(data), output.resolve()
    specs, outputs = _signature(model.path)
    output.mkdir(parents=True, exist_ok=True)
    kind, delimiter = table_kind(data), ","
    if kind != "tfrecord":
        if not os.path.isfile(data):
            raise ScoringError(f"{data}: no such file")
        if kind == "text":
            header, delimiter = _text_header(data)
        else:
            import pyarrow.parquet as pq

            header = pq.read_schema(data).names
        names = read_columns(model.path)  # the model's original column names are accepted too
        missing = sorted(set(specs) - {names.key(h) for h in header})
        if missing:
            original = {k: n for n, k in names.keys.items()}
            raise ScoringError(f"{data}: missing column(s) the model needs: "
                               f"{', '.join(original.get(m, m) for m in missing)}")
        inputs = header
    else:
        pattern = os.path.join(data, "*") if os.path.isdir(data) else data
        if not glob.glob(pattern):
            raise ScoringError(f"{data}: no TFRecord files")
        inputs = sorted(specs)
    columns = [*inputs, *MODEL_COLUMNS, *outputs]
    from serving.codec.examples import encode

    with beam_temp_dir(), beam.Pipeline(options=PipelineOptions(list(beam_args or LOCAL_BEAM_ARGS))) as pipeline:
        if kind != "tfrecord":  # read whole in one worker, then spread to the scoring workers
            rows = (pipeline | "Table" >> beam.Create([data])
                    | "ReadTable" >> beam.FlatMap(_read_rows, kind, delimiter) | "Spread" >> beam.Reshuffle())
        else:
            rows = (pipeline | "ReadTFRecord" >> beam.io.ReadFromTFRecord(pattern)
                    | "Parse" >> beam.Map(_example_row))
        scored = (rows | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=2048)
                  | "Score" >> beam.ParDo(_Score(model, specs)))
        _ = (scored | "Csv" >> beam.Map(_to_csv(columns))
             | "WriteCsv" >> beam.io.WriteToText(str(output / OUTPUT_PREFIX), file_name_suffix=".csv",
                                                 header=_csv_line(columns)))
        _ = (scored | "Example" >> beam.Map(encode)
             | "WriteTFRecord" >> beam.io.WriteToTFRecord(str(output / OUTPUT_PREFIX),
                                                         file_name_suffix=".tfrecord.gz"))
    csv_files = sorted(glob.glob(str(output / f"{OUTPUT_PREFIX}*.csv")))
    rows_written = 0
    for path in csv_files:  # records, not lines: a text cell may hold line breaks
        with open(path, newline="", encoding="utf-8") as f:
            rows_written += sum(1 for _ in csv.reader(f)) - 1
    return {"rows": rows_written, "csv": csv_files,
            "tfrecord": sorted(glob.glob(str(output / f"{OUTPUT_PREFIX}*.tfrecord.gz")))}


def resolve_model(home, name: str, tracking_uri: str, alias: str = "champion", version: Optional[int] = None,
                  model_dir: Optional[str] = None) -> ScoringModel:
    """The registered version (by alias or number) and its pushed directory, or a given directory."""
    if model_dir:
        if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
            raise ScoringError(f"{model_dir}: not a SavedModel directory")
        return ScoringModel(name, "", Path(model_dir).name, model_dir)
    from release import mlflow_registry

    client = mlflow_registry.client_for(tracking_uri)
    if version is None:
        try:
            aliases = mlflow_registry.aliases(client, name)
        except mlflow_registry.UnknownModelError as e:
            from serving.runtime.manager import list_versions

            base = home.model_base_dir(name)
            pushed = list_versions(base)
            raise ScoringError(f"{e}; score a pushed SavedModel with --model-dir {base / str(pushed[-1])}"
                               if pushed else str(e)) from None
        if alias not in aliases:
            raise ScoringError(f"registered model '{name}' has no alias '{alias}' "
                               f"(aliases: {', '.join(sorted(aliases)) or 'none'})")
        version = aliases[alias]
    found = mlflow_registry.get_version(client, name, version)
    serving_version = found.tags.get(mlflow_registry.SERVING_VERSION_TAG, "")
    path = home.model_base_dir(name) / serving_version
    if not serving_version or not (path / "saved_model.pb").is_file():
        raise ScoringError(f"registered version {version} of '{name}': its pushed model is not in {path.parent}")
    return ScoringModel(name, str(version), serving_version, str(path))
