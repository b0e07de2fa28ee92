"""Reading a user's table as a stream of Arrow record batches, whatever wrote it: a CSV in UTF-8
with or without a byte-order mark, quoted fields with delimiters and line breaks, `,` `;` tab or `|`
(sniffed), CRLF, gzip (`.gz`), a folder of CSV parts sharing one header, or Parquet. Every column
arrives as text under its feature key (``columns.ColumnMap``); nothing is loaded whole.
"""
import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pyarrow as pa

from pipelines.inputs.column_kinds import ColumnMap, InputDataError
from serving.codec.columns import sniff_delimiter

BLOCK_BYTES = 2 << 20  # Arrow's CSV block: the unit of streaming and of memory (a row must fit in one)
CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class TableSource:
    """Where a table is and how to read it (decided by ``open_table``)."""
    path: Path
    files: Tuple[Path, ...]
    format: str  # csv | parquet
    delimiter: str
    encoding: str
    columns: ColumnMap

    @property
    def describe(self) -> str:
        parts = f" ({len(self.files)} parts)" if len(self.files) > 1 else ""
        if self.format == "parquet":
            return f"Parquet{parts}"
        shown = {"\t": "tab", ",": "comma"}.get(self.delimiter, repr(self.delimiter))
        return f"CSV{parts}, {shown}-delimited, {self.encoding}"


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _text(path: Path, encoding: str) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if _is_gzip(path) else path.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig" if encoding.lower().replace("-", "") == "utf8" else encoding,
                            newline="")


def _files(path: Path) -> Tuple[Path, ...]:
    if not path.exists():
        raise InputDataError(f"data file not found: {path}")
    if path.is_file():
        return (path,)
    suffixes = CSV_SUFFIXES + PARQUET_SUFFIXES
    parts = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))
    if not parts:
        raise InputDataError(f"{path}: a folder with no CSV or Parquet files")
    if len({_is_parquet(p) for p in parts}) > 1:
        raise InputDataError(f"{path}: mixes CSV and Parquet files; give one kind")
    return tuple(parts)


def _head(path: Path, encoding: str) -> str:
    try:
        with (gzip.open(path, "rb") if _is_gzip(path) else path.open("rb")) as raw:
            if b"\0" in raw.read(64 * 1024) and not encoding.lower().startswith("utf-16"):
                raise InputDataError(f"{path}: not a CSV file (binary content)")
        with _text(path, encoding) as f:
            return f.read(64 * 1024)
    except UnicodeDecodeError as e:
        raise InputDataError(f"{path}: not readable as {encoding} (byte {e.start}: {e.reason}); give the file's "
                             f"encoding with --encoding, e.g. --encoding latin-1") from None
    except (OSError, EOFError) as e:
        raise InputDataError(f"{path}: cannot be read ({e})") from None


def _sniff(path: Path, sample: str) -> str:
    if "\0" in sample:
        raise InputDataError(f"{path}: not a CSV file (binary content)")
    if not sample.strip():
        raise InputDataError(f"{path}: the CSV is empty (no header, no rows)")
    return sniff_delimiter(sample)


def _csv_header(path: Path, sample: str, delimiter: str) -> List[str]:
    try:
        header = next(csv.reader(io.StringIO(sample), delimiter=delimiter))
    except (StopIteration, csv.Error) as e:
        raise InputDataError(f"{path}: no readable header row ({e})") from None
    return [h.strip() for h in header]


