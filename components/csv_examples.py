"""CsvExampleGen's output, built with pyarrow instead of a Beam pipeline of Python rows.

TFX's CsvExampleGen parses every line with Python's csv module, infers each column's type in a
Beam combine, builds one tf.Example per row in Python, hash-splits and reshuffles them: 194 s for
a million rows here. This executor writes the same records: the same column types (INT if every
non-empty cell is a Python int within int64, else FLOAT if every one is a Python float, else
STRING; UNKNOWN when all are empty), the same features (an empty cell is an empty list of the
column's type, an all-empty column an empty Feature), the same bytes (TFX's deterministic
serialization, keys sorted), hence the same train/eval split (sha256 of those bytes modulo the
hash buckets), each split shuffled as TFX's Reshuffle does. pyarrow parses the CSV with its
threads; the records are serialized column by column (vectorized varints); only the split hash
is per row.

It reads what staging writes: comma-delimited UTF-8 with a header, one record per line.
Memory: the records of one output shard at a time (shards of about ``SHARD_BYTES`` of CSV).
"""
import bisect
import concurrent.futures
import hashlib
import os
import tempfile
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import tensorflow as tf
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.components.example_gen.write_split import DEFAULT_TF_RECORD_FILE_NAME, to_file_format_str
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_executor, executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

UNKNOWN, INT, FLOAT, STRING = -1, 0, 1, 2  # TFX's ColumnType order: a column takes the highest seen
BLOCK_BYTES = 16 << 20  # pyarrow's parse block: rows arrive in batches of about this much CSV
SHARD_BYTES = 64 << 20  # CSV bytes per output shard: bounds the records held in memory at once
SHUFFLE_SEED = 7
_INT_TEXT = r"^-?[0-9]+$"  # what both pyarrow and Python read as the same int
_FLOAT_TEXT = r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INT64 = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)


# --- column types, as TFX's csv_decoder infers them -------------------------------------------

def python_kind(cell: bytes) -> int:
    """One cell's type by TFX's rule (Python's int() and float())."""
    if not cell:
        return UNKNOWN
    try:
        return INT if _INT64[0] <= int(cell) <= _INT64[1] else STRING
    except ValueError:
        try:
            float(cell)
        except ValueError:
            return STRING
        return FLOAT


def _all_match(values: pa.Array, pattern: str) -> bool:
    return len(values) == 0 or pc.all(pc.match_substring_regex(values, pattern)).as_py()


def _fits_int64(values: pa.Array) -> bool:
    try:
        pc.cast(values, pa.int64())
        return True
    except pa.ArrowInvalid:
        return False


def column_kind(cells: pa.Array) -> int:
    """The type of a column's cells (strings; empty = missing). The common texts are decided with
    pyarrow; anything else (signs, spaces, underscores, 'inf', long integers) one unique value at a
    time with Python's rule, so the result is always TFX's."""
    values = pc.filter(cells, pc.not_equal(cells, ""))
    if len(values) == 0:
        return UNKNOWN
    ints = pc.match_substring_regex(values, _INT_TEXT)
    if pc.all(ints).as_py() and _fits_int64(values):
        return INT
    if _all_match(values, _FLOAT_TEXT) and _fits_int64(pc.filter(values, ints)):
        return FLOAT
    kind = UNKNOWN
    for value in pc.unique(values).to_pylist():
        kind = max(kind, python_kind(value.encode()))
        if kind == STRING:
            break
    return kind


# --- serialization: tf.train.Example, deterministic, a column at a time -----------------------

