"""What a column of a user's table is: its safe feature key, whether a cell is missing, and its
kind (number, boolean, date-time, text), decided on a sample. Pure Python, no TensorFlow.

Keys are what TFX, the Transform and the model see; the original names are what users type and
send (``--label``, REST rows, CSV headers): ``ColumnMap`` goes between the two.
"""
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import List, Optional, Sequence, Tuple

from serving.codec import periods
from serving.codec.columns import FALSE_TOKENS, NA_TOKENS, TRUE_TOKENS  # noqa: F401 (re-exported: one place)


class InputDataError(ValueError):
    """Bad user input: the message is one line naming the file, line, column or value."""



# Column kinds
NUMERIC, INTEGER, BOOLEAN, DATETIME, STRING = "numeric", "integer", "boolean", "datetime", "string"
TEXT = "text"  # free text: several words per value, many distinct values (tokenized, not a category)
UNIX_SECONDS = "unix"
# Date-time formats a column may hold (one per column, decided on the sample), as the Transform parses them
DATE_FORMATS = {name: pattern for name, (pattern, _) in periods.DATE_FORMATS.items() if name != UNIX_SECONDS}
DATE_FORMATS_SHOWN = {name: periods.FORMAT_SHOWN[name] for name in DATE_FORMATS}  # as a message names them


def feature_key(name: str) -> str:
    """snake_case, ASCII-folded, never empty, starting with a letter: ``Malic Acid`` ->
    ``malic_acid``, ``Sepal.Length`` -> ``sepal_length``, ``2nd gear`` -> ``col_2nd_gear``, ``1960`` ->
    ``col_1960`` (TensorFlow renames a signature input that starts with '_' or a digit)."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    folded = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", folded.strip())  # camelCase -> camel_Case
    key = re.sub(r"[^0-9a-zA-Z]+", "_", folded).strip("_").lower()
    if not key:
        key = "column"
    return f"col_{key}" if key[0].isdigit() else key


def feature_keys(names: Sequence[str]) -> List[str]:
    """``feature_key`` of each name, made unique in order (``a``, ``a_2``, ``a_3``)."""
    keys: List[str] = []
    taken = set()
    for name in names:
        key = base = feature_key(name)
        number = 2
        while key in taken:
            key, number = f"{base}_{number}", number + 1
        taken.add(key)
        keys.append(key)
    return keys


@dataclass(frozen=True)
class ColumnMap:
    """Original column names <-> feature keys, in the file's order."""
    names: Tuple[str, ...]
    keys: Tuple[str, ...]

    @classmethod
    def of(cls, names: Sequence[str]) -> "ColumnMap":
        return cls(tuple(names), tuple(feature_keys(names)))

    def key(self, name_or_key: str) -> Optional[str]:
        """The key of a column given by its original name or its key (None when neither)."""
        if name_or_key in self.names:
            return self.keys[self.names.index(name_or_key)]
        return name_or_key if name_or_key in self.keys else None

    def name(self, key: str) -> str:
        return self.names[self.keys.index(key)] if key in self.keys else key



def boolean_value(cell: str) -> Optional[bool]:
    text = cell.strip().lower()
    if text in TRUE_TOKENS:
        return True
    if text in FALSE_TOKENS:
        return False
    return None


def _number(cell: str) -> Optional[float]:
    try:
        return float(cell)
    except ValueError:
        return None


def date_format(values: Sequence[str]) -> Optional[str]:
    """The one date-time format every value has, or None. MM/DD/YYYY only when unambiguous over the
    sample: some first field is above 12 would make it DD/MM, so it is refused as a date then."""
    for name, pattern in DATE_FORMATS.items():
        if values and all(pattern.match(v) for v in values):
            if name == "mdy_slash" and any(int(v.split("/")[0]) > 12 for v in values):
                return None
            if name != "iso" or _valid_iso(values[:50]):
                return name
    return None


DATE_MAJORITY = 0.5  # more than this share of a column's values dates of one format: a date column


