"""A user's time series (``--task forecast --time COL``): one series, or many in a long table keyed
by ID columns. Read with ``tables.open_table``, each series' times parsed on one regular frequency
(``serving.codec.periods``), checked (duplicates, gaps, missing values, length) and staged for the
series ExampleGen split by time: per series, the last ``horizon`` points are the holdout (``eval/``
holds them with the ``lookback`` before: one window), the ``horizon`` before them the validation
targets the Trainer stops early on (``valid/``, one window), and ``train/`` the points before those.
Pure Python, no TensorFlow; every refusal is one ``InputDataError`` line naming the file, column,
line or series.
"""
import bisect
import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from core.files import write_if_changed
from pipelines.inputs.column_kinds import InputDataError
from serving.codec.columns import NA_TOKENS
from serving.codec.periods import PeriodError, TimeAxis, infer_axis

SPLIT_HORIZONS = 3  # a series holds at least lookback + 3 horizons: train, validation and eval targets
MAX_FILLED_SHARE = 0.1  # missing points (gaps, empty values) interpolated up to this share of a series
SERIES_COLUMN, VALUE_COLUMN = "series", "value"  # the staged files' columns
STAGED_NAME = "series.csv"


@dataclass(frozen=True)
class SeriesOptions:
    """The forecasting options of a run (``--time``, ``--horizon``, ``--series-id``, ``--lookback``)."""
    time: str
    horizon: int
    series_id: Tuple[str, ...] = ()
    lookback: Optional[int] = None


@dataclass(frozen=True)
class Series:
    """One series on its regular axis: the period of its first point and every value (filled)."""
    key: Tuple[str, ...]  # the ID columns' values ((), a single series)
    start: int
    values: Tuple[float, ...]
    filled: int = 0  # points interpolated

    @property
    def name(self) -> str:
        return "/".join(self.key) or "the series"


@dataclass(frozen=True)
class SeriesProfile:
    axis: TimeAxis
    series: Tuple[Series, ...]
    lookback: int
    lookback_reason: str
    horizon: int
    rows: int
    filled: int  # points interpolated over all series
    first_gap: str  # the first gap or missing value filled, named ("" when none)


@dataclass(frozen=True)
class _Cell:
    line: int
    time: str
    value: str


def _column(source, name: str, what: str) -> str:
    key = source.columns.key(name)
    if key is None:
        raise InputDataError(f"{source.path}: {what} column '{name}' not found; columns: "
                             f"{', '.join(source.columns.names)}")
    return key


def _read_cells(source, label: str, options: SeriesOptions) -> Dict[Tuple[str, ...], List[_Cell]]:
    """The time and label cells of each series (by its ID values), in file order."""
    from pipelines.inputs.tables import batches

    label_key, time_key = _column(source, label, "--label"), _column(source, options.time, "--time")
    id_keys = [_column(source, name, "--series-id") for name in options.series_id]
    if time_key == label_key or time_key in id_keys or label_key in id_keys:
        raise InputDataError(f"{source.path}: --time, --label and --series-id must name different columns")
    grouped: Dict[Tuple[str, ...], List[_Cell]] = defaultdict(list)
    for line, batch in batches(source):
        columns = {k: batch.column(batch.schema.get_field_index(k)).to_pylist()
                   for k in [time_key, label_key, *id_keys]}
        for i in range(batch.num_rows):
            key = tuple(columns[k][i].strip() for k in id_keys)
            grouped[key].append(_Cell(line + i, columns[time_key][i].strip(), columns[label_key][i].strip()))
    if not grouped:
        raise InputDataError(f"{source.path}: no rows")
    return grouped


def _value(cell: _Cell, context: str, label: str, na_values: Sequence[str]) -> Optional[float]:
    if cell.value in NA_TOKENS or cell.value in na_values:
        return None
    try:
        number = float(cell.value)
    except ValueError:
        raise InputDataError(f"{context}: line {cell.line}: --label column '{label}' holds {cell.value!r}, not a "
                             "number") from None
    return number if number == number else None


def _regular(cells: List[_Cell], axis: TimeAxis, context: str, label: str,
             na_values: Sequence[str]) -> Tuple[int, List[Optional[float]]]:
    """(first period, one value or None per period from the first to the last): duplicates refused."""
    seen: Dict[int, _Cell] = {}
    values: Dict[int, Optional[float]] = {}
    for cell in cells:
        try:
            period = axis.period(cell.time)
        except PeriodError as e:
            raise InputDataError(f"{context}: line {cell.line}: --time {e}") from None
        if period in seen:
            raise InputDataError(f"{context}: line {cell.line}: {cell.time!r} again (line {seen[period].line} has the "
                                 "same time in this series); one value per time")
        seen[period] = cell
        values[period] = _value(cell, context, label, na_values)
    present = [p for p, v in values.items() if v is not None]
    if not present:
        raise InputDataError(f"{context}: no value in --label column '{label}'")
    first, last = min(present), max(present)  # leading and trailing missing values are trimmed
    return first, [values.get(p) for p in range(first, last + 1)]


