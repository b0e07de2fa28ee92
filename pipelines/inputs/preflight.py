"""Checks a table before any pipeline runs, in one streaming pass (constant memory), so bad
input fails in seconds with a one-line error naming the file, line and column, and nothing already
stored is touched. No TensorFlow import here.

Exact and cheap per row: field counts, labels present, numbers that are not numbers, distinct
values (capped). Kinds and roles (number, boolean, date-time, text; identifier, constant) are
decided on a sample: the first rows plus a random sample of the rest. Deeper checks stay TFDV's.
"""
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from components.tasks import TaskSpec, get_task
from pipelines.inputs import column_kinds as col
from pipelines.inputs.column_kinds import ColumnKind, ColumnMap, InputDataError

__all__ = ["InputDataError", "MIN_ROWS", "ProfileOptions", "TargetProfile", "ColumnProfile", "DataProfile",
           "profile_csv", "profile_source", "profile_table"]

MIN_ROWS = 20  # fewer leave the hash-split eval set empty or meaningless
MAX_CLASS_SHARE = 5  # a multiclass label has at most one class per this many rows
HEAD_SAMPLE = 20_000  # rows kept whole for kind and role inference ...
RANDOM_SAMPLE = 20_000  # ... plus a uniform sample of the rest
DISTINCT_CAP = 1_000  # distinct values tracked exactly per column (labels: LABEL_DISTINCT_CAP)
LABEL_DISTINCT_CAP = 100_000
SLICE_MAX_VALUES = 20  # text columns with more distinct values are not evaluation slices
DEFAULT_SLICE_COLUMNS = 4  # slice columns chosen when the user names none (each costs TFMA a pass per value)
NUMBER = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
WHOLE = r"^[-+]?\d+$"

# roles
FEATURE, LABEL, IDENTIFIER, CONSTANT, EMPTY, DROPPED = "feature", "label", "identifier", "constant", "empty", "dropped"


@dataclass(frozen=True)
class ProfileOptions:
    """The user's column choices (original names or keys) and the schema's word on kinds."""
    na_values: Tuple[str, ...] = ()
    drop: Tuple[str, ...] = ()
    features: Tuple[str, ...] = ()  # when given: only these are features
    categorical: Tuple[str, ...] = ()  # integer columns read as categories
    datetime: Tuple[str, ...] = ()  # forced date-time columns (including Unix seconds)
    text: Tuple[str, ...] = ()  # forced free-text columns (--text)
    schema_kinds: Mapping[str, str] = field(default_factory=dict)  # key -> numeric | string (curated schema)
    head_tasks: Tuple[str, ...] = ()  # multitask: each label's task (--label A:TASK,B:TASK), checked as such


@dataclass(frozen=True)
class TargetProfile:
    values: Tuple[str, ...]  # distinct label values, most frequent first (classification)
    majority_share: float
    std: float  # regression
    kind: str = col.STRING
    distinct: int = 0


@dataclass(frozen=True)
class ColumnProfile:
    key: str
    name: str
    kind: ColumnKind
    role: str
    reason: str = ""
    present: int = 0
    distinct: int = 0  # exact up to DISTINCT_CAP (then DISTINCT_CAP + 1)


