"""A user's time series (``--task forecast --time COL``): one series, or many in a long table keyed
by ID columns, with the known-ahead covariates ``--covariates`` names (numbers known for the future
steps too: a promotion planned, a law in force). Read with ``tables.open_table``, each series' times
parsed on one regular frequency (``serving.codec.periods``), checked (duplicates, gaps, missing
values, length) and staged for the
series ExampleGen split by time: per series, the last ``horizon`` points are the holdout (``eval/``
holds them with the ``lookback`` before: one window), the ``horizon`` before them the validation
targets the Trainer stops early on (``valid/``, one window), and ``train/`` the points before those.
Pure Python, no TensorFlow; every refusal is one ``InputDataError`` line naming the file, column,
line or series.
"""
import bisect
import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from components.specs import VALIDATION_WINDOWS
from core.files import write_if_changed
from pipelines.inputs.column_kinds import NUMBER_FORM, SEPARATED_NUMBER, InputDataError
from serving.codec.columns import NA_TOKENS
from serving.codec.periods import PeriodError, TimeAxis, infer_axis
from serving.forecast_client import SeriesWindow

SPLIT_HORIZONS = 3  # a series holds at least lookback + 3 horizons: train, validation and eval targets
# A table of few series gives VALIDATION_WINDOWS from its last points (the Trainer stops early on them and
# chooses its correction's share by them), at most this share of a series: one window of one daily
# series made early stopping a draw (docs/models.md)
VALIDATION_SHARE = 0.05
MAX_FILLED_SHARE = 0.1  # missing points (gaps, empty values) interpolated up to this share of a series
SERIES_COLUMN, VALUE_COLUMN, DATE_COLUMN = "series", "value", "date"  # the staged files' columns
STAGED_NAME = "series.csv"


@dataclass(frozen=True)
class ForecastOptions:
    """A user's series (--task forecast with --data): which column is the time, how far to forecast.
    As given; ``profile_series`` needs ``time`` and ``horizon`` (the configuration checks them first)."""
    time: Optional[str] = None
    horizon: Optional[int] = None
    series_id: Tuple[str, ...] = ()  # a long table: the columns naming each series
    lookback: Optional[int] = None  # default: from the frequency's season and the horizon
    covariates: Tuple[str, ...] = ()  # known-ahead columns (their future values are known too)


@dataclass(frozen=True)
class Series:
    """One series on its regular axis: the period of its first point and every value (filled)."""
    key: Tuple[str, ...]  # the ID columns' values ((), a single series)
    start: int
    values: Tuple[float, ...]
    filled: int = 0  # points interpolated
    covariates: Tuple[Tuple[float, ...], ...] = ()  # each covariate's values at the same points (filled)

    @property
    def name(self) -> str:
        return "/".join(self.key) or "the series"


@dataclass(frozen=True)
class SeriesProfile:
    axis: TimeAxis
    series: Tuple[Series, ...]
    covariates: Tuple[Tuple[str, str], ...]  # (column as named, its staged feature key) of each covariate
    lookback: int
    lookback_reason: str
    horizon: int
    rows: int
    filled: int  # points interpolated over all series
    first_gap: str  # the first gap or missing value filled, named ("" when none)
    trimmed: int = 0  # rows with no value before a series' first value or after its last, left out
    unread: Tuple[str, ...] = ()  # the table's other columns, as named: a forecast reads none of them


@dataclass(frozen=True)
class _Cell:
    line: int
    time: str
    value: str
    covariates: Tuple[str, ...] = ()


def _column(source, name: str, what: str) -> str:
    key = source.columns.key(name)
    names = [n.strip() for n in name.split(",")]
    if key is None and what == "--label" and len(names) > 1 and all(source.columns.key(n) for n in names):
        raise InputDataError(f"{source.path}: --label {name}: a forecast reads one value column; series side by "
                             "side in columns are a long table's rows (one row per series and time, the series' "
                             "name in a column given to --series-id), or one run each")
    if key is None:
        raise InputDataError(f"{source.path}: {what} column '{name}' not found; columns: "
                             f"{', '.join(source.columns.names)}")
    return key


