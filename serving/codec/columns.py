"""A model's column names: the user's original names (``Malic Acid``) beside the feature keys the
signatures take (``malic_acid``), shipped in the SavedModel's ``assets.extra`` (TF Serving ignores
it). Servers, clients and the edge runtime accept either name; columns the model left out (an
identifier, a constant) are dropped from a request instead of refused."""
import csv
import datetime
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from serving.codec.model_extras import read_extra, write_extra
from serving.codec.periods import FORMAT_SHOWN

COLUMNS_FILE = "mlops_columns.json"  # in assets.extra/

# How users' tables spell missing, true and false (staging, the Transform graph and the edge host agree)
# \N: MySQL's and PostgreSQL's NULL in a text export (SELECT ... INTO OUTFILE, COPY); #N/A: a spreadsheet's
NA_TOKENS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?", "-", "\\N", "#N/A")
TRUE_TOKENS, FALSE_TOKENS = ("true", "t", "yes", "y"), ("false", "f", "no", "n")
# Date-time parts the Transform computes of a date-time column, and the patterns it reads them with
DATE_PARTS = ("year", "month", "day_of_week", "day_of_year", "hour")
YMD_PATTERN = r"^(\d{4})[-/](\d{2})[-/](\d{2})(?:[ T](\d{2}))?.*$"  # iso and ymd_slash: groups y, m, d, h
MDY_PATTERN = r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}))?.*$"  # mdy_slash: groups m, d, y, h


DELIMITERS = ",;\t|"  # what users' CSVs are delimited with


