"""Data validation gate: ExampleValidator's anomalies stop the run before Transform.

TFX's ExampleValidator only records anomalies; ``AnomaliesGate`` fails when there are any, and the
Transform is made to depend on it, so nothing downstream runs on data that broke the schema.
"""
import os
from dataclasses import dataclass
from typing import List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies

ANOMALIES_FILE = "SchemaDiff.pb"


@dataclass(frozen=True)
class Anomaly:
    split: str
    feature: str
    kind: str
    description: str


class DataAnomaliesError(RuntimeError):
    pass


def read_anomalies(artifact: ExampleAnomalies) -> List[Anomaly]:
    found = []
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        with open(path, "rb") as f:
            anomalies = anomalies_pb2.Anomalies.FromString(f.read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            kinds = ", ".join(r.short_description for r in info.reason) or info.short_description
            found.append(Anomaly(split, feature, kinds, info.description))
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            found.append(Anomaly(split, "<dataset>", info.short_description, info.description))
    return found


def format_anomalies(anomalies: List[Anomaly], report_uri: str) -> str:
    lines = [f"data validation found {len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}; "
             f"the run stopped before Transform:"]
    lines += [f"  [{a.split}] {a.feature}: {a.kind} - {a.description}" for a in anomalies]
    lines.append(f"full report: {report_uri}")
    return "\n".join(lines)


@component
def AnomaliesGate(anomalies: InputArtifact[ExampleAnomalies]) -> None:  # noqa: N802 (TFX component name)
    found = read_anomalies(anomalies)
    if found:
        raise DataAnomaliesError(format_anomalies(found, anomalies.uri))