def open_table(path: Path, delimiter: Optional[str] = None, encoding: str = "utf-8") -> TableSource:
    """Finds the files, the format, the delimiter and the header; one clear line when it cannot."""
    path = Path(path)
    files = _files(path)
    if _is_parquet(files[0]):
        import pyarrow.parquet as pq

        try:
            names = [pq.ParquetFile(f).schema_arrow.names for f in files]
        except (pa.ArrowInvalid, OSError) as e:
            raise InputDataError(f"{path}: not a readable Parquet file ({e})") from None
        if any(n != names[0] for n in names):
            raise InputDataError(f"{path}: its Parquet parts have different columns")
        return TableSource(path, files, "parquet", "", "", ColumnMap.of(names[0]))
    headers = []
    for f in files:
        sample = _head(f, encoding)
        chosen = delimiter or _sniff(f, sample)
        headers.append((chosen, _csv_header(f, sample, chosen)))
    chosen, header = headers[0]
    for f, (_, other) in zip(files[1:], headers[1:]):
        if other != header:
            raise InputDataError(f"{f}: its header differs from {files[0].name}'s (parts must share one header)")
    if len(header) < 2:
        raise InputDataError(f"{files[0]}: found {len(header)} column with delimiter {chosen!r}; "
                             f"give the delimiter with --delimiter")
    return TableSource(path, files, "csv", chosen, encoding, ColumnMap.of(header))


def release_memory_promptly() -> None:
    """Arrow's jemalloc pool keeps freed blocks for a while; a streaming pass returns them at once,
    so its peak memory stays that of a few blocks."""
    try:
        pa.jemalloc_set_decay_ms(0)
    except (NotImplementedError, pa.ArrowNotImplementedError):  # a build without jemalloc
        pass


def batches(source: TableSource) -> Iterator[Tuple[int, pa.RecordBatch]]:
    """(first data line of the batch, batch): every column as text under its key, in file order."""
    release_memory_promptly()
    if source.format == "parquet":
        yield from _parquet_batches(source)
        return
    import pyarrow.csv as pcsv

    keys = list(source.columns.keys)
    for f in source.files:
        line = 2
        stream = pa.input_stream(str(f), compression="gzip" if _is_gzip(f) else None)
        try:
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(column_names=keys, skip_rows=1, block_size=BLOCK_BYTES,
                                              encoding=source.encoding),
                parse_options=pcsv.ParseOptions(delimiter=source.delimiter, newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(column_types={k: pa.string() for k in keys},
                                                    strings_can_be_null=False, quoted_strings_can_be_null=False))
            for batch in reader:
                yield line, batch
                line += batch.num_rows
        except pa.ArrowInvalid as e:
            raise InputDataError(_parse_error(f, source, str(e))) from None


def _parse_error(path: Path, source: TableSource, message: str) -> str:
    """Arrow's parse errors name no line: find the first ragged row with Python's csv module."""
    width = len(source.columns.keys)
    with _text(path, source.encoding) as f:
        reader = csv.reader(f, delimiter=source.delimiter)
        next(reader, None)
        start = reader.line_num + 1  # where the next record begins: a quoted value may hold line breaks
        try:
            for row in reader:
                if row and len(row) != width and any(cell.strip() for cell in row):
                    if reader.line_num > start:  # an unclosed quote swallows the lines after it
                        return (f"{path}: line {start} has a value whose quote runs on to line {reader.line_num} "
                                f"(the record then has {len(row)} fields, the header has {width}): close the quote")
                    return f"{path}: line {reader.line_num} has {len(row)} fields, the header has {width}"
                start = reader.line_num + 1
        except csv.Error:  # the file ends inside a quote
            return f"{path}: line {start} opens a quote that is never closed"
    return f"{path}: not readable as CSV ({message.splitlines()[0]})"


def _parquet_batches(source: TableSource) -> Iterator[Tuple[int, pa.RecordBatch]]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    keys = list(source.columns.keys)
    line = 1
    for f in source.files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=65536):
            arrays = []
            for column in batch.columns:
                if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
                    text = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S" if pa.types.is_timestamp(column.type)
                                       else "%Y-%m-%d")
                elif pa.types.is_boolean(column.type):
                    text = pc.if_else(column, "true", "false")
                else:
                    text = pc.cast(column, pa.string())
                arrays.append(pc.fill_null(text, ""))
            yield line, pa.RecordBatch.from_arrays(arrays, names=keys)
            line += batch.num_rows