@contextmanager
def csv_dict_reader(path: Union[str, Path]) -> Iterator[csv.DictReader]:
    """A user's CSV as dict rows: a byte-order mark or not, its delimiter sniffed (``sniff_delimiter``)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        delimiter = sniff_delimiter(f.read(64 * 1024))
        f.seek(0)
        yield csv.DictReader(f, delimiter=delimiter)


def sniff_delimiter(sample: str) -> str:
    """The delimiter among , ; tab | of a CSV's first lines: the sniffer's, else the one the header
    holds most of, else a comma."""
    lines = [line for line in sample.splitlines() if line.strip()][:50]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


TABLE_SUFFIXES = (".csv", ".tsv", ".tab")  # a delimited table's file names: any of , ; tab | (sniff_delimiter)
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_missing_text(value: Any, na_tokens: Sequence[str] = NA_TOKENS) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return str(value).strip() in na_tokens


def boolean_text(value: Any) -> str:
    """yes/no, y/n, t/f, true/false in any case -> "true"/"false"; anything else "" (missing)."""
    text = str(value).strip().lower() if value is not None else ""
    return "true" if text in TRUE_TOKENS else "false" if text in FALSE_TOKENS else ""


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (proleptic Gregorian), the Transform graph's arithmetic."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _moment(value: Any, date_format: str) -> Optional[Tuple[int, int, int, int]]:
    """(year, month, day, hour) of a raw date-time cell as the Transform graph reads it, or None when
    missing, not in the format, or no real day and hour (2014-13-45, 2014-02-29 25:00)."""
    if is_missing_text(value):
        return None
    if date_format == "unix":
        try:
            moment = datetime.datetime.fromtimestamp(float(value), tz=datetime.timezone.utc)
        except (TypeError, ValueError, OverflowError, OSError):
            return None
        return moment.year, moment.month, moment.day, moment.hour
    match = re.match(MDY_PATTERN if date_format == "mdy_slash" else YMD_PATTERN, str(value).strip())
    if not match:
        return None
    groups = match.groups()
    first, second, third = int(groups[0]), int(groups[1]), int(groups[2])
    hour = int(groups[3]) if groups[3] else 0
    moment = (third, first, second, hour) if date_format == "mdy_slash" else (first, second, third, hour)
    try:
        datetime.date(*moment[:3])
    except ValueError:
        return None
    return moment if hour <= 23 else None


def date_parts(value: Any, date_format: str) -> Optional[Dict[str, float]]:
    """The parts the Transform graph computes of one raw cell, or None when missing/unreadable."""
    moment = _moment(value, date_format)
    if moment is None:
        return None
    year, month, day, hour = moment
    days = days_from_civil(year, month, day)
    return {"year": float(year), "month": float(month), "day_of_week": float((days + 3) % 7),
            "day_of_year": float(days - days_from_civil(year, 1, 1) + 1), "hour": float(hour)}


def unreadable(value: Any, kind: str, date_format: str = "") -> bool:
    """Whether a served cell of a date-time or boolean column is neither missing nor what its kind
    reads: a date-time that is no real day and hour in its format, a boolean none of the yes/no
    tokens. Training reads such a cell as missing; a request that sends one means something else."""
    if is_missing_text(value):
        return False
    if kind == "boolean":
        return not boolean_text(value)
    if kind != "datetime" or date_format == "unix":  # Unix seconds arrive as numbers, checked as numbers
        return False
    return _moment(value, date_format) is None


@dataclass(frozen=True)
class ColumnNames:
    keys: Mapping[str, str] = field(default_factory=dict)  # original name -> key
    left_out: Mapping[str, str] = field(default_factory=dict)  # key -> why it is not a model input
    labels: Sequence[str] = ()
    kinds: Mapping[str, str] = field(default_factory=dict)  # key -> numeric|integer|boolean|datetime|string
    date_formats: Mapping[str, str] = field(default_factory=dict)  # datetime key -> its format
    classes: Mapping[str, Sequence[str]] = field(default_factory=dict)  # a class label's key -> classes, score order

    def key(self, name: str) -> str:
        return self.keys.get(name, name)

    def name_of(self, key: str) -> str:
        """A key's original column name (the key itself when it has none)."""
        return next((name for name, k in self.keys.items() if k == key), key)

    def dropped(self, name: str) -> bool:
        key = self.key(name)
        return key in self.left_out or key in self.labels

    def refusal(self, key: str, text: Any) -> str:
        """Why a served cell of a date-time or boolean column is refused ('' when it reads): training
        read such a cell as missing, and a request that sends one means something else."""
        kind, date_format = self.kinds.get(key), self.date_formats.get(key, "iso")
        if not unreadable(text, kind, date_format):
            return ""
        reads = (f"a date as {FORMAT_SHOWN[date_format]}" if kind == "datetime" else
                 "a yes/no value (true/false, yes/no, t/f, y/n, any case)")
        return f"is not {reads}; send it empty or null-like (NA) for a missing value"

    def rename(self, row: Mapping[str, Any]) -> Dict[str, Any]:
        """A row (or columns) keyed by original names or keys -> keyed by keys; left-out columns
        and labels dropped. Without a mapping (not a user table) the row is returned as it is."""
        if not self.keys:
            return dict(row)
        return {self.key(name): value for name, value in row.items() if not self.dropped(name)}

    def rename_document(self, document: Mapping[str, Any]) -> Mapping[str, Any]:
        """A TF Serving REST predict body with its ``instances`` rows or ``inputs`` renamed."""
        if not self.keys:
            return document
        renamed = dict(document)
        if isinstance(document.get("instances"), list):
            renamed["instances"] = [self.rename(row) if isinstance(row, dict) else row
                                    for row in document["instances"]]
        if isinstance(document.get("inputs"), dict):
            renamed["inputs"] = self.rename(document["inputs"])
        return renamed

    def as_json(self) -> Dict[str, Any]:
        return {"columns": [{"name": n, "key": k, "kind": self.kinds.get(k, ""),
                             **({"format": self.date_formats[k]} if k in self.date_formats else {})}
                            for n, k in self.keys.items()],
                "left_out": dict(self.left_out), "labels": list(self.labels),
                **({"classes": {k: list(v) for k, v in self.classes.items()}} if self.classes else {})}

    def scores_note(self) -> str:
        """What a single-label classifier's predictions are, in words ("" otherwise): a sigmoid's one
        score is the probability of its second class; a softmax's scores come in class order."""
        if len(self.labels) != 1 or self.labels[0] not in self.classes:
            return ""
        label = {k: n for n, k in self.keys.items()}.get(self.labels[0], self.labels[0])
        classes = self.classes[self.labels[0]]
        if len(classes) == 2:
            return f"each score is the probability that {label} is {classes[1]!r} (not {classes[0]!r})"
        return f"the scores are the probabilities of {label}'s classes, in this order: {', '.join(map(repr, classes))}"


NO_COLUMNS = ColumnNames()


def write_columns(model_dir: str, names: Sequence[Sequence[str]], left_out: Mapping[str, str],
                  labels: Sequence[str], columns: Mapping[str, Mapping[str, str]],
                  classes: Optional[Mapping[str, Sequence[str]]] = None) -> Path:
    """``names``: (original name, key) pairs in the table's order; ``columns``: key -> kind, format;
    ``classes``: a class label's key -> its class names in the order of the model's scores."""
    names_map = ColumnNames({n: k for n, k in names}, dict(left_out), list(labels),
                            {k: c["kind"] for k, c in columns.items()},
                            {k: c["format"] for k, c in columns.items() if c.get("format")}, dict(classes or {}))
    return write_extra(model_dir, COLUMNS_FILE, names_map.as_json())


def read_columns(model_dir) -> ColumnNames:
    return parse(read_extra(model_dir, COLUMNS_FILE))


def parse(document: Optional[Mapping[str, Any]]) -> ColumnNames:
    if not document:
        return NO_COLUMNS
    columns: List[Mapping[str, str]] = document.get("columns", [])
    return ColumnNames({c["name"]: c["key"] for c in columns}, dict(document.get("left_out", {})),
                       tuple(document.get("labels", ())), {c["key"]: c.get("kind", "") for c in columns},
                       {c["key"]: c["format"] for c in columns if c.get("format")},
                       {k: tuple(v) for k, v in document.get("classes", {}).items()})
