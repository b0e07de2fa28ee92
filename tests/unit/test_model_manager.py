"""The model manager with a stand-in loader: version policies, labels, hot swaps, bad configs."""
from pathlib import Path

import pytest

from serving.errors import ServingError
from serving.runtime import model_config
from serving.runtime.manager import AVAILABLE, END, ModelManager

REPO = Path(__file__).resolve().parents[2]


def _version(base: Path, version: int, broken: bool = False) -> Path:
    path = base / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"broken" if broken else b"ok")
    return path


class FakeServable:
    def __init__(self, name, version, path):
        if (Path(path) / "saved_model.pb").read_bytes() == b"broken":
            raise ValueError(f"cannot parse {path}/saved_model.pb")
        self.name, self.version = name, version


def test_manager_loads_latest_then_swaps_and_unloads_the_old_version(tmp_path):
    _version(tmp_path / "m", 1)
    manager = ModelManager(tmp_path, FakeServable)  # no config: every model dir, latest version
    manager.poll()
    assert manager.resolve("m").version == 1
    (tmp_path / "m" / "2").mkdir()  # a copy in progress (no saved_model.pb yet) is not a version
    manager.poll()
    assert manager.resolve("m").version == 1
    (tmp_path / "m" / "2" / "saved_model.pb").write_bytes(b"ok")
    manager.poll()
    assert manager.resolve("m").version == 2
    assert [(s.version, s.state) for s in manager.status("m")] == [(2, AVAILABLE), (1, END)]
    with pytest.raises(ServingError) as e:
        manager.resolve("m", version=1)
    assert e.value.code == "NOT_FOUND" and "Specific(m, 1)" in e.value.message


def test_failed_version_is_reported_never_served_and_retried_only_when_changed(tmp_path):
    _version(tmp_path / "m", 1)
    model_config.ensure_model(model_config.config_path(tmp_path), "m", latest_versions=1)
    loads = []
    manager = ModelManager(tmp_path, lambda *a: loads.append(a[1]) or FakeServable(*a))
    manager.poll()
    broken = _version(tmp_path / "m", 2, broken=True)
    manager.poll()
    manager.poll()
    status = {s.version: s for s in manager.status("m")}
    assert status[2].state == END and "cannot parse" in status[2].error_message
    assert status[1].state == AVAILABLE and manager.resolve("m").version == 1  # still serving
    assert loads == [1, 2]  # not retried while unchanged
    (broken / "saved_model.pb").write_bytes(b"ok-now")
    manager.poll()
    assert manager.resolve("m").version == 2 and loads == [1, 2, 2]


def test_labels_follow_config_only_to_available_versions(tmp_path):
    path = model_config.config_path(tmp_path)
    _version(tmp_path / "m", 1)
    model_config.ensure_model(path, "m")
    model_config.set_labels(path, "m", {"stable": 1})
    manager = ModelManager(tmp_path, FakeServable)
    manager.poll()
    assert manager.resolve("m", label="stable").version == 1
    model_config.set_labels(path, "m", {"stable": 2, "canary": 2})  # version 2 is not there yet
    manager.poll()
    assert manager.resolve("m", label="stable").version == 1  # kept until 2 is available
    with pytest.raises(ServingError) as e:
        manager.resolve("m", label="canary")
    assert e.value.code == "INVALID_ARGUMENT" and "Unrecognized servable version label: canary" in e.value.message
    _version(tmp_path / "m", 2)
    manager.poll()
    assert manager.resolve("m", label="stable").version == 2 == manager.resolve("m", label="canary").version
    assert manager.resolve("m", version=1).version == 1  # latest-2 keeps the previous version loaded


def test_bad_config_keeps_the_previous_one_in_force(tmp_path):
    path = model_config.config_path(tmp_path)
    _version(tmp_path / "m", 1)
    model_config.ensure_model(path, "m")
    manager = ModelManager(tmp_path, FakeServable)
    manager.poll()
    path.write_text("model_config_list { config { name: ")
    manager.poll()
    assert manager.resolve("m").version == 1 and "models.config" in manager.config_error
    assert manager.models()["m"]["versions"] == {"1": AVAILABLE}


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", ".hidden", ""])
def test_names_that_could_leave_the_base_dir_are_refused(tmp_path, name):
    manager = ModelManager(tmp_path, FakeServable)
    with pytest.raises(ServingError) as e:
        manager.resolve(name)
    assert e.value.code == "INVALID_ARGUMENT"


def test_unreadable_config_at_start_is_an_error(tmp_path):
    model_config.config_path(tmp_path).write_text("model_config_list { config { name: ")
    manager = ModelManager(tmp_path, FakeServable)
    with pytest.raises(model_config.ModelConfigError, match="models.config"):
        manager.start()


class CyclicServable(FakeServable):
    """A servable in a reference cycle, as a loaded model's objects are: only a collection frees it."""

    def __init__(self, name, version, path):
        super().__init__(name, version, path)
        self.cycle = self


def test_a_servers_heap_is_frozen_between_swaps_and_an_unloaded_version_is_still_collected(tmp_path):
    import gc
    import weakref

    from serving.runtime.heap import FrozenHeap

    heap = FrozenHeap()
    manager = ModelManager(tmp_path, CyclicServable, heap=heap)
    try:
        _version(tmp_path / "m", 1)
        manager.poll()
        assert gc.get_freeze_count() > 0  # no full collection walks the loaded version
        first = weakref.ref(manager.resolve("m"))
        _version(tmp_path / "m", 2)
        manager.poll()
        assert first() is None and gc.get_freeze_count() > 0 and not heap.pending
        in_flight = manager.resolve("m")  # a request still running on version 2 while 3 replaces it
        _version(tmp_path / "m", 3)
        manager.poll()
        assert manager.resolve("m").version == 3
        assert heap.pending and gc.get_freeze_count() == 0  # not frozen while version 2 may still be freed
        second = weakref.ref(in_flight)
        del in_flight
        manager.poll()
        assert second() is None and not heap.pending and gc.get_freeze_count() > 0
    finally:
        manager.stop()
    assert gc.get_freeze_count() == 0