@dataclass(frozen=True)
class DataProfile:
    path: Path
    rows: int  # data rows read
    targets: Mapping[str, TargetProfile]  # label key -> its profile
    columns: Tuple[ColumnProfile, ...] = ()
    column_map: Optional[ColumnMap] = None
    label_missing: int = 0  # rows left out because a label was missing
    task: str = ""
    task_reason: str = ""
    source: str = ""  # how the file was read

    def _keys(self, *kinds: str) -> Tuple[str, ...]:
        return tuple(c.key for c in self.columns if c.role == FEATURE and c.kind.kind in kinds)

    @property
    def numeric(self) -> Tuple[str, ...]:
        return self._keys(col.NUMERIC, col.INTEGER)

    @property
    def strings(self) -> Tuple[str, ...]:
        """Categorical features: text and booleans."""
        return self._keys(col.STRING, col.BOOLEAN)

    @property
    def features(self) -> Tuple[str, ...]:
        return tuple(c.key for c in self.columns if c.role == FEATURE)

    @property
    def slice_features(self) -> Tuple[str, ...]:
        """Categorical features with few enough values to evaluate each one as a slice."""
        return tuple(c.key for c in self.columns if c.role == FEATURE and c.kind.kind in (col.STRING, col.BOOLEAN)
                     and c.distinct <= SLICE_MAX_VALUES)

    def slices(self, named: Optional[Sequence[str]] = None) -> Tuple[str, ...]:
        """The Evaluator's slice columns: those named (``--slice``; original names or keys), else the
        ``DEFAULT_SLICE_COLUMNS`` categorical features with the fewest values. Every slice column adds
        a metrics pass per value to TFMA (a generated 2,930 x 74 table: Evaluator 79 s with 4, 89 s
        with all 32); the user, not the table's width, decides how many."""
        if named is None:
            by_values = sorted(self.slice_features, key=lambda k: (self.column(k).distinct, self.features.index(k)))
            return tuple(by_values[:DEFAULT_SLICE_COLUMNS])
        keys = _resolve(self.path, named, self.column_map, "--slice")
        for key in keys:
            column = self.column(key)
            if column.role != FEATURE:
                raise InputDataError(f"{self.path}: --slice column '{column.name}' is not a feature ({column.role}"
                                     f"{': ' + column.reason if column.reason else ''})")
            if column.kind.kind not in (col.STRING, col.BOOLEAN, col.INTEGER) or column.distinct > SLICE_MAX_VALUES:
                raise InputDataError(f"{self.path}: --slice column '{column.name}' has more than {SLICE_MAX_VALUES} "
                                     "distinct values or is continuous; slices are categories (text, boolean or "
                                     f"integer columns of at most {SLICE_MAX_VALUES} values)")
        return tuple(dict.fromkeys(keys))

    def column(self, key: str) -> "ColumnProfile":
        return next(c for c in self.columns if c.key == key)

    @property
    def left_out(self) -> Tuple[ColumnProfile, ...]:
        return tuple(c for c in self.columns if c.role not in (FEATURE, LABEL))


class _ColumnStats:
    """What one pass learns of a column: counts, capped distinct values, the first non-number."""

    def __init__(self, cap: int):
        self.present = 0
        self.non_numbers = 0
        self.first_bad: Optional[Tuple[int, str]] = None
        self.all_whole = True
        self.values: Dict[str, int] = {}
        self.cap = cap
        self.overflow = False
        self.total = self.total_squares = 0.0  # of the numbers, while every value is one
        self.low, self.high = math.inf, -math.inf

    def add(self, line: int, text: pa.Array, missing: pa.Array) -> None:
        present = pc.filter(text, pc.invert(missing))
        self.present += len(present)
        if not len(present):
            return
        number = pc.match_substring_regex(present, NUMBER)
        bad = int(pc.sum(pc.invert(number)).as_py() or 0)
        if bad:
            if self.first_bad is None:
                flags = pc.and_(pc.invert(missing), pc.invert(pc.match_substring_regex(text, NUMBER)))
                index = pc.index(flags, True).as_py()
                self.first_bad = (line + index, text[index].as_py())
            self.non_numbers += bad
        else:
            numbers = pc.cast(present, pa.float64())
            self.total += pc.sum(numbers).as_py()
            self.total_squares += pc.sum(pc.multiply(numbers, numbers)).as_py()
            bounds = pc.min_max(numbers)
            self.low, self.high = min(self.low, bounds["min"].as_py()), max(self.high, bounds["max"].as_py())
            if self.all_whole:
                self.all_whole = bool(pc.all(pc.match_substring_regex(present, WHOLE)).as_py())
        if not self.overflow:
            counts = pc.value_counts(present)
            for value, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
                self.values[value] = self.values.get(value, 0) + count
            if len(self.values) > self.cap:
                self.overflow = True

    @property
    def distinct(self) -> int:
        return self.cap + 1 if self.overflow else len(self.values)

    def is_row_number(self, rows: int, unique: bool) -> bool:
        """0..n-1 or 1..n, each once, on every row (in any order)."""
        return (unique and self.present == rows >= 20 and not self.non_numbers and self.all_whole
                and self.low in (0, 1) and self.high - self.low + 1 == rows)


