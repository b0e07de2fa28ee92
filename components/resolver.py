"""Baseline resolution: the latest blessed model that is older than the candidate.

TFX's LatestBlessedModelStrategy returns the newest blessed model, which on a rerun with unchanged
data is the cached candidate itself: the Evaluator's inputs change, it runs again, and the Pusher
pushes the same model as a new version. Taking the newest blessed model *created before the
candidate* gives the same baseline on every rerun, so the whole pipeline is served from cache.
"""
from typing import Dict, List, Optional

import ml_metadata as mlmd
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.common import resolver

CANDIDATE = "candidate"
MODEL = "model"
MODEL_BLESSING = "model_blessing"


def this_runs(artifacts: List[types.Artifact]) -> types.Artifact:
    """This run's artifact of a channel of this run's outputs: the only one under the local runner,
    the newest of every run's under TFX's legacy launcher (the Airflow runner)."""
    return max(artifacts, key=lambda a: a.id)


class BlessedBaselineStrategy(resolver.ResolverStrategy):
    """Inputs ``candidate`` (this run's model), ``model`` and ``model_blessing`` (all of them)."""

    def resolve_artifacts(self, store: mlmd.MetadataStore,
                          input_dict: Dict[str, List[types.Artifact]]) -> Optional[Dict[str, List[types.Artifact]]]:
        candidates = input_dict[CANDIDATE]
        empty = {CANDIDATE: candidates, MODEL: [], MODEL_BLESSING: []}
        if not candidates:
            return empty
        candidate_id = this_runs(candidates).id
        blessing_by_model = {
            b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): b
            for b in input_dict[MODEL_BLESSING]
            if b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
        }
        older_blessed = [m for m in input_dict[MODEL] if m.id < candidate_id and m.id in blessing_by_model]
        if not older_blessed:
            return empty
        baseline = max(older_blessed, key=lambda m: m.id)
        return {CANDIDATE: candidates, MODEL: [baseline], MODEL_BLESSING: [blessing_by_model[baseline.id]]}
