"""The promotion gate's rules, the rollback target, serving label routing, the promotion lock and
the registry helpers on a SQLite MLflow store (no TensorFlow, no pipeline)."""
import json
import re
import threading

import pytest

from components.ports import free_port
from core.home import Home
from release import mlflow_registry, promotion
from release.model_eval import SliceScore
from release.promotion import Outcome, PromotionError, PromotionRules, decide, format_table, rollback_target
from serving.runtime import model_config

BINARY = [("is_fraud", "binary")]


def _scores(overall, **slices):
    return {"is_fraud": {"overall": SliceScore(overall, 100), **{k: SliceScore(*v) for k, v in slices.items()}}}


def _failed(checks):
    return [(c.slice, c.rule) for c in checks if not c.passed]


def test_first_promotion_is_judged_on_the_absolute_bound_only():
    gates = {"is_fraud": 0.7}
    assert _failed(decide(BINARY, _scores(0.8), None, gates, PromotionRules())) == []
    assert _failed(decide(BINARY, _scores(0.65), None, gates, PromotionRules())) == [("overall", ">= 0.7")]
    # an explicit bound replaces the pipeline's, for every target with '*'
    assert _failed(decide(BINARY, _scores(0.8), None, gates, PromotionRules({"*": 0.9}))) == [("overall", ">= 0.9")]


def test_improvement_and_slice_rules_against_the_champion():
    champion = _scores(0.90, **{"segment=online": (0.90, 30), "segment=tiny": (0.99, 3)})
    better = _scores(0.93, **{"segment=online": (0.88, 30), "segment=tiny": (0.50, 3)})
    checks = decide(BINARY, better, champion, {}, PromotionRules(max_slice_drop=0.05))
    assert _failed(checks) == []  # online dropped 0.02 (allowed); tiny has 3 rows: shown, not gated
    assert [c.rule for c in checks if c.slice == "segment=tiny"] == ["not gated (small/undefined)"]
    assert _failed(decide(BINARY, better, champion, {}, PromotionRules(max_slice_drop=0.01))) == \
        [("segment=online", "drops <= 0.01")]
    assert _failed(decide(BINARY, better, champion, {}, PromotionRules(min_improvement=0.05))) == \
        [("overall", "improves by >= 0.05")]
    worse = _scores(0.89, **{"segment=online": (0.90, 30)})
    assert _failed(decide(BINARY, worse, champion, {}, PromotionRules())) == [("overall", "improves by >= 0")]


def test_lower_is_better_metrics_improve_downwards():
    targets = [("price", "regression")]
    champion = {"price": {"overall": SliceScore(2.0, 50)}}
    assert _failed(decide(targets, {"price": {"overall": SliceScore(1.8, 50)}}, champion, {"price": 3.0},
                          PromotionRules())) == []
    assert _failed(decide(targets, {"price": {"overall": SliceScore(2.2, 50)}}, champion, {"price": 3.0},
                          PromotionRules())) == [("overall", "improves by >= 0")]
    assert _failed(decide(targets, {"price": {"overall": SliceScore(3.5, 50)}}, None, {"price": 3.0},
                          PromotionRules())) == [("overall", "<= 3")]


def test_an_undefined_metric_never_passes_the_overall_rules():
    assert _failed(decide(BINARY, _scores(None), None, {"is_fraud": 0.5}, PromotionRules())) == [("overall", ">= 0.5")]


def _event(kind, origin, to):
    return {"kind": kind, "from": {"version": origin} if origin else None, "to": {"version": to}}


def test_rollback_goes_to_the_newest_earlier_champion_never_rolled_back_from():
    events = [_event("promoted", None, 1), _event("promoted", 1, 2), _event("canary", 2, 4), _event("promoted", 2, 3)]
    assert rollback_target(events, 3) == 2
    events.append(_event("rollback", 3, 2))
    assert rollback_target(events, 2) == 1  # not back to 3, which was rolled back from
    assert rollback_target([_event("promoted", None, 1)], 1) is None


def test_format_table_text_and_markdown():
    outcome = Outcome("m", "refused", challenger=3, champion=2,
                      checks=decide(BINARY, _scores(0.8), _scores(0.9), {"is_fraud": 0.7}, PromotionRules()),
                      message="is_fraud overall auc 0.8000 fails 'improves by >= 0'")
    text = format_table(outcome)
    assert text.splitlines()[0] == "promotion of 'm': challenger v3 vs champion v2"
    assert re.search(r"^  is_fraud +overall +auc +0\.9000 +0\.8000 +100 +improves by >= 0 +NO *$", text, re.M), text
    assert text.splitlines()[-1].startswith("verdict: refused")
    markdown = format_table(outcome, markdown=True)
    assert "| is_fraud | overall | auc | 0.9000 | 0.8000 | 100 | improves by >= 0 | NO |" in markdown


