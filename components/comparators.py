"""TFDV's distribution comparators, shared by the drift gate (span vs previous span) and the skew
check (serving rows vs training rows): L-infinity distance of value frequencies for categorical
features, approximate Jensen-Shannon divergence of histograms for numeric ones.

A schema carries them per feature (``drift_comparator`` / ``skew_comparator``); TFDV reports each
measurement in ``Anomalies.drift_skew_info``. Only TFMD protos are used here (no TensorFlow).
"""
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

CATEGORICAL_MEASURE = "L_INFTY"  # TFDV's names for the two measures
NUMERIC_MEASURE = "JENSEN_SHANNON_DIVERGENCE"
DEFAULT_CATEGORICAL_THRESHOLD = 0.1
DEFAULT_NUMERIC_THRESHOLD = 0.1
DRIFT, SKEW = "drift", "skew"  # which comparator of a feature
ACCEPTED_SPAN_TYPE = "mlops.AcceptedSpan"  # what the drift gate publishes for a span it accepted
DRIFT_REPORT_FILE = "drift.json"  # the drift gate's report, in the AcceptedSpan's directory


@dataclass(frozen=True)
class FeatureDistance:
    feature: str
    measure: str  # CATEGORICAL_MEASURE or NUMERIC_MEASURE
    distance: Optional[float]  # None: not measured (e.g. the feature is absent from one side)
    threshold: float

    @property
    def flagged(self) -> bool:
        return self.distance is not None and self.distance > self.threshold

    def as_dict(self) -> dict:
        return {"feature": self.feature, "measure": self.measure, "distance": self.distance,
                "threshold": self.threshold, "flagged": self.flagged}


def is_categorical(feature) -> bool:
    """Strings, string domains and integer features marked categorical."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    return (feature.type == schema_pb2.BYTES or feature.HasField("domain")
            or (feature.HasField("int_domain") and feature.int_domain.is_categorical))


def set_comparators(schema, which: str, categorical: float = DEFAULT_CATEGORICAL_THRESHOLD,
                    numeric: float = DEFAULT_NUMERIC_THRESHOLD, features: Optional[Iterable[str]] = None,
                    skip: Iterable[str] = ()) -> None:
    """Puts a ``which`` (DRIFT or SKEW) comparator on every feature of ``schema`` (or only
    ``features``), except those in ``skip`` (e.g. labels)."""
    wanted, skipped = (set(features) if features is not None else None), set(skip)
    for feature in schema.feature:
        if feature.name in skipped or (wanted is not None and feature.name not in wanted):
            continue
        comparator = getattr(feature, f"{which}_comparator")
        comparator.Clear()
        if is_categorical(feature):
            comparator.infinity_norm.threshold = categorical
        else:
            comparator.jensen_shannon_divergence.threshold = numeric


def comparators(schema, which: str) -> Dict[str, Tuple[str, float]]:
    """feature -> (measure, threshold) of the ``which`` comparators the schema carries."""
    found = {}
    for feature in schema.feature:
        if not feature.HasField(f"{which}_comparator"):
            continue
        comparator = getattr(feature, f"{which}_comparator")
        if comparator.HasField("infinity_norm"):
            found[feature.name] = (CATEGORICAL_MEASURE, comparator.infinity_norm.threshold)
        elif comparator.HasField("jensen_shannon_divergence"):
            found[feature.name] = (NUMERIC_MEASURE, comparator.jensen_shannon_divergence.threshold)
    return found


def distances(anomalies, schema, which: str) -> List[FeatureDistance]:
    """One row per comparator in ``schema``, with the distance TFDV measured into ``anomalies``."""
    measured = {}
    for info in anomalies.drift_skew_info:
        for measurement in getattr(info, f"{which}_measurements"):
            measured[info.path.step[0]] = measurement.value
    return [FeatureDistance(name, measure, measured.get(name), threshold)
            for name, (measure, threshold) in sorted(comparators(schema, which).items())]


def format_distances(rows: List[FeatureDistance], verdict: str) -> List[str]:
    """A table: feature, measure, distance, threshold, and ``verdict`` (e.g. DRIFTED) or ok."""
    lines = [f"  {'feature':<24} {'measure':<26} {'distance':>9} {'threshold':>9}  verdict"]
    for row in rows:
        distance = "n/a" if row.distance is None else f"{row.distance:.4f}"
        lines.append(f"  {row.feature:<24} {row.measure:<26} {distance:>9} {row.threshold:>9g}  "
                     f"{verdict if row.flagged else 'ok'}")
    return lines