def varint(value: int) -> bytes:
    """A protobuf varint (a negative int32 or int64: ten bytes, two's complement, as protobuf writes it)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varints(numbers: np.ndarray) -> pa.Array:
    """Protobuf varints of uint64 values (negative int64 as their two's complement), one binary
    value per number."""
    rest = numbers.astype(np.uint64, copy=True)
    groups = np.zeros((len(rest), 10), np.uint8)
    sizes = np.ones(len(rest), np.int32)
    width = 0
    while width < 10:
        groups[:, width] = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest >>= np.uint64(7)
        more = rest != 0
        width += 1
        if not more.any():
            break
        groups[:, width - 1] |= more.astype(np.uint8) << 7
        sizes += more
    data = groups[:, :width][np.arange(width) < sizes[:, None]]
    offsets = np.zeros(len(sizes) + 1, np.int32)
    np.cumsum(sizes, out=offsets[1:])
    return pa.Array.from_buffers(pa.binary(), len(sizes), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _framed(tag: bytes, payload: pa.Array) -> pa.Array:
    """tag + varint(len) + payload, per row."""
    lengths = pc.binary_length(payload).to_numpy(zero_copy_only=False)
    return pc.binary_join_element_wise(pa.scalar(tag, pa.binary()), varints(lengths), payload, b"")


def _rows_to_lists(present: pa.Array, tag: bytes, packed: pa.Array) -> pa.Array:
    """A Feature per row: the one value's list (``packed``, for present rows) or an empty list."""
    empty = pa.scalar(tag + b"\x00", pa.binary())
    full = _framed(tag, packed)
    return pc.if_else(present, _scatter(present, full), empty)


def _scatter(present: pa.Array, values: pa.Array) -> pa.Array:
    """``values`` (one per present row) placed at the present rows; null elsewhere."""
    index = np.cumsum(present.to_numpy(zero_copy_only=False)) - 1
    return pc.take(values, pa.array(np.maximum(index, 0))) if len(values) else pa.nulls(len(present), pa.binary())


def feature_column(cells: pa.Array, kind: int) -> pa.Array:
    """The serialized Feature of each row of a column (Feature.bytes_list=1, float_list=2,
    int64_list=3; each list's value field is 1, packed for numbers)."""
    if kind == UNKNOWN:
        return pa.nulls(len(cells), pa.binary()).fill_null(b"")
    present = pc.not_equal(cells, "")
    values = pc.filter(cells, present)
    if kind == STRING:
        return _rows_to_lists(present, b"\x0a", _framed(b"\x0a", pc.cast(values, pa.binary())))
    if kind == FLOAT:
        numbers = _to_numbers(values, np.float64, float).astype(np.float32)
        body = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(numbers), [None, pa.py_buffer(numbers.tobytes())])
        return _rows_to_lists(present, b"\x12", _framed(b"\x0a", pc.cast(body, pa.binary())))
    numbers = _to_numbers(values, np.int64, int)
    return _rows_to_lists(present, b"\x1a", _framed(b"\x0a", varints(numbers)))


def _to_numbers(values: pa.Array, dtype, parse) -> np.ndarray:
    try:
        return pc.cast(values, pa.from_numpy_dtype(dtype)).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # texts only Python reads ('+5', ' 7', '1_000', 'Infinity', ...)
        return np.array([parse(v) for v in values.to_pylist()], dtype)


def examples(batch: pa.RecordBatch, kinds: Dict[str, int]) -> pa.Array:
    """One serialized tf.train.Example per row, byte for byte TFX's deterministic serialization
    of the Example its CsvExampleGen builds (map entries in key order)."""
    entries = []
    for name in sorted(kinds):
        key = name.encode()
        feature = feature_column(batch.column(name), kinds[name])
        key_field = pa.scalar(b"\x0a" + varint(len(key)) + key, pa.binary())  # map entry: key=1, value=2
        entries.append(_framed(b"\x0a", pc.binary_join_element_wise(key_field, _framed(b"\x12", feature), b"")))
    features = pc.binary_join_element_wise(*entries, b"") if len(entries) > 1 else entries[0]
    return _framed(b"\x0a", features)



# --- reading ------------------------------------------------------------------------------------

def header(path: str) -> List[str]:
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.readline().decode("utf-8").rstrip("\r\n").split(",")


def _open(path: str) -> pa.NativeFile:
    """A local file as it is; a remote one (gs://, ...) read through TensorFlow's file systems."""
    if "://" not in path:
        return pa.OSFile(path, "rb")
    with tf.io.gfile.GFile(path, "rb") as f:
        return pa.BufferReader(f.read())


