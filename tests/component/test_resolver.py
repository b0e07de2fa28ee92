"""The baseline is the newest blessed model older than the candidate, so reruns stay cached."""
from tfx.components.evaluator import constants
from tfx.types import standard_artifacts

from components.resolver import CANDIDATE, MODEL, MODEL_BLESSING, BlessedBaselineStrategy


def _model(artifact_id: int) -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.id = artifact_id
    return model


def _blessing(model_id: int, blessed: bool) -> standard_artifacts.ModelBlessing:
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model_id)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, int(blessed))
    return blessing


def _resolve(candidate_id, model_ids, blessings):
    models = [_model(i) for i in model_ids]
    candidate = [m for m in models if m.id == candidate_id]
    return BlessedBaselineStrategy().resolve_artifacts(
        None, {CANDIDATE: candidate, MODEL: models, MODEL_BLESSING: blessings})


def test_first_model_has_no_baseline():
    result = _resolve(1, [1], [])
    assert result[MODEL] == [] and result[MODEL_BLESSING] == []


def test_the_cached_candidate_is_never_its_own_baseline():
    result = _resolve(1, [1], [_blessing(1, True)])
    assert result[MODEL] == []


def test_newest_older_blessed_model_wins():
    blessings = [_blessing(1, True), _blessing(2, False), _blessing(3, True), _blessing(5, True)]
    result = _resolve(4, [1, 2, 3, 4, 5], blessings)
    assert [m.id for m in result[MODEL]] == [3]
    assert result[MODEL_BLESSING][0].get_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY) == 3
    assert [m.id for m in result[CANDIDATE]] == [4]