def _filled(values: List[Optional[float]], context: str, axis: TimeAxis, first: int) -> Tuple[List[float], str]:
    """Linear interpolation over missing points when they are few; (values, the first gap named)."""
    missing = [i for i, v in enumerate(values) if v is None]
    if not missing:
        return [float(v) for v in values], ""
    gap = f"{context}: {axis.label(first + missing[0])} missing"
    if len(missing) > MAX_FILLED_SHARE * len(values):
        raise InputDataError(f"{gap}, and {len(missing)} of {len(values)} {axis.frequency} points in all (more than "
                             f"{MAX_FILLED_SHARE:.0%}); give a regular series or fill it first")
    out = list(values)
    known = [i for i, v in enumerate(values) if v is not None]  # the first and last are known (trimmed)
    for i in missing:  # the known neighbours by bisection: a long daily series has thousands of each
        place = bisect.bisect(known, i)
        before, after = known[place - 1], known[place]
        out[i] = values[before] + (values[after] - values[before]) * (i - before) / (after - before)
    return [float(v) for v in out], gap


def default_lookback(season: int, horizon: int, shortest: int) -> Tuple[int, str]:
    """Two seasons or two horizons, whichever is longer (a window then holds a seasonal naive
    forecast's error to scale by), cut to what the shortest series allows."""
    wanted = max(2 * season, 2 * horizon, 3)
    room = shortest - SPLIT_HORIZONS * horizon  # a train window, the validation and the eval targets
    if room >= wanted:
        return wanted, f"max(2 x season {season}, 2 x horizon {horizon})"
    return room, f"what the shortest series ({shortest} points) leaves after {SPLIT_HORIZONS} x horizon {horizon}"


def profile_series(source, label: str, options: SeriesOptions, na_values: Sequence[str] = ()) -> SeriesProfile:
    """The series of a table, on one axis, filled and checked, with the lookback."""
    if options.horizon < 1:
        raise InputDataError(f"--horizon {options.horizon}: forecast at least 1 step")
    grouped = _read_cells(source, label, options)
    try:
        axis = infer_axis([[c.time for c in cells] for cells in grouped.values()])
    except PeriodError as e:
        raise InputDataError(f"{source.path}: --time column '{options.time}': {e}") from None
    series, filled, first_gap = [], 0, ""
    for key, cells in sorted(grouped.items()):
        context = f"{source.path}" + (f": series {'/'.join(key)}" if key else "")
        start, raw = _regular(cells, axis, context, label, na_values)
        values, gap = _filled(raw, context, axis, start)
        first_gap, missing = first_gap or gap, sum(v is None for v in raw)
        filled += missing
        series.append(Series(key, start, tuple(values), missing))
    lookback, reason = _lookback(series, axis, options, source.path)
    return SeriesProfile(axis, tuple(series), lookback, reason, options.horizon,
                         sum(len(c) for c in grouped.values()), filled, first_gap)


def _lookback(series: Sequence[Series], axis: TimeAxis, options: SeriesOptions, path: Path) -> Tuple[int, str]:
    shortest = min(series, key=lambda s: len(s.values))
    if options.lookback is not None:
        if options.lookback < 2:
            raise InputDataError(f"--lookback {options.lookback}: a window needs at least 2 points")
        lookback, reason = options.lookback, "--lookback"
    else:
        lookback, reason = default_lookback(axis.season, options.horizon, len(shortest.values))
    need = max(lookback, 2) + SPLIT_HORIZONS * options.horizon
    if len(shortest.values) < need:
        window = f"--lookback {lookback}" if options.lookback is not None else "a window of at least 2 points"
        raise InputDataError(f"{path}: {shortest.name} has {len(shortest.values)} {axis.frequency} points; a forecast "
                             f"of {options.horizon} needs at least {need} ({window} + {SPLIT_HORIZONS} x horizon: "
                             "train, validation and eval targets); give a shorter --horizon")
    return lookback, reason


def _csv(rows: List[Tuple[str, float]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([SERIES_COLUMN, VALUE_COLUMN])
    writer.writerows((key, repr(value)) for key, value in rows)
    return out.getvalue().encode()


def stage_series(profile: SeriesProfile, folder: Path) -> Path:
    """``folder/{train,valid,eval}/series.csv``, series after series (unchanged files are kept):
    eval the last lookback + horizon points, valid the same one horizon earlier, train the points
    before valid's targets."""
    lookback, horizon = profile.lookback, profile.horizon
    splits: Dict[str, List[Tuple[str, float]]] = {"train": [], "valid": [], "eval": []}
    for number, one in enumerate(profile.series):
        name = str(number)  # the staged key: the series' index (ID values may hold any character)
        values, n = one.values, len(one.values)
        splits["train"] += [(name, v) for v in values[:n - 2 * horizon]]
        splits["valid"] += [(name, v) for v in values[n - 2 * horizon - lookback:n - horizon]]
        splits["eval"] += [(name, v) for v in values[n - horizon - lookback:]]
    for split, rows in splits.items():
        write_if_changed(folder / split / STAGED_NAME, _csv(rows))
    return folder


def holdout_split(profile: SeriesProfile) -> List[Tuple[Tuple[float, ...], Tuple[float, ...]]]:
    """(history, holdout) of each series: the holdout its last horizon points, as staged."""
    return [(one.values[:-profile.horizon], one.values[-profile.horizon:]) for one in profile.series]