def _read_cells(source, label: str, options: ForecastOptions) -> Dict[Tuple[str, ...], List[_Cell]]:
    """The time, label and covariate cells of each series (by its ID values), in file order."""
    from pipelines.inputs.tables import batches

    label_key, time_key = _column(source, label, "--label"), _column(source, options.time, "--time")
    id_keys = [_column(source, name, "--series-id") for name in options.series_id]
    covariate_keys = [_column(source, name, "--covariates") for name in options.covariates]
    named = [time_key, label_key, *id_keys, *covariate_keys]
    if len(set(named)) < len(named):
        raise InputDataError(f"{source.path}: --time, --label, --series-id and --covariates must name different "
                             "columns")
    grouped: Dict[Tuple[str, ...], List[_Cell]] = defaultdict(list)
    for line, batch in batches(source):
        columns = {k: batch.column(batch.schema.get_field_index(k)).to_pylist() for k in named}
        for i in range(batch.num_rows):
            key = tuple(columns[k][i].strip() for k in id_keys)
            grouped[key].append(_Cell(line + i, columns[time_key][i].strip(), columns[label_key][i].strip(),
                                      tuple(columns[k][i].strip() for k in covariate_keys)))
    if not grouped:
        raise InputDataError(f"{source.path}: no rows")
    return grouped


def _number(text: str, line: int, context: str, flag: str, column: str,
            na_values: Sequence[str]) -> Optional[float]:
    if text in NA_TOKENS or text in na_values:
        return None
    try:
        number = float(text)
    except ValueError:
        written = f" (this reads {NUMBER_FORM})" if SEPARATED_NUMBER.fullmatch(text) else ""
        raise InputDataError(f"{context}: line {line}: {flag} column '{column}' holds {text!r}, not a number"
                             f"{written}") from None
    return number if number == number else None


def _regular(cells: List[_Cell], axis: TimeAxis, context: str, label: str, na_values: Sequence[str],
             keyed: bool) -> Tuple[int, List[Optional[float]], Dict[int, _Cell], int]:
    """(first period, one value or None per period from the first to the last, each period's cell,
    the rows with no value before the first value or after the last, left out): duplicates refused
    (in a table not keyed by --series-id, with the hint that it may need one)."""
    seen: Dict[int, _Cell] = {}
    values: Dict[int, Optional[float]] = {}
    for cell in cells:
        try:
            period = axis.period(cell.time)
        except PeriodError as e:
            raise InputDataError(f"{context}: line {cell.line}: --time {e}") from None
        if period in seen and seen[period].time.strip() != cell.time.strip():  # another time in the same period
            earlier = f"line {seen[period].line} ({seen[period].time!r})"
            if axis.frequency == "daily":  # the finest step read: two times in one day are hours or minutes apart
                raise InputDataError(f"{context}: line {cell.line}: {cell.time!r} is on the same day as {earlier}: "
                                     "steps shorter than a day are not read (a series is daily, weekly, monthly, "
                                     "quarterly or yearly); sum or average its values per day first")
            raise InputDataError(f"{context}: line {cell.line}: {cell.time!r} falls in the same {axis.frequency} "
                                 f"step as {earlier}: the series reads as {axis.frequency}, and its times change "
                                 "step; give it one frequency")
        if period in seen:
            hint = "" if keyed else "; a long table of several series needs --series-id naming their ID column(s)"
            raise InputDataError(f"{context}: line {cell.line}: {cell.time!r} again (line {seen[period].line} has the "
                                 f"same time in this series); one value per time{hint}")
        seen[period] = cell
        values[period] = _number(cell.value, cell.line, context, "--label", label, na_values)
    present = [p for p, v in values.items() if v is not None]
    if not present:
        raise InputDataError(f"{context}: no value in --label column '{label}'")
    first, last = min(present), max(present)  # leading and trailing missing values are trimmed
    trimmed = sum(1 for p in values if p < first or p > last)
    return first, [values.get(p) for p in range(first, last + 1)], seen, trimmed


def _covariates(cells: Dict[int, _Cell], first: int, length: int, names: Sequence[str], context: str,
                axis: TimeAxis, na_values: Sequence[str]) -> Tuple[Tuple[float, ...], ...]:
    """Each covariate's values over the series' points, filled as the label is (the first gap named
    by its column)."""
    out = []
    for index, name in enumerate(names):
        raw = [None if p not in cells else
               _number(cells[p].covariates[index], cells[p].line, context, "--covariates", name, na_values)
               for p in range(first, first + length)]
        missing = sum(v is None for v in raw)
        if missing > MAX_FILLED_SHARE * length:
            raise InputDataError(f"{context}: --covariates column '{name}' lacks {missing} of {length} "
                                 f"{axis.frequency} points (more than {MAX_FILLED_SHARE:.0%}); a covariate is known "
                                 "at every point, the future ones included")
        edges = [i for i, v in enumerate(raw) if v is not None]  # an unknown start or end: the nearest known value
        raw[:edges[0]] = [raw[edges[0]]] * edges[0]
        raw[edges[-1] + 1:] = [raw[edges[-1]]] * (length - edges[-1] - 1)
        values, _ = _filled(raw, f"{context}: --covariates column '{name}'", axis, first)
        out.append(tuple(values))
    return tuple(out)


