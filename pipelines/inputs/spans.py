"""Span layouts of the input: ``<data>/span-{SPAN}/*.csv`` or dated ``<data>/{YYYY}{MM}{DD}/*.csv``.

ExampleGen reads them with TFX's span patterns (the newest span by default, or one given span).
A dated folder's span number is TFX's: days since 1970-01-01. Pure Python: the CLI finds the
span to profile without importing TFX.
"""
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Dict, Optional

from pipelines.inputs.preflight import InputDataError

NUMBERED = "span-{SPAN}/*.csv"
DATED = "{YYYY}{MM}{DD}/*.csv"
DEFAULT_WINDOW = 3  # training window: the newest accepted spans
_EPOCH = date(1970, 1, 1)
_NUMBERED_DIR = re.compile(r"span-(\d+)$")
_DATED_DIR = re.compile(r"(\d{4})(\d{2})(\d{2})$")


def _dated_span(year: str, month: str, day: str) -> int:
    return (date(int(year), int(month), int(day)) - _EPOCH).days


def span_name(pattern: str, span: int) -> str:
    """How a span is named in the input: 'span-3' or '20261120'."""
    if pattern == DATED:
        return (_EPOCH + timedelta(days=span)).strftime("%Y%m%d")
    return f"span-{span}"


@dataclass(frozen=True)
class SpanLayout:
    root: Path
    pattern: str  # NUMBERED or DATED, relative to root (ExampleGen's input pattern)
    folders: Dict[int, Path]  # span number -> its folder

    @property
    def dated(self) -> bool:
        return self.pattern == DATED

    @property
    def newest(self) -> int:
        return max(self.folders)

    def label(self, span: int) -> str:
        return span_name(self.pattern, span)

    def parse(self, text: str) -> int:
        """``--span``: a number (span-N), or for dated folders YYYYMMDD / YYYY-MM-DD."""
        digits = text.replace("-", "")
        if self.dated and re.fullmatch(r"\d{8}", digits):
            try:
                span = _dated_span(digits[:4], digits[4:6], digits[6:])
            except ValueError:
                raise InputDataError(f"--span {text}: not a date") from None
        elif text.isdigit():
            span = int(text)
        else:
            raise InputDataError(f"--span {text}: give a span number{' or a date YYYYMMDD' if self.dated else ''}")
        if span not in self.folders:
            known = ", ".join(self.label(s) for s in sorted(self.folders))
            raise InputDataError(f"{self.root}: no folder {self.label(span)} (spans: {known})")
        return span

    def csv_of(self, span: int) -> Path:
        """The first CSV of the span's folder (what the CLI profiles before the run)."""
        files = sorted(self.folders[span].glob("*.csv"))
        if not files:
            raise InputDataError(f"{self.folders[span]}: no *.csv file in this span's folder")
        return files[0]


DATA_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz", ".parquet", ".pq")


def detect(root: Path) -> Optional[SpanLayout]:
    """The span layout of a data directory; None for a file or a folder of parts of one table."""
    if not root.is_dir():
        return None
    numbered, dated = {}, {}
    for child in root.iterdir():
        if not child.is_dir():
            continue
        if match := _NUMBERED_DIR.match(child.name):
            numbered[int(match.group(1))] = child
        elif match := _DATED_DIR.match(child.name):
            try:
                dated[_dated_span(*match.groups())] = child
            except ValueError:
                continue  # eight digits that are no date: not a span folder
    if numbered and dated:
        raise InputDataError(f"{root}: both span-N and YYYYMMDD folders; keep one layout")
    if not numbered and not dated:
        if any(child.is_file() and child.name.lower().endswith(DATA_SUFFIXES) for child in root.iterdir()):
            return None  # a folder of parts of one table
        raise InputDataError(f"{root}: a data directory needs CSV or Parquet parts, or span folders "
                             f"(span-N/*.csv or YYYYMMDD/*.csv)")
    return SpanLayout(root, NUMBERED if numbered else DATED, numbered or dated)