def mostly_dates(cells: Sequence[Tuple[int, str]]) -> Optional["ColumnKind"]:
    """DATETIME with ``bad_*`` naming the first cell that is not a date, when most of the (line, text)
    cells are dates of one format and the others are not (a range '09/20/2011 - 10/28/2011', a
    word); else None. Read as text, such a column's dates were words; forced to ISO, none read."""
    values = [v.strip() for _, v in cells]
    counts = {name: sum(1 for v in values if pattern.match(v)) for name, pattern in DATE_FORMATS.items()}
    best = max(counts, key=counts.get)
    if not DATE_MAJORITY * len(values) < counts[best] < len(values):
        return None
    fmt = date_format([v for v in values if DATE_FORMATS[best].match(v)])
    if fmt is None:
        return None
    bad = [(line, v) for (line, _), v in zip(cells, values) if not DATE_FORMATS[fmt].match(v)]
    return ColumnKind(DATETIME, fmt, bad_line=bad[0][0], bad_value=bad[0][1], bad_count=len(bad))


def two_digit_year_date(values: Sequence[str]) -> Optional[str]:
    """The first of ``values`` when most are dates with a two-digit year (a spreadsheet's default
    export), else None: which century is not ours to guess, and as words such a column means nothing."""
    matching = [v for v in values if periods.TWO_DIGIT_YEAR.match(v.strip())]
    return matching[0] if values and len(matching) > DATE_MAJORITY * len(values) else None


def _valid_iso(values: Sequence[str]) -> bool:
    try:
        for v in values:
            datetime.fromisoformat(v[:10])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ColumnKind:
    kind: str  # numeric, integer, boolean, datetime, string
    date_format: str = ""  # datetime: iso, ymd_slash, mdy_slash or unix
    text_length: int = 0  # text: the words its values are padded or cut to
    text_cut: float = 0.0  # text: the share of its sampled values longer than the longest window, cut there
    bad_line: int = 0  # numbers or dates with stray words: the first offending line
    bad_value: str = ""
    bad_count: int = 0


def infer_kind(cells: Sequence[Tuple[int, str]], forced_datetime: bool = False) -> ColumnKind:
    """The kind of a column from its present (non-missing) sampled cells, (line, text) pairs.
    A mostly numeric column with a few words is numeric with ``bad_*`` set (an error to report)."""
    values = [v.strip() for _, v in cells]
    numbers = [_number(v) for v in values]
    if forced_datetime:
        if values and all(n is not None for n in numbers):
            return ColumnKind(DATETIME, UNIX_SECONDS)
        fmt = date_format(values)
        return ColumnKind(DATETIME, fmt) if fmt else mostly_dates(cells) or ColumnKind(DATETIME, bad_count=len(values))
    if values and all(boolean_value(v) is not None for v in values) and not all(n is not None for n in numbers):
        return ColumnKind(BOOLEAN)
    bad = [(line, v.strip()) for (line, v), n in zip(cells, numbers) if n is None]
    if not bad and values:
        whole = all(n is not None and float(n).is_integer() and "." not in v and "e" not in v.lower()
                    for n, v in zip(numbers, values))
        return ColumnKind(INTEGER if whole else NUMERIC)
    if values and len(bad) < len(values) / 2:
        return ColumnKind(NUMERIC, bad_line=bad[0][0], bad_value=bad[0][1], bad_count=len(bad))
    fmt = date_format(values[:2000])
    if fmt:
        return ColumnKind(DATETIME, fmt)
    return mostly_dates(cells) or ColumnKind(STRING)


# A number as a spreadsheet in another locale writes it, which float() does not read: a decimal comma
# ('38,6319', '-0,5') or thousands grouped by a comma, point, space or apostrophe ('1,167', '1.234.567,5').
SEPARATED_NUMBER = re.compile(r"[+-]?(?:\d+,\d+|\d{1,3}([.,' \u00a0\u202f])\d{3}(?:\1\d{3})*(?:(?!\1)[.,]\d+)?)")
SEPARATED_SHARE = 0.95  # of a column's values: numbers, and at least one of them so written
NUMBER_FORM = "numbers with a '.' decimal point and no thousands separators"


def separated_number(cells: Sequence[Tuple[int, str]]) -> Optional[Tuple[int, str]]:
    """(line, value) of the first number written with a separator in a column of such numbers (with
    plain ones among them), else None."""
    first, numbers = None, 0
    for line, value in cells:
        text = value.strip()
        if SEPARATED_NUMBER.fullmatch(text):
            first, numbers = first or (line, text), numbers + 1
        elif _number(text) is not None:
            numbers += 1
    return first if first and numbers >= SEPARATED_SHARE * len(cells) else None


