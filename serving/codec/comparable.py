"""Whether an earlier model of a pipeline can be scored on a later run's eval examples beside the
model that run trained: the Evaluator's baseline and `mlops promote`'s champion must be.

Two cases make them incomparable. A forecaster with another window (horizon, lookback, frequency,
covariates) cannot read the later windows at all. A table whose columns changed (renamed, added,
dropped) hashes each record's new bytes into train or eval afresh (TFX's split), so the later eval
split holds many of the earlier model's training rows: scored there it looks better than it is
(a probe's renamed column: the baseline went from 0.73 on its own eval split to 0.86).
"""
from pathlib import Path
from typing import Union

from serving.codec.columns import read_columns
from serving.codec.periods import read_series_info


def why_not_comparable(earlier: Union[str, Path], later: Union[str, Path], later_split: bool = True) -> str:
    """Why the model in SavedModel dir ``earlier`` cannot be scored on the examples of the run that
    trained ``later`` ("" when it can), in words for a summary or a promotion verdict. Without
    ``later_split`` the examples are others (fresh rows a user gives): only a window matters."""
    old, new = read_series_info(earlier), read_series_info(later)
    if old is not None and new is not None and old.window != new.window:
        return f"it forecasts {old.describe_window()}, this model {new.describe_window()}: it cannot read these windows"
    if not later_split:
        return ""
    old_columns, new_columns = set(read_columns(earlier).keys), set(read_columns(later).keys)
    if old_columns != new_columns:
        changes = [f"new {', '.join(sorted(new_columns - old_columns))}" if new_columns - old_columns else "",
                   f"gone {', '.join(sorted(old_columns - new_columns))}" if old_columns - new_columns else ""]
        return (f"the table's columns changed ({'; '.join(c for c in changes if c)}), so the split into train and eval "
                "moved: these eval rows hold its training rows")
    return ""