def _resolve(path, names: Iterable[str], columns: ColumnMap, flag: str) -> Tuple[str, ...]:
    keys = []
    for name in names:
        key = columns.key(name)
        if key is None:
            raise InputDataError(f"{path}: {flag} column '{name}' not found; columns: {', '.join(columns.names)}")
        keys.append(key)
    return tuple(keys)


def profile_source(source, labels: Sequence[str], task_name: Optional[str] = None,
                   options: ProfileOptions = ProfileOptions()) -> DataProfile:
    """Profiles a ``tables.TableSource`` for the label columns (original names or keys)."""
    from pipelines.inputs.tables import batches

    return profile_batches(source.path, source.columns, batches(source), labels, task_name, options,
                           source.describe)


def profile_table(path: Path, header: List[str], rows: List[List[str]], targets: Sequence[Tuple[str, TaskSpec]],
                  schema_kinds: Optional[Dict[str, str]] = None) -> DataProfile:
    """A table already in memory (cells as CSV text), e.g. a built-in use case's."""
    columns = ColumnMap.of(header)
    for row_number, row in enumerate(rows):
        if len(row) != len(header):
            raise InputDataError(f"{path}: line {row_number + 2} has {len(row)} fields, the header has {len(header)}")
    arrays = [pa.array([str(row[i]) for row in rows], pa.string()) for i in range(len(header))]
    batch = pa.RecordBatch.from_arrays(arrays, names=list(columns.keys))
    labels = [label for label, _ in targets]
    task = targets[0][1].name if len(targets) == 1 else "multitask"
    return profile_batches(path, columns, iter([(2, batch)]), labels, task,
                           ProfileOptions(schema_kinds=schema_kinds or {}))


def profile_csv(path: Path, targets: Sequence[Tuple[str, TaskSpec]],
                schema_kinds: Optional[Dict[str, str]] = None, **table_options) -> DataProfile:
    """A CSV (or Parquet, a folder of parts) for its (label, task) pairs."""
    from pipelines.inputs.tables import open_table

    labels = [label for label, _ in targets]
    tasks = {task.name for _, task in targets}
    task = next(iter(tasks)) if len(targets) == 1 else "multitask"
    return profile_source(open_table(Path(path), **table_options), labels, task,
                          ProfileOptions(schema_kinds=schema_kinds or {}))


@dataclass
class _Scan:
    """What the one pass over the rows gathered."""
    stats: Dict[str, "_ColumnStats"]
    sample: Dict[str, List[Tuple[pa.Array, pa.Array]]]  # key -> (lines, values) of the sampled present cells
    label_missing: Dict[str, int]
    first_missing: Dict[str, int]  # label key -> the first line it is missing on
    any_label_missing: int = 0  # rows missing any label
    rows: int = 0
    distinct: Set[str] = field(default_factory=set)  # distinct rows' contents, up to MIN_ROWS of them