TEXT_MIN_WORDS = 3  # a value of at least this many words is prose, not a name or a code
TEXT_WORDY_SHARE = 0.5  # ... on at least this share of a column's sampled values
TEXT_MIN_DISTINCT = 20  # and more distinct values than a category would have (its share below)
TEXT_DISTINCT_SHARE = 0.2
TEXT_LENGTHS = (8, 512)  # the token window a text column is padded or cut to: its 99th percentile, clamped
WORD = re.compile(r"\w+", re.UNICODE)


def words(value: str) -> int:
    return len(WORD.findall(value))


def is_text(values: Sequence[str], distinct: int) -> bool:
    """Free text: most values hold several words, and there are many distinct ones (a column of a
    few repeated phrases stays a category; one token per row stays an identifier)."""
    if not values or distinct < max(TEXT_MIN_DISTINCT, TEXT_DISTINCT_SHARE * len(values)):
        return False
    wordy = sum(1 for v in values if words(v) >= TEXT_MIN_WORDS)
    return wordy >= TEXT_WORDY_SHARE * len(values)


def text_length(values: Sequence[str]) -> int:
    """The words a text column's values are padded or cut to: 99% of values fit, within TEXT_LENGTHS
    (a bag of words cut at 95% lost the tails of the longest texts, and with them some of their signal)."""
    counts = sorted(words(v) for v in values) or [0]
    low, high = TEXT_LENGTHS
    return max(low, min(high, counts[min(len(counts) - 1, int(0.99 * len(counts)))]))


def text_cut(values: Sequence[str], length: int) -> float:
    """The share of ``values`` longer than ``length`` words: what a window of that length cuts."""
    return sum(1 for v in values if words(v) > length) / len(values) if values else 0.0


# "column": a blank header; "uid", "uuid", "guid", "pk", "key": what survey and database exports call a
# row's identifier (a probe's 64,600-row survey kept 'uid' 1..64600 as a feature)
INDEX_KEYS = ("id", "column", "index", "unnamed_0", "row", "rownames", "row_id", "uid", "uuid", "guid", "pk", "key")
# Names a counter goes by: left out when its values are 0..n-1 or 1..n, once each ('Number' 0..514 in a
# file sorted by its label was that label's order). A 'day' or 'x' of the same values stays a feature.
ROW_NUMBER_KEYS = ("number", "no", "nr", "num", "n", "obs", "observation", "record", "case", "seq", "serial",
                   "idx", "row_number", "row_no", "rownum", "line", "sl_no", "s_no", "sno")


def is_identifier(key: str, kind: str, distinct: int, present: int, unique_so_far: bool) -> bool:
    """An ID-like column: text with a distinct value on more than 95% of rows, or a unique integer
    column named like ``id`` / ``*_id`` (or a row index: R's and pandas' unnamed first column)."""
    if present == 0:
        return False
    if kind == STRING:
        return distinct > 0.95 * present and present >= 20
    return kind == INTEGER and unique_so_far and (key in INDEX_KEYS or key.endswith("_id"))


def infer_task(kind: str, distinct_values: Sequence[str], distinct_count: int) -> Tuple[str, str]:
    """(task, why) for a label column: 2 values -> binary; text, booleans or <= 20 integer values
    -> multiclass; otherwise numbers -> regression."""
    if distinct_count == 2:
        return "binary", "2 distinct label values"
    if kind in (STRING, BOOLEAN):
        return "multiclass", f"{distinct_count} text label values"
    if kind == INTEGER and distinct_count <= 20:
        return "multiclass", f"{distinct_count} integer label values (<= 20)"
    return "regression", f"a numeric label with {distinct_count}{'+' if distinct_count >= 1000 else ''} values"


def encode_label_cell(cell: str, kind: str) -> str:
    """A label cell as the staged copy holds it: booleans as 1/0 (binary labels read 0/1)."""
    if kind == BOOLEAN:
        value = boolean_value(cell)
        return "" if value is None else str(int(value))
    return cell.strip()
