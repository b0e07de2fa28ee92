"""The time column of a series table: how its cells read as periods of a regular frequency (daily,
weekly, monthly, quarterly, yearly) and how a period is written back in the same style, so a
forecast's future steps read like the user's own rows. Pure Python: the preflight, the staging and
``mlops predict`` share it.

A period is an integer that grows by one per step of the frequency: the day's ordinal (daily), the
week's (weekly), ``year * 12 + month - 1`` (monthly), ``year * 4 + quarter - 1`` (quarterly), the
year (yearly).
"""
import calendar
import math
import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from serving.codec.model_extras import read_extra, write_extra

# the calendar parts a daily or weekly forecaster reads for each forecast step (components.transform)
CALENDAR_PARTS = {"daily": "weekday, place in the year", "weekly": "place in the year"}
SEASONS = {"daily": 7, "weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}  # frequency -> season


def seasonal_lag(season: int, length: int) -> int:
    """The seasonal naive forecast's lag on ``length`` points: the season when they hold two of
    them, else 1 (MASE's scale, a window's scale and its seasonal bases all use it)."""
    return season if 1 < season and 2 * season <= length else 1


STEPS_PER_YEAR = {"monthly": 12, "quarterly": 4, "yearly": 1}  # what a decimal year's fraction counts
_STEP_DAYS = (("daily", 1, 1), ("weekly", 7, 7), ("monthly", 28, 31), ("quarterly", 89, 92), ("yearly", 365, 366))

YEAR = re.compile(r"^\d{4}$")
YEAR_MONTH = re.compile(r"^(\d{4})[-/](\d{1,2})$")
YEAR_MONTH_DOT = re.compile(r"^(\d{4})\.(\d{2})$")  # 1960.01 (a decimal year reads too: 1960.01 is no month of it)
YEAR_MONTH_COMPACT = re.compile(r"^(\d{4})(\d{2})$")  # 196001, as statistics offices and SQL exports write months
YEAR_M_MONTH = re.compile(r"^(\d{4})M(\d{2})$")  # 1960M01: Eurostat's and SDMX's months
YEAR_LOWER_M_MONTH = re.compile(r"^(\d{4})m(\d{1,2})$")  # 1960m1: Stata's monthly dates
MONTH_YEAR_SLASH = re.compile(r"^(\d{1,2})/(\d{4})$")  # 01/1960
MONTH_YEAR_DOT = re.compile(r"^(\d{1,2})\.(\d{4})$")  # 01.1960
_MONTH_FIRST = ("month_year_slash", "month_year_dot")
QUARTER = re.compile(r"^(\d{4})([- ]?)Q([1-4])$", re.IGNORECASE)
ISO_WEEK = re.compile(r"^(\d{4})([- ]?)W(\d{1,2})$", re.IGNORECASE)  # tsibble's yearweek "1991 W06", ISO's "1991-W06"
# Quarters and ISO weeks read with any of these between the year and Qn / Www, and are written back
# with the column's own: "1998 Q1" (tsibble), "1998-Q1" (ISO), "1998Q1" (pandas' Period)
_SEPARATED = {"quarter": QUARTER, "iso_week": ISO_WEEK}
_STYLES = {" ": "", "-": "_dash", "": "_compact"}  # separator -> format name suffix
_STYLED = {base + suffix: (base, separator) for base in _SEPARATED for separator, suffix in _STYLES.items()}
YEAR_MON = re.compile(r"^(\d{4})[ -]([A-Za-z]{3,9})\.?$")  # tsibble's yearmonth "1960 Jan"
MON_YEAR = re.compile(r"^([A-Za-z]{3,9})\.?[ -](\d{4})$")  # "Jan 1960", "January 1960", "Jan-1960"
DECIMAL_YEAR = re.compile(r"^\d{4}\.\d+$")
TWO_DIGIT_YEAR = re.compile(r"^\d{1,2}[/.-]\d{1,2}[/.-]\d{2}( \d{1,2}:\d{2}(:\d{2})?)?$")  # 8/6/20 18:57
TWO_DIGIT_YEAR_MONTH = re.compile(r"^([A-Za-z]{3,9}\.?[- ]?\d{2}|\d{1,2}[/.-]\d{2})$")  # Apr-82, 04/82 (a time column)
MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
               "november", "december")  # English whatever the locale: what exports write