def _scan(stream: Iterator[Tuple[int, pa.RecordBatch]], columns: ColumnMap, label_keys: Sequence[str],
          na_values: Sequence[str]) -> _Scan:
    na_set = pa.array(sorted(set(col.NA_TOKENS) | set(na_values)), pa.string())
    scan = _Scan({key: _ColumnStats(LABEL_DISTINCT_CAP if key in label_keys else DISTINCT_CAP) for key in columns.keys},
                 {key: [] for key in columns.keys}, {key: 0 for key in label_keys}, {})
    rng, seen = random.Random(0), 0
    for line, batch in stream:
        trimmed = {key: pc.utf8_trim_whitespace(batch.column(key)) for key in columns.keys}
        missing = {key: pc.is_in(trimmed[key], value_set=na_set) for key in columns.keys}
        for key in columns.keys:
            scan.stats[key].add(line, trimmed[key], missing[key])
        row_missing = None
        for key in label_keys:
            count = int(pc.sum(missing[key]).as_py() or 0)
            if count:
                scan.label_missing[key] += count
                scan.first_missing.setdefault(key, line + pc.index(missing[key], True).as_py())
            row_missing = missing[key] if row_missing is None else pc.or_(row_missing, missing[key])
        scan.any_label_missing += int(pc.sum(row_missing).as_py() or 0) if row_missing is not None else 0
        scan.rows += batch.num_rows
        if len(scan.distinct) < MIN_ROWS:
            scan.distinct.update(_row_contents(trimmed, columns.keys))
        picks = _sample_rows(batch.num_rows, seen, rng)
        seen += batch.num_rows
        if picks:  # kept as Arrow arrays (compact); Python strings only for the columns inference reads
            indices = pa.array(picks, pa.int64())
            lines = pc.add(indices, line)
            for key in columns.keys:
                present = pc.invert(pc.take(missing[key], indices))
                scan.sample[key].append((pc.filter(lines, present),
                                         pc.filter(pc.take(trimmed[key], indices), present)))
    return scan


def _row_contents(cells: Mapping[str, pa.Array], keys: Sequence[str]) -> Set[str]:
    """The batch's distinct rows, each as its cells joined (a separator no CSV cell holds)."""
    joined = pc.binary_join_element_wise(*(pc.fill_null(cells[k], "") for k in keys), "\x1f")
    return set(pc.unique(joined).to_pylist())


def _check_rows(path: Path, columns: ColumnMap, scan: _Scan, label_keys: Sequence[str]) -> None:
    if scan.rows == 0:
        raise InputDataError(f"{path}: the CSV has a header but no data rows")
    for key in label_keys:
        if scan.label_missing[key] * 2 > scan.rows:
            raise InputDataError(f"{path}: label column '{columns.name(key)}' is empty on {scan.label_missing[key]} "
                                 f"of {scan.rows} rows (first on line {scan.first_missing[key]}); more than half have "
                                 "no label")
    kept = scan.rows - scan.any_label_missing
    if kept < MIN_ROWS:
        raise InputDataError(f"{path}: {kept} data rows{' with a label' if scan.any_label_missing else ''}; at "
                             f"least {MIN_ROWS} are needed to train and evaluate")


def _refuse_clashes(path: Path, columns: ColumnMap, label_keys: Sequence[str], named: Dict[str, Set[str]]) -> None:
    """A label named by --text or --drop, a column --text names beside --drop or --categorical, or one
    --text, --categorical or --datetime names that --features leaves out: one line."""
    for flag in ("--text", "--drop"):
        for key in sorted(named[flag] & set(label_keys)):
            raise InputDataError(f"{path}: {flag} names '{columns.name(key)}', the label; a label is neither a "
                                 "feature nor dropped")
    for flag in ("--drop", "--categorical"):
        for key in sorted(named["--text"] & named[flag]):
            raise InputDataError(f"{path}: --text and {flag} both name '{columns.name(key)}'; keep one")
    if named["--features"]:  # how a column is read matters only if it is read
        for flag in ("--text", "--categorical", "--datetime"):
            for key in sorted(named[flag] - named["--features"] - set(label_keys)):
                raise InputDataError(f"{path}: {flag} names '{columns.name(key)}', which --features leaves out; "
                                     "add it to --features or leave it out of " + flag)


