"""Baseline resolution: the latest blessed model that is older than the candidate.

TFX's LatestBlessedModelStrategy returns the newest blessed model, which on a rerun with unchanged
data is the cached candidate itself: the Evaluator's inputs change, it runs again, and the Pusher
pushes the same model as a new version. Taking the newest blessed model *created before the
candidate* gives the same baseline on every rerun, so the whole pipeline is served from cache.
"""
import os
from typing import Dict, List, Optional

import ml_metadata as mlmd
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.common import resolver

from serving.codec.comparable import why_not_comparable
from serving.codec.model_extras import SERVING_MODEL_DIR

CANDIDATE = "candidate"
MODEL = "model"
MODEL_BLESSING = "model_blessing"


def this_runs(artifacts: List[types.Artifact]) -> types.Artifact:
    """This run's artifact of a channel of this run's outputs: the only one under the local runner,
    the newest of every run's under TFX's legacy launcher (the Airflow runner)."""
    return max(artifacts, key=lambda a: a.id)


class ThisRunStrategy(resolver.ResolverStrategy):
    """A strategy keyed on this run's artifact of input ``CURRENT``: ``resolve(this, inputs)``,
    or ``absent(inputs)`` when that channel is empty."""
    CURRENT = "current"

    def resolve_artifacts(self, store: mlmd.MetadataStore,
                          input_dict: Dict[str, List[types.Artifact]]) -> Optional[Dict[str, List[types.Artifact]]]:
        current = input_dict[self.CURRENT]
        return self.resolve(this_runs(current), input_dict) if current else self.absent(input_dict)

    def resolve(self, this: types.Artifact, inputs: Dict[str, List[types.Artifact]]
                ) -> Optional[Dict[str, List[types.Artifact]]]:
        raise NotImplementedError

    def absent(self, inputs: Dict[str, List[types.Artifact]]) -> Optional[Dict[str, List[types.Artifact]]]:
        return None


def comparable(baseline: types.Artifact, candidate: types.Artifact) -> bool:
    """Whether ``baseline`` can be scored on the candidate's eval examples
    (serving.codec.comparable): a baseline that cannot is skipped for the newest one that can."""
    if not baseline.uri or not candidate.uri:
        return True
    return not why_not_comparable(os.path.join(baseline.uri, SERVING_MODEL_DIR),
                                  os.path.join(candidate.uri, SERVING_MODEL_DIR))


class BlessedBaselineStrategy(ThisRunStrategy):
    """Inputs ``candidate`` (this run's model), ``model`` and ``model_blessing`` (all of them)."""
    CURRENT = CANDIDATE

    def absent(self, inputs: Dict[str, List[types.Artifact]]) -> Dict[str, List[types.Artifact]]:
        return {CANDIDATE: inputs[CANDIDATE], MODEL: [], MODEL_BLESSING: []}

    def resolve(self, this: types.Artifact, inputs: Dict[str, List[types.Artifact]]
                ) -> Dict[str, List[types.Artifact]]:
        blessing_by_model = {
            b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): b
            for b in inputs[MODEL_BLESSING]
            if b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
        }
        older_blessed = sorted((m for m in inputs[MODEL] if m.id < this.id and m.id in blessing_by_model),
                               key=lambda m: m.id, reverse=True)
        baseline = next((m for m in older_blessed if comparable(m, this)), None)  # reads models newest first
        if baseline is None:
            return self.absent(inputs)
        return {CANDIDATE: inputs[CANDIDATE], MODEL: [baseline], MODEL_BLESSING: [blessing_by_model[baseline.id]]}