WEEKEND_SHARE = 0.8  # of a daily series' missing days: a series of working days, not one with gaps


def _why_so_many_missing(known: Sequence[int], missing: Sequence[int], axis: TimeAxis, first: int) -> str:
    """What a series missing too many points looks like: values every k periods (a step of k), a
    daily series missing its weekends (working days), or just gaps."""
    step = math.gcd(*(b - a for a, b in zip(known, known[1:])))
    if step > 1:
        return (f"; its values come every {step} {axis.frequency} steps: a step of {step} is not read (a series "
                "is daily, weekly, monthly, quarterly or yearly)")
    # a daily period is its date's ordinal (serving.codec.periods)
    if axis.frequency == "daily" and sum(date.fromordinal(first + i).weekday() >= 5
                                         for i in missing) >= WEEKEND_SHARE * len(missing):
        return ("; most missing days are weekends: a series of trading or working days is not read as daily "
                "(fill its weekends, e.g. with Friday's value, or sum it by week)")
    return "; give a regular series or fill it first"


def _filled(values: List[Optional[float]], context: str, axis: TimeAxis, first: int) -> Tuple[List[float], str]:
    """Linear interpolation over missing points when they are few; (values, the first gap named)."""
    missing = [i for i, v in enumerate(values) if v is None]
    if not missing:
        return [float(v) for v in values], ""
    gap = f"{context}: {axis.shown(first + missing[0])} missing"
    known = [i for i, v in enumerate(values) if v is not None]  # the first and last are known (trimmed)
    if len(missing) > MAX_FILLED_SHARE * len(values):
        raise InputDataError(f"{gap}, and {len(missing)} of {len(values)} {axis.frequency} points in all (more than "
                             f"{MAX_FILLED_SHARE:.0%}){_why_so_many_missing(known, missing, axis, first)}")
    out = list(values)
    for i in missing:  # the known neighbours by bisection: a long daily series has thousands of each
        place = bisect.bisect(known, i)
        before, after = known[place - 1], known[place]
        out[i] = values[before] + (values[after] - values[before]) * (i - before) / (after - before)
    return [float(v) for v in out], gap


MIN_LOOKBACK = 3  # points a window reads at the least: a level and a drift with one point to spare


def default_lookback(season: int, horizon: int, shortest: int) -> Tuple[int, str]:
    """Two seasons or two horizons, whichever is longer (a window then holds a seasonal naive
    forecast's error to scale by), cut to what the shortest series allows."""
    wanted = max(2 * season, 2 * horizon, MIN_LOOKBACK)
    room = shortest - SPLIT_HORIZONS * horizon  # a train window, the validation and the eval targets
    if room >= wanted:
        return wanted, f"max(2 x season {season}, 2 x horizon {horizon}, {MIN_LOOKBACK})"
    return room, f"what the shortest series ({shortest} points) leaves after {SPLIT_HORIZONS} x horizon {horizon}"


def profile_series(source, label: str, options: ForecastOptions, na_values: Sequence[str] = ()) -> SeriesProfile:
    """The series of a table, on one axis, filled and checked, with the lookback."""
    if options.horizon < 1:
        raise InputDataError(f"--horizon {options.horizon}: forecast at least 1 step")
    grouped = _read_cells(source, label, options)
    try:
        axis = infer_axis([[c.time for c in cells] for cells in grouped.values()])
    except PeriodError as e:
        raise InputDataError(f"{source.path}: --time column '{options.time}': {e}") from None
    series, filled, first_gap, trimmed = [], 0, "", 0
    for key, cells in sorted(grouped.items()):
        context = f"{source.path}" + (f": series {'/'.join(key)}" if key else "")
        start, raw, by_period, edge_rows = _regular(cells, axis, context, label, na_values, bool(options.series_id))
        trimmed += edge_rows
        values, gap = _filled(raw, context, axis, start)
        covariates = _covariates(by_period, start, len(values), options.covariates, context, axis, na_values)
        first_gap, missing = first_gap or gap, sum(v is None for v in raw)
        filled += missing
        series.append(Series(key, start, tuple(values), missing, covariates))
    lookback, reason = _lookback(series, axis, options, source.path)
    read = {options.time, label, *options.series_id, *options.covariates}
    unread = tuple(n for n, k in zip(source.columns.names, source.columns.keys) if n not in read and k not in read)
    return SeriesProfile(axis, tuple(series), covariate_keys(options.covariates), lookback, reason, options.horizon,
                         sum(len(c) for c in grouped.values()), filled, first_gap, trimmed, unread)