def _column_profiles(path: Path, columns: ColumnMap, scan: _Scan, label_keys: Sequence[str],
                     options: ProfileOptions) -> List[ColumnProfile]:
    """Each column's kind and role, from its statistics, its sample and the user's options."""
    forced_datetime = set(_resolve(path, options.datetime, columns, "--datetime"))
    categorical = set(_resolve(path, options.categorical, columns, "--categorical"))
    dropped = set(_resolve(path, options.drop, columns, "--drop"))
    chosen = set(_resolve(path, options.features, columns, "--features"))
    forced_text = set(_resolve(path, options.text, columns, "--text"))
    _refuse_clashes(path, columns, label_keys, {"--text": forced_text, "--drop": dropped, "--categorical": categorical,
                                                "--features": chosen, "--datetime": forced_datetime})
    profiles, separated = [], []
    for key, name in zip(columns.keys, columns.names):
        cells, stats = _Sample(scan.sample.pop(key)), scan.stats[key]
        left_out = bool(_left_out_by_user(key, label_keys, dropped, chosen))
        if key in categorical or left_out:  # the user's word: its cells need not read as numbers or dates
            kind = ColumnKind(col.STRING)
        else:
            kind = _kind(path, name, key, stats, cells, key in forced_datetime, options.schema_kinds.get(key),
                         key in forced_text)
            written = col.separated_number(cells.cells()) if kind.kind == col.STRING and key not in forced_text \
                else None
            if written:
                separated.append((name, written, key in label_keys))
        if key in forced_text and kind.kind in (col.NUMERIC, col.INTEGER):
            raise InputDataError(f"{path}: --text '{name}': its values are numbers, not words (--categorical reads "
                                 "codes as categories)")
        if key not in label_keys and not left_out and (key in forced_text or (kind.kind == col.STRING
                                                                              and key not in categorical)):
            kind = _text_kind(kind, cells, key in forced_text)
        role, reason = _role(key, kind, stats, cells, label_keys, dropped, chosen,
                             key in forced_datetime or key in forced_text, key in categorical, scan.rows)
        profiles.append(ColumnProfile(key, name, kind, role, reason, stats.present, stats.distinct))
    _refuse_separated_numbers(path, separated)
    if not any(p.role == FEATURE for p in profiles):
        raise InputDataError(f"{path}: no feature columns besides the label(s) "
                             f"{', '.join(columns.name(k) for k in label_keys)}")
    return profiles


def profile_batches(path: Path, columns: ColumnMap, stream: Iterator[Tuple[int, pa.RecordBatch]],
                    labels: Sequence[str], task_name: Optional[str], options: ProfileOptions,
                    source: str = "") -> DataProfile:
    """The one pass: ``stream`` yields (first line number, batch of text columns under their keys)."""
    label_keys = _resolve(path, labels, columns, "label")
    if len(set(label_keys)) != len(label_keys):
        raise InputDataError(f"{path}: a label column is named twice: {', '.join(labels)}")
    scan = _scan(stream, columns, label_keys, options.na_values)
    _check_rows(path, columns, scan, label_keys)
    profiles = _column_profiles(path, columns, scan, label_keys, options)
    kinds = {p.key: p.kind for p in profiles}
    task, why = _task(path, columns, label_keys, kinds, scan.stats, task_name)
    subtasks = [task] if len(label_keys) == 1 else (["binary"] * len(label_keys) if task == "multilabel" else
                                                    list(options.head_tasks))
    targets = {}
    for i, key in enumerate(label_keys):
        subtask = subtasks[i] if subtasks else None
        targets[key] = _profile_target(path, columns.name(key), get_task(subtask) if subtask else None, kinds[key],
                                       scan.stats[key])
    if len(scan.distinct) < MIN_ROWS:  # after the checks that name a column: they say more
        raise InputDataError(f"{path}: its {scan.rows} rows hold {len(scan.distinct)} distinct ones; at least "
                             f"{MIN_ROWS} are needed to train and evaluate (a row's content picks its split, so "
                             "copies of a row always fall together and an eval split can get none)")
    return DataProfile(path=path, rows=scan.rows, targets=targets, columns=tuple(profiles), column_map=columns,
                       label_missing=scan.any_label_missing, task=task, task_reason=why, source=source)


