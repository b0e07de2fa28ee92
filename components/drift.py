"""The drift gate between consecutive spans, and the training window of accepted spans.

``DriftGate`` compares the new span's statistics (train split) with those of the previous
*accepted* span, using the drift comparators the schema carries (``mlops schema NAME`` writes a
curated schema with them); past a threshold it fails with a report naming each feature, its
distance and the threshold, and since Transform depends on it nothing is trained or pushed. A span
that passes is recorded as an ``mlops.AcceptedSpan`` artifact (span, its Examples and statistics),
which the two resolvers below read:

- ``PreviousAcceptedStatistics``: the statistics of the newest accepted span older than this one
  (a refused span never becomes the reference the next span is compared with);
- ``AcceptedSpanWindow``: the Examples of the newest N accepted spans up to this one, the rolling
  window Transform analyzes and the Trainer trains on (refused spans stay out of it).
"""
import json
import os
from typing import Dict, List, Tuple

from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact
from tfx.types.standard_artifacts import Examples, ExampleStatistics, Schema

from components.comparators import (
    ACCEPTED_SPAN_TYPE,
    DRIFT,
    DRIFT_REPORT_FILE,
    FeatureDistance,
    comparators,
    distances,
    format_distances,
    set_comparators,
)
from components.resolver import ThisRunStrategy

SPAN, EXAMPLES_ID, STATISTICS_ID = "span", "examples_id", "statistics_id"
# resolver input/output keys
CURRENT, ACCEPTED, STATISTICS, EXAMPLES = ThisRunStrategy.CURRENT, "accepted", "statistics", "examples"
DRIFT_SPLIT = "train"


class AcceptedSpan(artifact.Artifact):
    """A span that passed the drift gate; its directory holds the drift report (drift.json)."""
    TYPE_NAME = ACCEPTED_SPAN_TYPE


class DataDriftError(RuntimeError):
    pass


def span_of(item: types.Artifact) -> int:
    """The span of an Examples or AcceptedSpan artifact (ExampleGen sets it as a custom property;
    StatisticsGen's copy of it in ExampleStatistics stays 0)."""
    return int(item.get_custom_property(SPAN))


def _statistics(item: types.Artifact):
    from tfx.components.statistics_gen import stats_artifact_utils

    return stats_artifact_utils.load_statistics(item, DRIFT_SPLIT).proto()


def drift_between(current: types.Artifact, previous: types.Artifact,
                  schema_path: str) -> Tuple[List[FeatureDistance], bool]:
    """One row per drift comparator: the distance between the two spans' train splits, and whether
    the default comparators were used (a schema with none of its own: every feature gets one,
    Jensen-Shannon for numbers and L-infinity for strings)."""
    import tensorflow_data_validation as tfdv

    schema = tfdv.load_schema_text(schema_path)
    defaults = not comparators(schema, DRIFT)
    if defaults:
        set_comparators(schema, DRIFT)
    anomalies = tfdv.validate_statistics(_statistics(current), schema, previous_statistics=_statistics(previous))
    return distances(anomalies, schema, DRIFT), defaults


def format_drift(span: int, previous_span: int, rows: List[FeatureDistance]) -> str:
    drifted = [row for row in rows if row.flagged]
    return "\n".join([f"data drift: span {span} vs span {previous_span} (the previous accepted span): "
                      f"{len(drifted)} feature{'s' if len(drifted) != 1 else ''} past the threshold "
                      f"({', '.join(row.feature for row in drifted)}); the run stopped before Transform:",
                      *format_distances(rows, "DRIFTED")])


@component
def DriftGate(statistics: InputArtifact[ExampleStatistics], examples: InputArtifact[Examples],  # noqa: N802
              schema: InputArtifact[Schema], accepted: OutputArtifact[AcceptedSpan],
              previous_statistics: InputArtifact[ExampleStatistics] = None,
              previous_accepted: InputArtifact[AcceptedSpan] = None) -> None:
    span = span_of(examples)
    report = {"span": span, "previous_span": None, "features": [], "drifted": []}
    if previous_statistics is not None and previous_accepted is not None:
        rows, defaults = drift_between(statistics, previous_statistics, os.path.join(schema.uri, "schema.pbtxt"))
        report.update(previous_span=span_of(previous_accepted), features=[row.as_dict() for row in rows],
                      drifted=[row.feature for row in rows if row.flagged], default_comparators=defaults)
        if not rows:
            report["note"] = "the schema has no features to compare"
    if report["drifted"]:
        raise DataDriftError(format_drift(span, report["previous_span"], rows))
    os.makedirs(accepted.uri, exist_ok=True)
    with open(os.path.join(accepted.uri, DRIFT_REPORT_FILE), "w") as f:
        json.dump(report, f, indent=1)
    accepted.set_int_custom_property(SPAN, span)
    accepted.set_int_custom_property(EXAMPLES_ID, examples.id)
    accepted.set_int_custom_property(STATISTICS_ID, statistics.id)


def _newest_per_span(accepted: List[types.Artifact]) -> Dict[int, types.Artifact]:
    """span -> its newest acceptance (a span rerun on new data is accepted again)."""
    newest: Dict[int, types.Artifact] = {}
    for item in sorted(accepted, key=lambda a: a.id):
        newest[span_of(item)] = item
    return newest


class PreviousAcceptedStatistics(ThisRunStrategy):
    """Inputs ``current`` (this run's Examples), ``accepted`` and ``statistics`` (all of them)."""

    def absent(self, inputs: Dict[str, List[types.Artifact]]) -> Dict[str, List[types.Artifact]]:
        return {CURRENT: inputs[CURRENT], ACCEPTED: [], STATISTICS: []}

    def resolve(self, this: types.Artifact, inputs: Dict[str, List[types.Artifact]]
                ) -> Dict[str, List[types.Artifact]]:
        result = self.absent(inputs)
        earlier = {span: a for span, a in _newest_per_span(inputs[ACCEPTED]).items() if span < span_of(this)}
        if earlier:
            reference = earlier[max(earlier)]
            wanted = reference.get_int_custom_property(STATISTICS_ID)
            result[ACCEPTED] = [reference]
            result[STATISTICS] = [s for s in inputs[STATISTICS] if s.id == wanted]
        return result


class AcceptedSpanWindow(ThisRunStrategy):
    """Inputs ``current`` (this run's acceptance), ``accepted`` and ``examples`` (all of them);
    resolves ``examples`` to the newest ``num_spans`` accepted spans up to the current one, oldest first."""

    def __init__(self, num_spans: int):
        self._num_spans = num_spans

    def resolve(self, this: types.Artifact, inputs: Dict[str, List[types.Artifact]]
                ) -> Dict[str, List[types.Artifact]]:
        newest = _newest_per_span(inputs[ACCEPTED] + inputs[CURRENT])
        spans = sorted(span for span in newest if span <= span_of(this))[-self._num_spans:]
        by_id = {e.id: e for e in inputs[EXAMPLES]}
        wanted = [newest[span].get_int_custom_property(EXAMPLES_ID) for span in spans]
        window = [by_id[examples_id] for examples_id in wanted if examples_id in by_id]
        return {CURRENT: inputs[CURRENT], ACCEPTED: [newest[span] for span in spans], EXAMPLES: window}