def _serving_home(tmp_path, versions=(100, 200, 300)):
    home = Home(tmp_path / "home")
    for version in versions:
        (home.model_base_dir("m") / str(version)).mkdir(parents=True)
    model_config.ensure_model(model_config.config_path(home.serving_dir), "m")
    return home


def _model(home):
    return model_config.find_model(model_config.read(model_config.config_path(home.serving_dir)), "m")


def test_route_pins_labelled_previous_stable_and_newest_versions(tmp_path):
    home = _serving_home(tmp_path)
    promotion.route(home, "m", {"stable": 100})
    assert dict(_model(home).version_labels) == {"stable": 100}
    assert list(_model(home).model_version_policy.specific.versions) == [100, 300]
    promotion.route(home, "m", {"stable": 200, "canary": None})
    assert dict(_model(home).version_labels) == {"stable": 200}
    assert list(_model(home).model_version_policy.specific.versions) == [100, 200, 300]


def test_a_push_after_promotion_is_served_and_unlabelled_versions_are_released(tmp_path):
    home = _serving_home(tmp_path)
    promotion.route(home, "m", {"stable": 200})
    (home.model_base_dir("m") / "400").mkdir()
    model_config.ensure_model(model_config.config_path(home.serving_dir), "m", new_version=400)
    assert list(_model(home).model_version_policy.specific.versions) == [200, 400]
    assert dict(_model(home).version_labels) == {"stable": 200}


def test_a_second_promotion_of_the_same_model_fails_at_once(tmp_path):
    """No clock: the second attempt runs in a thread while the first still holds the lock, so it can
    only finish (with the error) if it does not wait for the lock; the join's 60 s only bounds a
    broken build, a lock that waits would never be released before it."""
    home = Home(tmp_path)
    raised = []

    def second():
        with pytest.raises(PromotionError, match=r"another promotion or rollback of 'm' is in progress \(pid \d+"):
            with promotion.exclusive(home, "m"):
                pass
        raised.append(True)

    with promotion.exclusive(home, "m"):
        attempt = threading.Thread(target=second, daemon=True)
        attempt.start()
        attempt.join(timeout=60)
        finished_while_held = not attempt.is_alive()
        with promotion.exclusive(home, "other"):  # another model is independent
            pass
    attempt.join(timeout=60)
    assert finished_while_held and raised == [True]
    with promotion.exclusive(home, "m"):  # released
        pass


def test_unreachable_tracking_server_is_one_clear_line(monkeypatch):
    """Fails fast: one connection attempt with a 5 s timeout (MLflow's own client would retry for
    minutes); the attempts are counted, not timed."""
    import urllib.request

    port = free_port()  # nothing listens on it
    attempts, real_urlopen = [], urllib.request.urlopen

    def counted(url, *args, **kwargs):
        attempts.append((getattr(url, "full_url", url), kwargs.get("timeout")))
        return real_urlopen(url, *args, **kwargs)
    monkeypatch.setattr(urllib.request, "urlopen", counted)
    unreachable = f"MLflow tracking server http://127.0.0.1:{port} is unreachable"
    with pytest.raises(mlflow_registry.RegistryError, match=unreachable):
        mlflow_registry.check_reachable(f"http://127.0.0.1:{port}")
    assert attempts == [(f"http://127.0.0.1:{port}{mlflow_registry.ACCESS_PATH}", 5.0)]  # and who calls
    mlflow_registry.check_reachable("sqlite:///x.db")  # a local store needs no check
    assert len(attempts) == 1


