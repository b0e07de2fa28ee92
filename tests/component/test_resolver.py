"""Resolver strategies: the baseline is the newest blessed model older than the candidate (so reruns
stay cached); the drift reference and the training window are accepted spans."""
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


# spans: the drift gate's reference and the training window come from accepted spans only

def _accepted(artifact_id: int, span: int, examples_id: int, statistics_id: int):
    from components.drift import EXAMPLES_ID, SPAN, STATISTICS_ID, AcceptedSpan

    accepted = AcceptedSpan()
    accepted.id = artifact_id
    for key, value in ((SPAN, span), (EXAMPLES_ID, examples_id), (STATISTICS_ID, statistics_id)):
        accepted.set_int_custom_property(key, value)
    return accepted


def _with_id(artifact, artifact_id: int, span: int = None):
    artifact.id = artifact_id
    if span is not None:
        artifact.set_int_custom_property("span", span)
    return artifact


def test_previous_reference_is_the_newest_accepted_older_span():
    from components.drift import ACCEPTED, CURRENT, STATISTICS, PreviousAcceptedStatistics

    statistics = [_with_id(standard_artifacts.ExampleStatistics(), i) for i in (11, 12, 14, 15)]
    # span 1 accepted, span 2 accepted twice (new data: the newer counts), span 3 refused (never accepted)
    accepted = [_accepted(21, 1, 1, 11), _accepted(22, 2, 2, 12), _accepted(24, 2, 4, 14)]
    current = [_with_id(standard_artifacts.Examples(), 5, span=4)]
    result = PreviousAcceptedStatistics().resolve_artifacts(
        None, {CURRENT: current, ACCEPTED: accepted, STATISTICS: statistics})
    assert [a.id for a in result[STATISTICS]] == [14] and [a.id for a in result[ACCEPTED]] == [24]
    first = PreviousAcceptedStatistics().resolve_artifacts(
        None, {CURRENT: [_with_id(standard_artifacts.Examples(), 1, span=1)], ACCEPTED: [], STATISTICS: []})
    assert first[STATISTICS] == [] and first[ACCEPTED] == []


def test_window_is_the_newest_accepted_spans_up_to_the_current_one():
    from components.drift import ACCEPTED, CURRENT, EXAMPLES, AcceptedSpanWindow

    examples = [_with_id(standard_artifacts.Examples(), i, span=s) for i, s in ((1, 1), (2, 2), (3, 3), (4, 5), (6, 6))]
    accepted = [_accepted(21, 1, 1, 0), _accepted(22, 2, 2, 0), _accepted(24, 5, 4, 0), _accepted(26, 6, 6, 0)]
    # span 3 was refused; rerunning span 5 (--span 5) ignores the later span 6
    result = AcceptedSpanWindow(num_spans=3).resolve_artifacts(
        None, {CURRENT: [accepted[2]], ACCEPTED: accepted, EXAMPLES: examples})
    assert [e.id for e in result[EXAMPLES]] == [1, 2, 4]
    one = AcceptedSpanWindow(num_spans=1).resolve_artifacts(
        None, {CURRENT: [accepted[3]], ACCEPTED: accepted, EXAMPLES: examples})
    assert [e.id for e in one[EXAMPLES]] == [6]


def test_a_forecasters_baseline_reads_the_same_window(tmp_path):
    """A forecaster retrained with another horizon (or lookback, frequency, covariates) cannot be
    compared with the last blessed one: its windows do not parse (the Evaluator failed on them). The
    baseline is the newest blessed model with this run's window, else none."""
    from serving.codec.model_extras import SERVING_MODEL_DIR
    from serving.codec.periods import SeriesInfo, TimeAxis, write_series_info

    def forecaster(artifact_id, horizon, lookback=24):
        model = _model(artifact_id)
        model.uri = str(tmp_path / str(artifact_id))
        write_series_info(tmp_path / str(artifact_id) / SERVING_MODEL_DIR,
                          SeriesInfo("month", "sales", (), TimeAxis("year_month", "monthly"), lookback, horizon))
        return model

    models = [forecaster(1, 6), forecaster(2, 3), forecaster(3, 6, lookback=18), forecaster(4, 3)]
    blessings = [_blessing(i, True) for i in (1, 2, 3)]

    def baseline(candidate):
        result = BlessedBaselineStrategy().resolve_artifacts(
            None, {CANDIDATE: [candidate], MODEL: models, MODEL_BLESSING: blessings})
        return [m.id for m in result[MODEL]]

    assert baseline(models[3]) == [2]  # not 3 (another lookback), the newest blessed with horizon 3
    assert baseline(forecaster(5, 12)) == []  # no blessed model forecasts 12 steps


def test_a_tables_baseline_has_its_columns(tmp_path):
    """Renamed or added columns re-split the table (each record's bytes are hashed): the last blessed
    model trained on many of this run's eval rows and is no fair baseline; the newest with the
    same columns is."""
    from serving.codec.columns import write_columns
    from serving.codec.model_extras import SERVING_MODEL_DIR

    def table_model(artifact_id, columns):
        model = _model(artifact_id)
        model.uri = str(tmp_path / str(artifact_id))
        write_columns(str(tmp_path / str(artifact_id) / SERVING_MODEL_DIR), [[c, c.lower()] for c in columns], {},
                      ["y"], {})
        return model

    models = [table_model(1, ["A", "B", "y"]), table_model(2, ["A", "C", "y"]), table_model(3, ["A", "B", "y"])]
    result = BlessedBaselineStrategy().resolve_artifacts(
        None, {CANDIDATE: [models[2]], MODEL: models, MODEL_BLESSING: [_blessing(1, True), _blessing(2, True)]})
    assert [m.id for m in result[MODEL]] == [1]