def _sample_rows(count: int, seen: int, rng: random.Random) -> List[int]:
    """Row indices of this batch to keep: all of the head, then a uniform share of the rest."""
    head = list(range(max(0, min(count, HEAD_SAMPLE - seen))))
    rest = count - len(head)
    if rest <= 0:
        return head
    share = RANDOM_SAMPLE / max(seen + count, 1)
    return head + [len(head) + i for i in range(rest) if rng.random() < share]


class _Sample:
    """A column's sampled present cells: counted in Arrow, turned into (line, text) pairs only when
    a kind has to be inferred from the text."""

    def __init__(self, chunks: List[Tuple[pa.Array, pa.Array]]):
        self.lines = pa.chunked_array([c[0] for c in chunks], pa.int64())
        self.values = pa.chunked_array([c[1] for c in chunks], pa.string())

    def __len__(self) -> int:
        return len(self.values)

    @property
    def distinct(self) -> int:
        return pc.count_distinct(self.values).as_py() if len(self.values) else 0

    def cells(self) -> List[Tuple[int, str]]:
        return list(zip(self.lines.to_pylist(), self.values.to_pylist()))


def _kind(path, name: str, key: str, stats: _ColumnStats, sample: "_Sample", forced_datetime: bool,
          schema_kind: Optional[str], forced_text: bool = False) -> ColumnKind:
    if schema_kind == "string":
        return ColumnKind(col.STRING)
    numeric_by_count = stats.present and stats.non_numbers < stats.present / 2
    if schema_kind == "numeric" or (numeric_by_count and stats.non_numbers and not (forced_datetime or forced_text)):
        if stats.non_numbers:
            line, value = stats.first_bad
            raise InputDataError(
                f"{path}: column '{name}' is numeric but line {line} holds {value!r} "
                f"({stats.non_numbers} non-numeric value(s)); leave such a cell empty for a missing value, or "
                f"read the column as codes (--categorical '{name}') or leave it out (--drop '{name}')")
        return ColumnKind(col.INTEGER if stats.all_whole else col.NUMERIC)
    if not stats.present:
        return ColumnKind(col.STRING)
    if stats.non_numbers == 0 and not forced_datetime:
        return ColumnKind(col.INTEGER if stats.all_whole else col.NUMERIC)
    kind = col.infer_kind(sample.cells(), forced_datetime)
    if kind.kind == col.DATETIME and not forced_text:
        _refuse_unread_dates(path, name, kind, sample)
    short = col.two_digit_year_date(sample.values.to_pylist()) if kind.kind == col.STRING and not forced_text else None
    if short is not None:
        raise InputDataError(f"{path}: column '{name}' holds dates with two-digit years ({short!r}): which century "
                             f"is not ours to guess; write four-digit years, or read the column as words (--text "
                             f"'{name}') or leave it out (--drop '{name}')")
    return kind


def _refuse_separated_numbers(path, found: Sequence[Tuple[str, Tuple[int, str], bool]]) -> None:
    """Numbers with a decimal comma or thousands separators would be read as categories (a model that
    never sees their size) or a label as classes: refused, naming every such column (a file's locale
    writes them all so), a value and the ways out. ``found``: (name, (line, value), is a label)."""
    if not found:
        return
    (name, (line, value), _), names = found[0], ", ".join(f"'{n}'" for n, _, _ in found)
    ways = "" if any(label for _, _, label in found) else \
        ", or read such a column as codes (--categorical COL) or leave it out (--drop COL)"
    many = len(found) > 1
    raise InputDataError(f"{path}: {'columns' if many else 'column'} {names} {'hold' if many else 'holds'} numbers "
                         f"written with separators (line {line}: {value!r} in '{name}'); this reads "
                         f"{col.NUMBER_FORM}: write {'them' if many else 'it'} so{ways}")