@pytest.fixture(scope="module")
def sqlite_client(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    return mlflow_registry.client_for(uri)


def _tags(path):
    return {mlflow_registry.SERVING_PATH_TAG: path, mlflow_registry.SERVING_VERSION_TAG: path.rsplit("/", 1)[-1]}


def test_registering_is_idempotent_per_pushed_model_and_moves_the_challenger(sqlite_client, tmp_path):
    with pytest.raises(mlflow_registry.RegistryError, match="no registered model 'reg'"):
        mlflow_registry.aliases(sqlite_client, "reg")
    first = mlflow_registry.register_pushed(sqlite_client, "reg", str(tmp_path / "a"), None, _tags("/s/reg/100"))
    again = mlflow_registry.register_pushed(sqlite_client, "reg", str(tmp_path / "a"), None, _tags("/s/reg/100"))
    assert int(first.version) == int(again.version) == 1
    second = mlflow_registry.register_pushed(sqlite_client, "reg", str(tmp_path / "b"), None, _tags("/s/reg/200"))
    assert int(second.version) == 2 and mlflow_registry.aliases(sqlite_client, "reg") == {"challenger": 2}
    mlflow_registry.set_alias(sqlite_client, "reg", "champion", 1)
    mlflow_registry.set_alias(sqlite_client, "reg", "challenger", None)
    mlflow_registry.set_alias(sqlite_client, "reg", "canary", None)  # removing a missing alias is fine
    assert mlflow_registry.aliases(sqlite_client, "reg") == {"champion": 1}
    with pytest.raises(mlflow_registry.RegistryError, match="has no version 9"):
        mlflow_registry.get_version(sqlite_client, "reg", 9)


def test_history_is_kept_in_order_as_registry_tags(sqlite_client, tmp_path):
    mlflow_registry.register_pushed(sqlite_client, "hist", str(tmp_path), None, _tags("/s/hist/1"))
    for i in range(12):
        mlflow_registry.append_history(sqlite_client, "hist", {"kind": "promoted", "to": {"version": i}})
    events = mlflow_registry.history(sqlite_client, "hist")
    assert [e["seq"] for e in events] == list(range(1, 13)) and [e["to"]["version"] for e in events] == list(range(12))
    tags = sqlite_client.get_registered_model("hist").tags
    assert json.loads(tags["promotion.0012"])["seq"] == 12


def test_the_registered_pyfunc_model_code_stands_alone():
    """MLflow runs serving/pyfunc_model.py wherever the model is loaded: only mlflow, numpy, pandas
    and tensorflow may be imported there, never this project."""
    import ast

    from serving.pyfunc import MODEL_CODE, SAVED_MODEL

    tree = ast.parse(MODEL_CODE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"typing", "mlflow", "numpy", "pandas", "tensorflow"}, imported
    assert f'SAVED_MODEL = "{SAVED_MODEL}"' in MODEL_CODE.read_text()


def test_nothing_to_promote_reads_as_such():
    text = format_table(Outcome("m", "nothing", champion=2, message="no challenger (every pushed model was "
                                                                    "already promoted)"))
    assert text.splitlines() == ["promotion of 'm': champion v2",
                                 "verdict: nothing (no challenger (every pushed model was already promoted))"]


def test_a_new_sqlite_store_is_a_copy_of_mlflows_empty_one_and_an_existing_store_is_untouched(tmp_path,
                                                                                                monkeypatch):
    import sqlite3

    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    def schema(path):  # each table's and index's lines, in any order (MLflow's migrations vary the order)
        with sqlite3.connect(path) as db:
            return ({(kind, name, tuple(sorted(line.strip(" ,") for line in (sql or "").splitlines())))
                     for kind, name, sql in db.execute("SELECT type, name, sql FROM sqlite_master")},
                    db.execute("SELECT version_num FROM alembic_version").fetchall())

    MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'built.db'}").search_experiments()  # MLflow's own way
    for home in ("a", "b"):  # the first makes the empty store, the second only copies it
        (tmp_path / home).mkdir()
        client = mlflow_registry.client_for(Home(tmp_path / home).mlflow_uri)
        assert schema(tmp_path / home / "mlflow.db") == schema(tmp_path / "built.db")
        (default,) = client.search_experiments()
        assert default.name == "Default" and default.artifact_location == str(tmp_path / "mlruns" / "0")
    assert [p.name for p in (tmp_path / "cache" / "composable-mlops").iterdir()] == [
        f"mlflow-{__import__('mlflow').__version__}-empty.db"]

    client.create_registered_model("fraud")
    before = (tmp_path / "b" / "mlflow.db").read_bytes()
    assert mlflow_registry.client_for(Home(tmp_path / "b").mlflow_uri).get_registered_model("fraud")
    assert (tmp_path / "b" / "mlflow.db").read_bytes() == before
    mlflow_registry.seed_sqlite_store("http://127.0.0.1:1")  # a server: nothing to seed

    (tmp_path / "not-a-dir").write_text("")  # no cache can be made there: MLflow builds the store itself
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-dir"))
    (tmp_path / "c").mkdir()
    assert mlflow_registry.client_for(Home(tmp_path / "c").mlflow_uri).search_experiments()[0].name == "Default"
    assert schema(tmp_path / "c" / "mlflow.db") == schema(tmp_path / "built.db")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["mlflow.db"]  # no scratch file left