DATE_FORMATS = {  # format name -> (pattern, strptime layout of its date part); tables read these too
    "iso": (re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"), "%Y-%m-%d"),
    "ymd_slash": (re.compile(r"^\d{4}/\d{2}/\d{2}( \d{2}:\d{2}(:\d{2})?)?$"), "%Y/%m/%d"),
    "mdy_slash": (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}( \d{1,2}:\d{2}(:\d{2})?)?$"), "%m/%d/%Y"),
    "unix": (re.compile(r"^-?\d{9,11}(\.\d+)?$"), ""),
}
SERIES_DATE_FORMATS = {  # a series' time column only (a table's Transform does not parse them): day first, compact
    "dmy_slash": (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"), "%d/%m/%Y"),
    "dmy_dot": (re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$"), "%d.%m.%Y"),
    "ymd_compact": (re.compile(r"^\d{8}$"), "%Y%m%d"),
}
ALL_DATE_FORMATS = {**DATE_FORMATS, **SERIES_DATE_FORMATS}
# period formats (no day): name -> (pattern, frequency); a decimal year is one too, read on its own
_PERIODS = {"year": (YEAR, "yearly"), "year_month": (YEAR_MONTH, "monthly"),
            "year_month_dot": (YEAR_MONTH_DOT, "monthly"), "year_month_compact": (YEAR_MONTH_COMPACT, "monthly"),
            "year_mon": (YEAR_MON, "monthly"), "mon_year": (MON_YEAR, "monthly"),
            "year_m_month": (YEAR_M_MONTH, "monthly"), "year_lower_m_month": (YEAR_LOWER_M_MONTH, "monthly"),
            "month_year_slash": (MONTH_YEAR_SLASH, "monthly"), "month_year_dot": (MONTH_YEAR_DOT, "monthly"),
            **{fmt: (_SEPARATED[base], "quarterly" if base == "quarter" else "weekly")
               for fmt, (base, _) in _STYLED.items()}}
_PERIOD_PATTERNS = {name: pattern for name, (pattern, _) in _PERIODS.items()}
_PERIOD_FREQUENCY = {name: frequency for name, (_, frequency) in _PERIODS.items()}
PERIOD_FORMATS = (*_PERIODS, "decimal_year")
# how a message names a format: as the user writes it
FORMAT_SHOWN = {"iso": "YYYY-MM-DD", "ymd_slash": "YYYY/MM/DD", "mdy_slash": "MM/DD/YYYY", "unix": "Unix seconds",
                "dmy_slash": "DD/MM/YYYY", "dmy_dot": "DD.MM.YYYY", "ymd_compact": "YYYYMMDD", "year": "YYYY",
                "year_month": "YYYY-MM", "year_month_dot": "YYYY.MM", "year_month_compact": "YYYYMM",
                "year_mon": "YYYY Mon", "mon_year": "Mon YYYY", "year_m_month": "YYYYMmm",
                "year_lower_m_month": "YYYYmM", "month_year_slash": "MM/YYYY", "month_year_dot": "MM.YYYY",
                "quarter": "YYYY Qn", "quarter_dash": "YYYY-Qn",
                "quarter_compact": "YYYYQn", "iso_week": "YYYY Www", "iso_week_dash": "YYYY-Www",
                "iso_week_compact": "YYYYWww",
                "decimal_year": "a decimal year such as 1949.083"}


class PeriodError(ValueError):
    """A time column that does not read as a regular frequency (one line naming the value)."""


@dataclass(frozen=True)
class TimeAxis:
    """How a time column reads and writes: its format, frequency and, for dates, where in the
    period they fall (weekly: the weekday; monthly and coarser: the day, 0 meaning the last;
    quarterly and yearly: also the month within the period, 0 its first: quarters dated by their
    last month, 2005-03-01, 2005-06-01, ..., have month 2)."""
    format: str  # year | year_month | quarter | decimal_year | iso | ymd_slash | mdy_slash | unix
    frequency: str  # daily | weekly | monthly | quarterly | yearly
    anchor: int = 1
    month: int = 0

    @property
    def season(self) -> int:
        return SEASONS[self.frequency]

    def period(self, cell: str) -> int:
        """The period of a cell of this column."""
        text = cell.strip()
        if self.format in PERIOD_FORMATS:
            return _period_of_text(text, self.format, self.frequency)
        return _period_of_date(_date(text, self.format), self.frequency)

    def label(self, period: int) -> str:
        """The period written as the column writes its cells."""
        if self.format in PERIOD_FORMATS:
            return _period_text(period, self.format, self.frequency)
        day = self._date(period)
        if self.format == "unix":
            return str(int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()))
        return day.strftime(ALL_DATE_FORMATS[self.format][1])

    def shown(self, period: int) -> str:
        """The period as a message names it: its label, and for Unix seconds the date they are."""
        label = self.label(period)
        return f"{label} ({self.iso_date(period)})" if self.format == "unix" else label

    @property
    def has_calendar(self) -> bool:
        """Daily and weekly series get calendar parts (weekday, place in the year) as known-ahead
        features: a window of a few weeks cannot see the year; a monthly or quarterly window's
        seasonal profile already places each step in it."""
        return self.frequency in CALENDAR_PARTS

    def iso_date(self, period: int) -> str:
        """The period's date as YYYY-MM-DD (what a forecaster's ``next_date`` input reads)."""
        return self._date(period).isoformat()

    def _date(self, period: int) -> date:
        if self.frequency == "daily":
            return date.fromordinal(period)
        if self.frequency == "weekly":
            return date.fromordinal(period * 7 + self.anchor)
        months = {"monthly": 1, "quarterly": 3, "yearly": 12}[self.frequency]
        year, month = divmod(period * months + self.month, 12)
        last = calendar.monthrange(year, month + 1)[1]
        return date(year, month + 1, last if self.anchor == 0 else min(self.anchor, last))


def _month_number(name: str) -> int:
    """1-12 of an English month name or its abbreviation ("Jan", "Sept", "January"), else 0."""
    lowered = name.lower()
    return next((i + 1 for i, full in enumerate(MONTH_NAMES) if len(lowered) >= 3 and full.startswith(lowered)), 0)


def _year_and_step(text: str, fmt: str) -> Optional[Tuple[int, int]]:
    """(year, month or quarter or ISO week) of a cell in a period format with one, or None."""
    match = _PERIOD_PATTERNS[fmt].match(text)
    if not match:
        return None
    if fmt in ("year_mon", "mon_year"):
        year, name = (match.group(1), match.group(2)) if fmt == "year_mon" else (match.group(2), match.group(1))
        return int(year), _month_number(name)
    if fmt in _MONTH_FIRST:
        return int(match.group(2)), int(match.group(1))
    return int(match.group(1)), int(match.group(match.lastindex))


def _period_of_text(text: str, fmt: str, frequency: str) -> int:
    if fmt == "year" and YEAR.match(text):
        return int(text)
    found = _year_and_step(text, fmt) if fmt in _PERIOD_PATTERNS else None
    base = _STYLED.get(fmt, (fmt, ""))[0]
    if found and base == "iso_week":
        try:
            return date.fromisocalendar(found[0], found[1], 1).toordinal() // 7
        except ValueError:
            found = None
    quarters = base == "quarter"
    if found and 1 <= found[1] <= (4 if quarters else 12):
        return found[0] * (4 if quarters else 12) + found[1] - 1
    if fmt == "decimal_year" and (DECIMAL_YEAR.match(text) or YEAR.match(text)):
        steps = float(text) * STEPS_PER_YEAR[frequency]
        if abs(steps - round(steps)) < 0.05:
            return int(round(steps))
        raise PeriodError(f"{text!r} is not on a {frequency} step of a decimal year")
    raise PeriodError(f"{text!r} does not read as {FORMAT_SHOWN[fmt]}")


def _period_text(period: int, fmt: str, frequency: str) -> str:
    if fmt == "year":
        return str(period)
    year, month = divmod(period, 12)
    month_name = MONTH_NAMES[month][:3].title()
    texts = {"year_month": f"{year:04d}-{month + 1:02d}", "year_month_dot": f"{year:04d}.{month + 1:02d}",
             "year_month_compact": f"{year:04d}{month + 1:02d}",
             "year_mon": f"{year:04d} {month_name}", "mon_year": f"{month_name} {year:04d}",
             "year_m_month": f"{year:04d}M{month + 1:02d}", "year_lower_m_month": f"{year:04d}m{month + 1}",
             "month_year_slash": f"{month + 1:02d}/{year:04d}", "month_year_dot": f"{month + 1:02d}.{year:04d}"}
    if fmt in texts:
        return texts[fmt]
    base, separator = _STYLED.get(fmt, (fmt, ""))
    if base == "quarter":
        return f"{period // 4:04d}{separator}Q{period % 4 + 1}"
    if base == "iso_week":
        iso_year, week, _ = date.fromordinal(period * 7 + 1).isocalendar()  # the week's Monday
        return f"{iso_year:04d}{separator}W{week:02d}"
    return f"{period / STEPS_PER_YEAR[frequency]:.6f}".rstrip("0").rstrip(".")


def _date(text: str, fmt: str) -> date:
    try:
        if fmt == "unix":
            return datetime.fromtimestamp(float(text), tz=timezone.utc).date()
        return datetime.strptime(text.replace("T", " ").split(" ")[0], ALL_DATE_FORMATS[fmt][1]).date()
    except (ValueError, OverflowError, OSError):
        raise PeriodError(f"{text!r} is not a date as {FORMAT_SHOWN[fmt]} (as the series' other times)") from None


def _period_of_date(day: date, frequency: str) -> int:
    if frequency == "daily":
        return day.toordinal()
    if frequency == "weekly":
        return day.toordinal() // 7
    if frequency == "monthly":
        return day.year * 12 + day.month - 1
    if frequency == "quarterly":
        return day.year * 4 + (day.month - 1) // 3
    return day.year


def _formats_of(values: Sequence[str]) -> List[str]:
    """The formats every value matches, in order of preference: DD/MM/YYYY after MM/DD/YYYY, which
    ``infer_axis`` keeps only when the month-first reading fails or has gaps the other has not."""
    found = [fmt for fmt, (pattern, _) in ALL_DATE_FORMATS.items()
             if fmt != "unix" and all(pattern.match(v) for v in values)]
    found += [fmt for fmt, pattern in _PERIOD_PATTERNS.items()
              if all(pattern.match(v) for v in values) and (fmt not in ("year_mon", "mon_year")
                                                            or all(_year_and_step(v, fmt)[1] for v in values))
              and _styled(fmt, values[0])]
    if all(DECIMAL_YEAR.match(v) or YEAR.match(v) for v in values):
        found.append("decimal_year")
    if all(DATE_FORMATS["unix"][0].match(v) for v in values):
        found.append("unix")
    if found:
        return found
    bad = next((v for v in values if not any(p.match(v) for p, _ in ALL_DATE_FORMATS.values())
                and not any(p.match(v) for p in _PERIOD_PATTERNS.values())), values[0])
    if TWO_DIGIT_YEAR.match(bad) or TWO_DIGIT_YEAR_MONTH.match(bad):
        raise PeriodError(f"{bad!r} has a two-digit year: which century is not ours to guess; write four-digit years")
    raise PeriodError(f"{bad!r} is not a time this reads ({', '.join(FORMAT_SHOWN.values())})")


def _styled(fmt: str, first: str) -> bool:
    """Whether ``fmt`` is the style a column whose first cell is ``first`` is written back in: a
    quarter or ISO week format's separator is the first cell's; any other format is itself."""
    if fmt not in _STYLED:
        return True
    base, separator = _STYLED[fmt]
    return _SEPARATED[base].match(first).group(2) == separator


def _frequency_of_days(steps: Sequence[float]) -> Optional[str]:
    typical = median(steps)
    return next((name for name, low, high in _STEP_DAYS if low <= typical <= high), None)


def infer_axis(series_times: Sequence[Sequence[str]]) -> TimeAxis:
    """The axis of a time column from its cells, grouped by series (each sorted or not): of the
    formats every cell has, the first that reads them all on a regular frequency with the fewest
    missing steps (01/02/1960, 01/03/1960, ... reads as months day first, not as days with gaps)."""
    cells = [c.strip() for times in series_times for c in times]
    if not cells:
        raise PeriodError("no times")
    grouped = [[c.strip() for c in times] for times in series_times]
    formats = _formats_of(cells)
    readings, refusals = [], []
    for fmt in formats:
        try:
            axis = _axis_in(fmt, grouped)
        except PeriodError as e:
            refusals.append(e)
            continue
        gaps = _missing_steps(axis, grouped) if len(formats) > 1 else 0  # one reading: nothing to compare
        readings.append((gaps, len(readings), axis))
    best = min(readings, default=None)
    if best is None or (best[0] == math.inf and refusals):  # a refusal says more than a format that does not read
        raise refusals[0]
    return best[2]


def _missing_steps(axis: TimeAxis, grouped: Sequence[Sequence[str]]) -> float:
    """The steps each series' span holds beyond its distinct times (gaps), summed; infinite when a
    cell does not read (a period format's cells are only matched by pattern before)."""
    try:
        spans = [{axis.period(c) for c in times} for times in grouped]
    except PeriodError:
        return math.inf
    return sum(max(periods) - min(periods) + 1 - len(periods) for periods in spans if periods)


def _axis_in(fmt: str, grouped: Sequence[Sequence[str]]) -> TimeAxis:
    """The axis of the cells read in ``fmt`` (every cell must read), or a PeriodError."""
    if fmt in _PERIOD_FREQUENCY:  # its cells are read one by one later, each refusal naming its line
        return TimeAxis(fmt, _PERIOD_FREQUENCY[fmt])
    if fmt == "decimal_year":
        steps = [b - a for times in grouped for a, b in zip(*_pairs(sorted(float(t) for t in times)))]
        per_year = round(1 / median(steps)) if steps and median(steps) > 0 else 0
        frequency = next((f for f, n in STEPS_PER_YEAR.items() if n == per_year), None)
        if frequency is None:
            cells = [c for times in grouped for c in times]
            raise PeriodError(f"decimal years {cells[0]}, {cells[1] if len(cells) > 1 else ''}...: a step of "
                              f"{median(steps) if steps else 0:g} years is not monthly, quarterly or yearly")
        return TimeAxis(fmt, frequency)
    days = [sorted(_date(c, fmt) for c in times) for times in grouped]
    steps = [(b - a).days for day_list in days for a, b in zip(*_pairs(day_list))]
    frequency = _frequency_of_days([s for s in steps if s > 0]) if any(s > 0 for s in steps) else None
    if frequency is None:
        typical = median(steps) if steps else 0
        if typical == 0:
            raise PeriodError("its times are less than a day apart: steps shorter than a day are not read (a "
                              "series is daily, weekly, monthly, quarterly or yearly); sum or average its values per "
                              "day first")
        raise PeriodError(f"a typical step of {typical:g} days is not daily, weekly, monthly, quarterly or yearly")
    first = days[0][0]
    anchor = first.toordinal() % 7 if frequency == "weekly" else \
        (0 if first.day == calendar.monthrange(first.year, first.month)[1] and first.day > 28 else first.day)
    month = {"quarterly": (first.month - 1) % 3, "yearly": first.month - 1}.get(frequency, 0)
    return TimeAxis(fmt, frequency, anchor, month)


def _pairs(values: list):
    return values[:-1], values[1:]



SERIES_FILE = "series.json"  # in a forecaster's assets.extra/: how to read a history CSV for it
WINDOW_INPUT, FORECAST_OUTPUT = "window", "forecast"  # the forecaster's serving_default input and output
NEXT_DATE_INPUT = "next_date"  # a daily or weekly forecaster's input: the first forecast step's ISO date


def first_bad_iso_date(values) -> Optional[str]:
    """The first of ``values`` (str or bytes) that is not a date as YYYY-MM-DD, or None: the served
    graph reads next_date by position (components.transform.days_since_epoch), so anything else
    would be a TensorFlow error, or a wrong date read as a right one."""
    for value in values:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        try:
            date.fromisoformat(text)  # Python 3.10: exactly YYYY-MM-DD, a real day
        except ValueError:
            return text
    return None


@dataclass(frozen=True)
class SeriesInfo:
    """What a client needs to turn a history CSV into requests and the answers into dated rows."""
    time: str  # the history's columns, as the user named them
    label: str
    series_id: Tuple[str, ...]
    axis: TimeAxis
    lookback: int
    horizon: int
    # (column, request input) of each known-ahead covariate: a request gives its lookback + horizon
    # values (the window's points, then the forecast steps')
    covariates: Tuple[Tuple[str, str], ...] = ()

    def as_json(self) -> Dict[str, Any]:
        return {"time": self.time, "label": self.label, "series_id": list(self.series_id),
                "axis": asdict(self.axis),
                "lookback": self.lookback, "horizon": self.horizon,
                "covariates": [list(pair) for pair in self.covariates], "inputs": self.inputs()}

    @property
    def window(self) -> Tuple[Any, ...]:
        """What each of its examples holds (lookback, horizon, frequency, covariates): a forecaster
        with another window cannot read these examples, nor be compared on them."""
        return self.lookback, self.horizon, self.axis.frequency, tuple(key for _, key in self.covariates)

    def describe_window(self) -> str:
        return f"{self.horizon} {self.axis.frequency} steps from {self.lookback}" + (
            f" with {', '.join(column for column, _ in self.covariates)}" if self.covariates else "")

    def inputs(self) -> Dict[str, str]:
        """What a request row carries, for /metadata's readers."""
        out = {WINDOW_INPUT: f"the last {self.lookback} values, oldest first"}
        if self.axis.has_calendar:
            out[NEXT_DATE_INPUT] = "the first forecast step's date, YYYY-MM-DD"
        for column, key in self.covariates:
            out[key] = (f"column {column!r} at the window's {self.lookback} points, then at the {self.horizon} "
                        "forecast steps")
        return out

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> "SeriesInfo":
        return cls(str(document["time"]), str(document["label"]), tuple(document.get("series_id", ())),
                   TimeAxis(**document["axis"]), int(document["lookback"]), int(document["horizon"]),
                   tuple((str(c), str(k)) for c, k in document.get("covariates", ())))


def write_series_info(model_dir: Union[str, Path], info: SeriesInfo) -> Path:
    return write_extra(model_dir, SERIES_FILE, info.as_json())


def read_series_info(model_dir: Union[str, Path]) -> Optional[SeriesInfo]:
    """A forecaster's series info, or None for any other model."""
    document = read_extra(model_dir, SERIES_FILE)
    return None if document is None else SeriesInfo.parse(document)
