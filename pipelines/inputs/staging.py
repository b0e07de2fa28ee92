"""The staged copy of a user's table: what CsvExampleGen (components/csv_examples.py) reads. One comma-delimited UTF-8
CSV with the feature keys as header, only the kept columns, missing-value tokens as empty cells,
rows without a label left out, boolean labels as 1/0, and line breaks inside text fields turned
into spaces (CsvExampleGen reads one record per line). Values are otherwise the user's own: the
Transform graph does the rest, so the served model takes the same raw values.

Written as a stream; an unchanged copy keeps its file and mtime (TFX's input fingerprint, so the
cache holds).
"""
import hashlib
import os
from pathlib import Path
from typing import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pipelines.inputs import column_kinds as col


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stage(source, target: Path, keep: Sequence[str], kinds: Mapping[str, str], labels: Sequence[str],
          na_values: Sequence[str] = ()) -> Path:
    """Writes ``target`` from a ``tables.TableSource``: columns ``keep`` (keys, in order)."""
    from pipelines.inputs.tables import batches

    na_set = pa.array(sorted(set(col.NA_TOKENS) | set(na_values)), pa.string())
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    writer = None
    try:
        for _, batch in batches(source):
            arrays, keep_rows = [], None
            for key in keep:
                text = pc.utf8_trim_whitespace(batch.column(key))
                missing = pc.is_in(text, value_set=na_set)
                if key in labels:
                    present = pc.invert(missing)
                    keep_rows = present if keep_rows is None else pc.and_(keep_rows, present)
                arrays.append(_cell_values(pc.if_else(missing, pa.scalar(None, pa.string()), text),
                                           kinds.get(key, col.STRING), key in labels))
            table = pa.Table.from_arrays(arrays, names=list(keep))
            if keep_rows is not None:
                table = table.filter(keep_rows)
            if writer is None:  # TFX reads the header by splitting on commas: it must not be quoted
                sink = pa.OSFile(str(partial), "wb")
                sink.write(",".join(keep).encode() + b"\n")
                writer = pcsv.CSVWriter(sink, table.schema, write_options=pcsv.WriteOptions(include_header=False))
            writer.write_table(table)
        if writer is None:
            raise ValueError(f"{source.path}: no rows to stage")
    finally:
        if writer is not None:
            writer.close()
            sink.close()
    if target.exists() and _digest(target) == _digest(partial):
        partial.unlink()
    else:
        partial.replace(target)
    return target


def _cell_values(values: pa.Array, kind: str, is_label: bool) -> pa.Array:
    if kind == col.INTEGER:
        return pc.cast(values, pa.int64())
    if kind == col.NUMERIC:
        return pc.cast(values, pa.float64())
    if kind == col.BOOLEAN and is_label:
        lowered = pc.utf8_lower(values)
        return pc.if_else(pc.is_in(lowered, value_set=pa.array(col.TRUE_TOKENS)), 1,
                          pc.if_else(pc.is_in(lowered, value_set=pa.array(col.FALSE_TOKENS)), 0,
                                     pa.scalar(None, pa.int64())))
    return pc.replace_substring_regex(values, pattern=r"[\r\n]+", replacement=" ")