def test_a_servers_refusal_of_the_caller_is_one_line_naming_user_and_endpoint(monkeypatch):
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "viewer")
    with pytest.raises(mlflow_registry.AccessError) as refused:
        with mlflow_registry.access_errors("http://mlflow.team:5000"):
            raise MlflowException("API request to endpoint /api/2.0/mlflow/registered-models/alias failed with "
                                  "error code 403 != 200. Response body: 'Permission denied'")
    assert str(refused.value) == ("MLflow tracking server http://mlflow.team:5000 refuses user 'viewer' at "
                                  "/api/2.0/mlflow/registered-models/alias (permission denied)")
    with pytest.raises(MlflowException, match="no such model"):  # other errors pass through as they are
        with mlflow_registry.access_errors():
            raise MlflowException("no such model", error_code="RESOURCE_DOES_NOT_EXIST")


def test_a_forecaster_with_another_window_is_not_compared_and_its_label_and_metric_read_as_the_run_shows(tmp_path):
    """A probe's retrained forecaster (--horizon 3 after 6) crashed `mlops promote` with a raw
    ParseExample error: the champion cannot read the challenger's windows. It is held to the gate
    alone, and the table names the value column and the window-scaled MASE, not 'target' and MAE."""
    from types import SimpleNamespace

    from serving.codec.periods import SeriesInfo, TimeAxis, write_series_info

    home = Home(tmp_path / "home")

    def version(number, horizon):
        served = 1000 + number
        write_series_info(home.model_base_dir("tx") / str(served),
                          SeriesInfo("month", "sales", ("store_id",), TimeAxis("year_month", "monthly"), 24, horizon))
        return SimpleNamespace(version=str(number), tags={mlflow_registry.SERVING_VERSION_TAG: str(served)})

    champion, same, other = version(1, 6), version(2, 6), version(3, 3)
    assert promotion._incomparable(home, "tx", same, champion) == ""
    assert promotion._incomparable(home, "tx", other, champion) == (
        "the champion v1 is not compared: it forecasts 6 monthly steps from 24, this model 3 monthly steps from 24: "
        "it cannot read these windows; the challenger met the gate alone")
    checks = decide([("target", "forecast")], {"target": {"overall": SliceScore(0.8, 6)}}, None, {"target": 1.0},
                    PromotionRules())
    promotion._show_as_the_user_named(checks, str(home.model_base_dir("tx") / "1003"))
    assert [(c.target, c.metric) for c in checks] == [("sales", "MASE (window-scaled MAE)")]


def test_a_model_or_version_the_registry_lacks_is_bad_input_exit_2(sqlite_client, tmp_path, capsys):
    """`mlops promote nosuch`, `rollback nosuch` and `rollback NAME --to 7` exited 1 (a refusal); the
    name the user typed is theirs to fix: one line, exit 2, as `mlops card nosuch` does."""
    from cli.main import main

    uri = sqlite_client.tracking_uri
    for argv in (["promote", "nosuch"], ["rollback", "nosuch"], ["rollback", "reg", "--to", "7"]):
        assert main([*argv, "--home", str(tmp_path / "home"), "--tracking-uri", uri]) == 2, argv
        err = capsys.readouterr().err
        assert ("no registered model '" in err or "has no version 7" in err) and "Traceback" not in err, err


def test_a_champion_trained_on_other_columns_is_not_scored_on_rows_it_trained_on(tmp_path):
    """A renamed and an added column move every record's hash, so the challenger's eval split held
    250 of the champion's 478 training rows (a probe): it is not compared; an unchanged table is."""
    from types import SimpleNamespace

    from serving.codec.columns import write_columns

    home = Home(tmp_path / "home")

    def version(number, columns):
        served = 2000 + number
        write_columns(home.model_base_dir("birds") / str(served), [[c, c.lower().replace(" ", "_")] for c in columns],
                      {}, ["effect"], {})
        return SimpleNamespace(version=str(number), tags={mlflow_registry.SERVING_VERSION_TAG: str(served)})

    champion = version(1, ["Phase of flight", "remarks", "Effect"])
    assert promotion._incomparable(home, "birds", version(2, ["Phase of flight", "remarks", "Effect"]), champion) == ""
    why = promotion._incomparable(home, "birds", version(3, ["Flight phase", "remarks", "crew_note", "Effect"]),
                                  champion)
    assert why == ("the champion v1 is not compared: the table's columns changed (new Flight phase, crew_note; gone "
                   "Phase of flight), so the split into train and eval moved: these eval rows hold its training rows; "
                   "the challenger met the gate alone")
    renamed = version(4, ["Flight phase", "remarks", "Effect"])
    assert promotion._incomparable(home, "birds", renamed, champion, examples="/fresh/rows") == ""  # not its split