def _refuse_unread_dates(path, name: str, kind: ColumnKind, sample: "_Sample") -> None:
    """A date-time column of no format (forced by --datetime), or with cells that are not dates."""
    if not kind.date_format:
        line, value = sample.cells()[0]
        raise InputDataError(f"{path}: --datetime '{name}': line {line} holds {value!r}, not a date as "
                             f"{', '.join(col.DATE_FORMATS_SHOWN.values())} or Unix seconds")
    if kind.bad_count:
        raise InputDataError(
            f"{path}: column '{name}' holds dates ({col.DATE_FORMATS_SHOWN[kind.date_format]}) but line "
            f"{kind.bad_line} holds {kind.bad_value!r} ({kind.bad_count} of {len(sample)} sampled values not dates); "
            f"leave such a cell empty for a missing date, or read the column as words (--text '{name}') or "
            f"leave it out (--drop '{name}')")


def _text_kind(kind: ColumnKind, sample: "_Sample", forced: bool) -> ColumnKind:
    """TEXT with its token window when --text names the column or its values read as prose."""
    values = sample.values.to_pylist()
    if forced or col.is_text(values, sample.distinct):
        length = col.text_length(values)
        capped = length == col.TEXT_LENGTHS[1]  # else the 1% the window leaves out by design
        return ColumnKind(col.TEXT, text_length=length, text_cut=col.text_cut(values, length) if capped else 0.0)
    return kind


def _left_out_by_user(key: str, labels: Sequence[str], dropped: Set[str], chosen: Set[str]) -> str:
    """Why the user's options leave a column out ('' when they do not): --drop, or --features
    without it; a label never is."""
    if key in labels:
        return ""
    if key in dropped:
        return "--drop"
    return "not in --features" if chosen and key not in chosen else ""


def _role(key: str, kind: ColumnKind, stats: _ColumnStats, sample: _Sample, labels: Sequence[str],
          dropped: Set[str], chosen: Set[str], forced: bool, categorical: bool, rows: int) -> Tuple[str, str]:
    if key in labels:
        return LABEL, ""
    why = _left_out_by_user(key, labels, dropped, chosen)
    if why:
        return DROPPED, why
    if stats.present == 0:
        return EMPTY, "entirely missing"
    if stats.distinct == 1:
        return CONSTANT, f"one value ({next(iter(stats.values))!r})"
    if forced or categorical or key in chosen:
        return FEATURE, ""
    distinct_in_sample, sampled = sample.distinct, len(sample)
    unique = distinct_in_sample == sampled and not stats.overflow and stats.distinct == stats.present
    unique = unique or (stats.overflow and distinct_in_sample == sampled)
    if kind.kind == col.INTEGER and key in col.ROW_NUMBER_KEYS and stats.is_row_number(rows, unique):
        return IDENTIFIER, f"a row number ({stats.low:g} to {stats.high:g}, once each)"
    if col.is_identifier(key, kind.kind, distinct_in_sample, sampled, unique):
        return IDENTIFIER, "identifier-like (a distinct value on nearly every row)"
    return FEATURE, ""