def _lookback(series: Sequence[Series], axis: TimeAxis, options: ForecastOptions, path: Path) -> Tuple[int, str]:
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
                             f"train, validation and eval targets); give a shorter "
                             f"{'--lookback or ' if options.lookback is not None else ''}--horizon")
    return lookback, reason


def covariate_keys(names: Sequence[str]) -> Tuple[Tuple[str, str], ...]:
    """(column, feature key) of each covariate: the key a request and a staged file name it by."""
    from pipelines.inputs.column_kinds import feature_key

    keys = [feature_key(name) for name in names]
    if len(set(keys)) < len(keys) or set(keys) & {SERIES_COLUMN, VALUE_COLUMN, DATE_COLUMN}:
        raise InputDataError(f"--covariates {','.join(names)}: two columns (or a column and the staged "
                             f"{SERIES_COLUMN}/{VALUE_COLUMN}/{DATE_COLUMN}) read as the same feature name")
    return tuple(zip(names, keys))


def _csv(rows: List[Tuple[Any, ...]], covariates: Sequence[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([SERIES_COLUMN, DATE_COLUMN, VALUE_COLUMN, *covariates])
    writer.writerows((key, day, *(repr(v) for v in values)) for key, day, *values in rows)
    return out.getvalue().encode()


def validation_windows(lengths: Sequence[int], lookback: int, horizon: int) -> List[int]:
    """Each series' validation windows (``lengths``: its points): one, ending a horizon before the
    eval targets, and more, each a step earlier, until the table has VALIDATION_WINDOWS (or a few
    more: a series adds as many as the others at that level), a series adding at most
    VALIDATION_SHARE of its points and half the room its train split has beyond one window. A
    series short of its share leaves it to the longer ones."""
    caps = [max(0, min(int(VALIDATION_SHARE * n), (n - lookback - SPLIT_HORIZONS * horizon) // 2)) for n in lengths]
    needed = max(0, VALIDATION_WINDOWS - len(lengths))
    level = 0
    while sum(min(cap, level) for cap in caps) < needed and level < max(caps, default=0):
        level += 1
    return [1 + min(cap, level) for cap in caps]


def _train_points(length: int, horizon: int, validating: int) -> int:
    """A series' points before its first validation target (``validating``: its validation windows)."""
    return length - 2 * horizon - validating + 1


def window_counts(lengths: Sequence[int], lookback: int, horizon: int) -> Tuple[int, int]:
    """(train windows, validation windows) of all series, as ``stage_series`` splits them."""
    validating = validation_windows(lengths, lookback, horizon)
    train = sum(max(0, _train_points(n, horizon, v) - lookback - horizon + 1) for n, v in zip(lengths, validating))
    return train, sum(validating)


def stage_series(profile: SeriesProfile, folder: Path) -> Path:
    """``folder/{train,valid,eval}/series.csv``, series after series (unchanged files are kept):
    eval the last lookback + horizon points, valid the windows whose targets end a horizon earlier
    (``validation_windows``: one, or a few more each a step earlier), train the points before
    valid's targets. Each row: the series, the ISO date of its point, its value and covariates."""
    lookback, horizon = profile.lookback, profile.horizon
    splits: Dict[str, List[Tuple[Any, ...]]] = {"train": [], "valid": [], "eval": []}
    validating = validation_windows([len(one.values) for one in profile.series], lookback, horizon)
    for number, (one, windows) in enumerate(zip(profile.series, validating)):
        name = str(number)  # the staged key: the series' index (ID values may hold any character)
        n = len(one.values)
        rows = [(name, profile.axis.iso_date(one.start + i), value, *(c[i] for c in one.covariates))
                for i, value in enumerate(one.values)]
        first_target = _train_points(n, horizon, windows)
        splits["train"] += rows[:first_target]
        splits["valid"] += rows[first_target - lookback:n - horizon]
        splits["eval"] += rows[n - horizon - lookback:]
    for split, rows in splits.items():
        write_if_changed(folder / split / STAGED_NAME, _csv(rows, [key for _, key in profile.covariates]))
    return folder


def holdout_split(profile: SeriesProfile) -> List[Tuple[Tuple[float, ...], Tuple[float, ...]]]:
    """(history, holdout) of each series: the holdout its last horizon points, as staged."""
    return [(one.values[:-profile.horizon], one.values[-profile.horizon:]) for one in profile.series]


def holdout_windows(profile: SeriesProfile) -> List[SeriesWindow]:
    """Each series' request for its holdout: the lookback before it, the covariates over both."""
    lookback, horizon = profile.lookback, profile.horizon
    return [SeriesWindow(one.key, one.start + len(one.values) - horizon - 1,
                         one.values[-horizon - lookback:-horizon],
                         tuple(values[-horizon - lookback:] for values in one.covariates))
            for one in profile.series]