def batches(path: str, names: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The rows of one file as string columns (empty cells as "")."""
    with _open(path) as f:
        reader = pcsv.open_csv(
            f, read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=True),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                strings_can_be_null=False, quoted_strings_can_be_null=False))
        for batch in reader:
            if batch.num_rows:
                yield batch


def infer_kinds(files: Sequence[str], names: Sequence[str]) -> Dict[str, int]:
    kinds = {name: UNKNOWN for name in names}
    for path in files:
        for batch in batches(path, names):
            for name in names:
                if kinds[name] != STRING:
                    kinds[name] = max(kinds[name], column_kind(batch.column(name)))
    return kinds


def split_files(input_base: str, pattern: str) -> Tuple[List[str], List[str]]:
    files = sorted(tf.io.gfile.glob(os.path.join(input_base, pattern)))
    if not files:
        raise RuntimeError(f"Split pattern {os.path.join(input_base, pattern)} does not match any files.")
    names = header(files[0])
    for path in files[1:]:
        if header(path) != names:
            raise RuntimeError(f"{path}: its header differs from {files[0]}'s")
    return files, names


# --- splitting, shuffling, writing ----------------------------------------------------------------

def bucket_bounds(split_config: example_gen_pb2.SplitConfig) -> List[int]:
    bounds, total = [], 0
    for split in split_config.splits:
        total += split.hash_buckets
        bounds.append(total)
    return bounds


def split_index(record: bytes, bounds: Sequence[int]) -> int:
    """TFX's partition: sha256 of the serialized record modulo the total buckets."""
    return bisect.bisect(bounds, int(hashlib.sha256(record).hexdigest(), 16) % bounds[-1])


class _ShardedWriter:
    """Records of each output split go, at random, to one of ``shards`` temporary Arrow files;
    each shard is then shuffled in memory and written as gzipped TFRecords, as TFX writes them."""

    _SCHEMA = pa.schema([("record", pa.binary())])

    def __init__(self, split_uris: Sequence[str], shards: int, temp_dir: str):
        self._uris, self._shards = list(split_uris), shards
        self._random = np.random.default_rng(SHUFFLE_SEED)
        self._temp = [[os.path.join(temp_dir, f"{s}-{k}.arrow") for k in range(shards)] for s in range(len(split_uris))]
        self._writers = [[pa.ipc.new_stream(p, self._SCHEMA) for p in paths] for paths in self._temp]
        self.counts = [0] * len(split_uris)

    def add(self, split: int, records: pa.Array) -> None:
        self.counts[split] += len(records)
        targets = self._random.integers(0, self._shards, len(records))
        for shard in range(self._shards):
            part = records if self._shards == 1 else pc.filter(records, pa.array(targets == shard))
            self._writers[split][shard].write_batch(pa.record_batch([part], schema=self._SCHEMA))

    def finish(self) -> None:
        """Shuffles and compresses the shards, on every core (gzip and the writes release the GIL)."""
        for writers in self._writers:
            for writer in writers:
                writer.close()
        jobs = [(split, shard, self._random.integers(1 << 31)) for split in range(len(self._uris))
                for shard in range(self._shards)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(lambda job: self._write_shard(*job), jobs))

    def _write_shard(self, split: int, shard: int, seed: int) -> None:
        path, uri = self._temp[split][shard], self._uris[split]
        with pa.ipc.open_stream(path) as reader:
            records = pa.concat_arrays([b.column(0) for b in reader] or [pa.array([], pa.binary())])
        records = records.take(pa.array(np.random.default_rng(seed).permutation(len(records))))
        tf.io.gfile.makedirs(uri)
        name = f"{DEFAULT_TF_RECORD_FILE_NAME}-{shard:05d}-of-{self._shards:05d}.gz"
        with tf.io.TFRecordWriter(os.path.join(uri, name), tf.io.TFRecordOptions(compression_type="GZIP")) as out:
            for record in records.to_pylist():
                out.write(record)
        os.remove(path)


def write_examples(input_base: str, input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output,
                   split_uris: Dict[str, str]) -> Dict[str, int]:
    """Reads the input splits' CSV files and writes the output splits; returns rows per split."""
    bounds = bucket_bounds(output_config.split_config) if output_config.split_config.splits else None
    names = list(split_uris)
    sources = [input_config.splits[0]] if bounds else list(input_config.splits)
    files = {s.name: split_files(input_base, s.pattern) for s in sources}
    size = sum(tf.io.gfile.stat(f).length for paths, _ in files.values() for f in paths)
    with tempfile.TemporaryDirectory(prefix="mlops-csv-examples-") as temp:
        writer = _ShardedWriter([split_uris[n] for n in names], max(1, -(-size // SHARD_BYTES)), temp)
        for position, source in enumerate(sources):
            paths, columns = files[source.name]
            kinds = infer_kinds(paths, columns)
            for path in paths:
                for batch in batches(path, columns):
                    records = examples(batch, kinds)
                    if bounds is None:
                        writer.add(position, records)
                        continue
                    splits = np.fromiter((split_index(r, bounds) for r in records.to_pylist()), np.int8,
                                         len(records))
                    for split in range(len(bounds)):
                        writer.add(split, pc.filter(records, pa.array(splits == split)))
        writer.finish()
    return dict(zip(names, writer.counts))


class CsvExamplesExecutor(base_executor.BaseExecutor):
    """FileBasedExampleGen's executor: TFX's CsvExampleGen records, without Beam."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        if output_config.split_config.partition_feature_name:
            raise ValueError("CsvExamplesExecutor splits by hash of the record, not by a feature")
        examples_out = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples_out)
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        artifact.split_names = artifact_utils.encode_split_names(split_names)
        counts = write_examples(exec_properties[standard_component_specs.INPUT_BASE_KEY], input_config,
                                output_config, {name: artifact_utils.get_split_uri(examples_out, name)
                                                for name in split_names})
        empty = [name for name, count in counts.items() if count == 0]
        if empty:  # the Transform would fail on it with a KeyError naming a column
            raise ValueError(f"the {' and '.join(empty)} split got no rows of the {sum(counts.values())}: a row's "
                             "content picks its split, so copies of a few distinct rows can all fall in one")
        payload = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if payload:
            examples_utils.set_payload_format(artifact, payload)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        if file_format:
            examples_utils.set_file_format(artifact, to_file_format_str(file_format))


def csv_example_gen(input_base: str, input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output,
                    range_config: range_config_pb2.RangeConfig = None) -> FileBasedExampleGen:
    """Drop-in for TFX's CsvExampleGen (same id, driver, spans, fingerprints and outputs)."""
    return FileBasedExampleGen(
        input_base=input_base, input_config=input_config, output_config=output_config, range_config=range_config,
        custom_executor_spec=executor_spec.ExecutorClassSpec(CsvExamplesExecutor),
    ).with_id("CsvExampleGen")