def _task(path, columns: ColumnMap, label_keys: Sequence[str], kinds: Mapping[str, ColumnKind],
          stats: Mapping[str, _ColumnStats], task_name: Optional[str]) -> Tuple[str, str]:
    if task_name == "forecast":
        # series are read by pipelines.inputs.series_tables (configure sends --task forecast there)
        raise InputDataError(f"{path}: --task forecast reads '{columns.name(label_keys[0])}' as a series: give --time "
                             "COL and --horizon H")
    if task_name == "multilabel" and len(label_keys) < 2:
        raise InputDataError(f"{path}: --task multilabel needs two or more 0/1 label columns (--label A,B,...); "
                             f"one label is --task binary")
    if task_name:
        return task_name, "--task"
    if len(label_keys) > 1:
        raise InputDataError(f"{path}: several label columns need --task multilabel or multitask")
    key = label_keys[0]
    task, why = col.infer_task(kinds[key].kind, list(stats[key].values), stats[key].distinct)
    return task, f"{why} in '{columns.name(key)}'"


def _check_classes(path, label: str, task_name: str, counts: Mapping[str, int], rows: int, numeric: bool) -> None:
    """Classes a model can learn and be judged on: not nearly one per row (a continuous label), and
    none on a single row (in the eval split alone it is a class the Transform never saw)."""
    if len(counts) * MAX_CLASS_SHARE > rows:
        hint = "; a numeric label with many values is --task regression" if numeric else ""
        raise InputDataError(f"{path}: task '{task_name}' on '{label}': {len(counts)} classes in {rows} rows, "
                             f"more than one per {MAX_CLASS_SHARE} rows{hint}")
    single = sorted(value for value, count in counts.items() if count == 1)
    if single:
        more = f" and {len(single) - 1} more" if len(single) > 1 else ""
        raise InputDataError(f"{path}: task '{task_name}': class {single[0]!r}{more} of '{label}' has a single row; "
                             "each class needs rows for training and for evaluation (drop or merge such rows)")


def _profile_target(path, label: str, task: Optional[TaskSpec], kind: ColumnKind, stats: _ColumnStats) -> TargetProfile:
    counts = dict(stats.values) or {"": 0}
    if kind.kind == col.BOOLEAN:  # booleans are 1/0 labels (the staged copy writes them so)
        merged: Dict[str, int] = {}
        for value, count in counts.items():
            encoded = col.encode_label_cell(value, col.BOOLEAN)
            merged[encoded] = merged.get(encoded, 0) + count
        counts = merged
    ordered = tuple(sorted(counts, key=lambda v: (-counts[v], v)))
    total = max(sum(counts.values()), 1)
    std = 0.0
    if task is None:  # a multitask head: checked by its own rules in the pipeline
        return TargetProfile(ordered, counts[ordered[0]] / total if total else 0.0, 0.0, kind.kind, len(ordered))
    numeric = kind.kind in (col.NUMERIC, col.INTEGER)
    if task.label_encoding == "float":
        if not numeric:
            raise InputDataError(f"{path}: task '{task.name}' needs a numeric label; '{label}' holds text")
        mean = stats.total / stats.present
        std = max(stats.total_squares / stats.present - mean ** 2, 0.0) ** 0.5
    elif task.label_encoding == "binary":
        if len(ordered) != 2:
            raise InputDataError(f"{path}: task '{task.name}' needs exactly 2 label values in '{label}', "
                                 f"found {len(ordered) if not stats.overflow else 'many'}")
        if numeric and {float(v) for v in ordered} != {0.0, 1.0}:
            raise InputDataError(f"{path}: task '{task.name}' needs numeric labels 0/1 in '{label}', "
                                 f"found {', '.join(ordered)}")
    elif len(ordered) < 2:
        raise InputDataError(f"{path}: task '{task.name}' needs at least 2 classes in '{label}'")
    if numeric and task.label_encoding == "vocabulary":
        if not all(float(v).is_integer() for v in ordered):
            raise InputDataError(f"{path}: task '{task.name}' needs integer or text class labels in '{label}'")
    if task.label_encoding == "vocabulary":
        _check_classes(path, label, task.name, counts, total, numeric)
    return TargetProfile(values=ordered if task.label_encoding != "float" else (),
                         majority_share=counts[ordered[0]] / total, std=std, kind=kind.kind, distinct=len(ordered))
