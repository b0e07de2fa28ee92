"""The serving core both front ends (REST, gRPC) call: resolve a model, check limits, run (batched
or not) under the request timeout, count and time it, and sample it into the request log."""
import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from serving.codec.columns import ColumnNames
from serving.codec.periods import NEXT_DATE_INPUT, first_bad_iso_date
from serving.errors import ServingError, invalid
from serving.options import ServerOptions
from serving.runtime.batching import Batcher
from serving.runtime.heap import FrozenHeap
from serving.runtime.manager import ModelManager
from serving.runtime.metrics import LOADED_VERSIONS, REQUEST_LOG_DROPPED, SHADOW_COUNT, Metrics
from serving.runtime.request_log import RequestLogger
from serving.runtime.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Servable,
    check_rows,
    classification_results,
    regression_results,
)
from serving.runtime.shadow import ShadowRunner
from serving.runtime.traffic import CANARY_LABEL, SHADOW_LABEL, STABLE_LABEL, TrafficTable, to_canary, traffic_path
from serving.runtime.warmup import read_warmup_records, replay

log = logging.getLogger("mlops.serving")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: Optional[int] = None
    label: Optional[str] = None
    signature_name: str = ""


class LoadedModel:
    """A servable plus its batchers (one per signature, made on first use)."""

    def __init__(self, servable: Servable, options: ServerOptions):
        self.servable = servable
        self.options = options
        self.version_label = str(servable.version)  # the version as the metrics write it, made once
        self._batchers: Dict[str, Batcher] = {}

    @property
    def name(self) -> str:
        return self.servable.name

    @property
    def version(self) -> int:
        return self.servable.version

    def batcher(self, key: str) -> Batcher:
        batcher = self._batchers.get(key)
        if batcher is None:
            batcher = self._batchers.setdefault(key, Batcher(
                lambda inputs, key=key: self.servable.run(key, inputs), self.options.max_batch_size,
                self.options.batch_timeout_ms / 1000.0, name=f"batch-{self.name}-{self.version}-{key}",
                threads=self.options.batch_threads))
        return batcher

    def close(self) -> None:
        """Drains the batchers. The session is left to the garbage collector: a request still in
        flight on this version holds a reference and finishes normally."""
        for batcher in self._batchers.values():
            batcher.close()


class DataPlane:
    def __init__(self, serving_dir: Path, options: ServerOptions = ServerOptions()):
        self.options = options
        self.metrics = Metrics()
        self.manager = ModelManager(Path(serving_dir), self._load, options.poll_seconds, heap=FrozenHeap())
        self.manager.on_unload = self._unloaded
        self.request_log = (RequestLogger(options.request_log_dir, options.request_log_rate)
                            if options.request_log_dir and options.request_log_rate > 0 else None)
        self.traffic = TrafficTable(traffic_path(serving_dir))
        self.shadow_log_dir = options.shadow_log_dir or Path(serving_dir).resolve().parent / "shadow-logs"
        self._shadow: Optional[ShadowRunner] = None  # started on the first mirrored request
        self._shadow_lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------------
    def _load(self, name: str, version: int, path: Path) -> LoadedModel:
        servable = Servable(name, version, path, self.options.request_timeout_s)
        warmed = replay(servable, read_warmup_records(path))
        log.info("model %s version %d loaded (%d warmup requests)", name, version, warmed)
        self.metrics.set_gauge(LOADED_VERSIONS, (("model_name", name), ("version", str(version))), 1)
        return LoadedModel(servable, self.options)

    def _unloaded(self, model: LoadedModel) -> None:
        self.metrics.set_gauge(LOADED_VERSIONS, (("model_name", model.name), ("version", str(model.version))), 0)
        model.close()

    def start(self) -> None:
        self.manager.start()

    def stop(self) -> None:
        self.manager.stop()
        if self.request_log:
            self.request_log.close()
        if self._shadow:
            self._shadow.close()

    # --- traffic: canary split and shadow (serving.runtime.traffic) ----------------------------------------
    def _route(self, spec: ModelSpec, client_key: Optional[str], canary: bool = True) -> Tuple[LoadedModel, str]:
        """The version a request goes to and its route: ``direct`` (it names a version or label),
        ``canary`` or ``stable`` (the split of traffic.json, when the model has one; without
        ``canary``, stable alone)."""
        if spec.version is not None or spec.label:
            return self.manager.resolve(spec.name, spec.version, spec.label), "direct"
        split = self.traffic.split(spec.name)
        if split is not None:  # a managed model: canary by the split, else stable (not the newest push)
            servables, labels = self.manager.routing(spec.name)
            to_the_canary = servables.get(labels.get(CANARY_LABEL)) if canary else None
            if to_the_canary is not None and to_canary(split.canary_percent, client_key):
                return to_the_canary, CANARY_LABEL
            stable = servables.get(labels.get(STABLE_LABEL))
            if stable is None:
                others = [v for v in servables if v not in (labels.get(CANARY_LABEL), labels.get(SHADOW_LABEL))]
                stable = servables[max(others)] if others else None
            if stable is not None:
                return stable, STABLE_LABEL
        return self.manager.resolve(spec.name), STABLE_LABEL

    def _mirror(self, model: LoadedModel, key: str, inputs: Mapping[str, np.ndarray],
                outputs: Mapping[str, np.ndarray], seconds: float) -> None:
        """A copy of an answered request to the ``shadow`` version, off the request's path."""
        split = self.traffic.split(model.name)
        if split is None or not split.shadow:
            return
        servables, labels = self.manager.routing(model.name)
        shadow = servables.get(labels.get(SHADOW_LABEL))
        if shadow is None or shadow is model:
            return
        with self._shadow_lock:
            if self._shadow is None:
                self._shadow = ShadowRunner(self.shadow_log_dir)
        queued = self._shadow.submit(model, shadow, key, inputs, outputs, seconds)
        self.metrics.count(SHADOW_COUNT, (("model_name", model.name), ("version", str(shadow.version)),
                                          ("outcome", "queued" if queued else "dropped")))

    # --- requests --------------------------------------------------------------------------------
    def _call(self, model: LoadedModel, key: str, inputs: Mapping[str, np.ndarray],
              output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        started = time.perf_counter()
        if not (self.options.enable_batching and not output_filter):  # TF enforces the timeout (RunOptions)
            outputs = model.servable.run(key, inputs, output_filter, self.options.max_request_rows)
        else:
            check_rows({a.shape for a in inputs.values()}, self.options.max_request_rows)
            model.servable.signature(key)  # unknown signature: fail before queueing
            future = model.batcher(key).submit(inputs)
            try:
                outputs = future.result(timeout=self.options.request_timeout_s)
            except FutureTimeout:
                raise ServingError("DEADLINE_EXCEEDED", f"Deadline exceeded: no answer within "
                                                        f"{self.options.request_timeout_s:g} s") from None
        self._mirror(model, key, inputs, outputs, time.perf_counter() - started)
        return outputs

    def _serve(self, api: str, spec: ModelSpec, entrypoint: str,
               work: Callable[[LoadedModel, str], Dict[str, np.ndarray]], client_key: Optional[str] = None):
        """Resolves the model (through the traffic split), runs ``work(model, signature_key)``, and
        counts and times the request (per model, version, API, entrypoint and status; per route)."""
        started, model, status, route = time.perf_counter(), None, "OK", None
        try:
            model, route = self._route(spec, client_key)
            key = spec.signature_name or DEFAULT_SIGNATURE
            return model, key, work(model, key)
        except ServingError as e:
            status = e.code
            raise
        finally:
            self.metrics.observe(spec.name if model is None else model.name,
                                 "" if model is None else model.version_label, api, entrypoint, status,
                                 time.perf_counter() - started, route)

    def predict(self, spec: ModelSpec, inputs_for, output_filter: Sequence[str] = (), entrypoint: str = "REST",
                client_key: Optional[str] = None) -> Tuple[LoadedModel, str, Dict[str, np.ndarray]]:
        """``inputs_for(signature, columns)`` converts the request's inputs once the signature is known;
        ``columns`` (``serving.codec.columns.ColumnNames``) renames original column names to its keys."""
        def work(model: LoadedModel, key: str) -> Dict[str, np.ndarray]:
            inputs = inputs_for(model.servable.signature(key), model.servable.columns)
            if model.servable.series is not None:
                _check_series_inputs(inputs)
            elif model.servable.columns.kinds:
                _check_table_cells(inputs, model.servable.columns)
            outputs = self._call(model, key, inputs, output_filter)
            if self.request_log and key == DEFAULT_SIGNATURE and self.request_log.sampled():
                self.request_log.log_rows(model.name, model.version, inputs)
            return outputs
        return self._serve("predict", spec, entrypoint, work, client_key)

    def _run_examples(self, api: str, method: str, spec: ModelSpec, examples: Sequence[bytes],
                      entrypoint: str, client_key: Optional[str] = None
                      ) -> Tuple[LoadedModel, str, Dict[str, np.ndarray]]:
        def work(model: LoadedModel, key: str) -> Dict[str, np.ndarray]:
            input_name = model.servable.examples_input(key, method)
            outputs = self._call(model, key, {input_name: np.asarray(list(examples), dtype=object)})
            if self.request_log and self.request_log.sampled():
                self.request_log.log_examples(model.name, model.version, examples)
            return outputs
        return self._serve(api, spec, entrypoint, work, client_key)

    def classify(self, spec: ModelSpec, examples: Sequence[bytes], entrypoint: str = "REST",
                 client_key: Optional[str] = None):
        model, key, outputs = self._run_examples("classify", CLASSIFY_METHOD, spec, examples, entrypoint, client_key)
        return model, key, classification_results(outputs)

    def regress(self, spec: ModelSpec, examples: Sequence[bytes], entrypoint: str = "REST",
                client_key: Optional[str] = None):
        model, key, outputs = self._run_examples("regress", REGRESS_METHOD, spec, examples, entrypoint, client_key)
        return model, key, regression_results(outputs)

    def metadata(self, spec: ModelSpec) -> Tuple[LoadedModel, Mapping]:
        """The signature defs (TF Serving's metadata) and the model's column names: of the version a
        predict request naming no version goes to (stable, not the newest push: a client reads the
        columns and classes of the model that answers it)."""
        model, _ = self._route(spec, None, canary=False)
        return model, model.servable.signature_defs

    def render_metrics(self) -> str:
        if self.request_log:
            self.metrics.set_gauge(REQUEST_LOG_DROPPED, (), self.request_log.dropped)
        if self.traffic.error:
            log.warning("traffic split not applied: %s", self.traffic.error)
        return self.metrics.render()

    def health(self) -> Tuple[bool, Dict[str, object]]:
        models = self.manager.models()
        ready = self.manager.ready()
        body: Dict[str, object] = {"status": "ok" if ready else "unavailable", "models": models}
        if self.manager.config_error:
            body["config_error"] = self.manager.config_error
        return ready, body


_CHECKED_KINDS = ("datetime", "boolean")


def _check_table_cells(inputs: Mapping[str, np.ndarray], columns: ColumnNames) -> None:
    """A user table's date-time and boolean cells: one its kind does not read (training would have
    read it as missing) is refused naming the column, the row and what the column reads."""
    for key, values in inputs.items():
        kind = columns.kinds.get(key)
        if kind not in _CHECKED_KINDS or values.dtype != object:
            continue
        for row, value in enumerate(np.reshape(values, -1)):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            why = columns.refusal(key, text)
            if why:
                raise invalid(f"{columns.name_of(key)}: {text!r} at row {row} {why}")


def _check_series_inputs(inputs: Mapping[str, np.ndarray]) -> None:
    """A forecaster's request: each next_date a date, every point of the window and the covariates a
    number (NaN would come back as a forecast of NaN: a gap is filled before asking, as training did)."""
    if NEXT_DATE_INPUT in inputs:
        bad = first_bad_iso_date(np.reshape(inputs[NEXT_DATE_INPUT], -1))
        if bad is not None:
            raise invalid(f"{NEXT_DATE_INPUT}: {bad!r} is not a date as YYYY-MM-DD (the first forecast step's date)")
    for name, values in inputs.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            row, *place = np.argwhere(~np.isfinite(values))[0]
            where = f"row {row}" + (f", point {place[0]}" if place else "")
            raise invalid(f"{name}: {values[tuple([row, *place])]} at {where} is not a number; a forecaster reads "
                          "every point (fill a gap first, as training did)")


def status_list(statuses: List) -> List[Dict[str, object]]:
    return [{"version": str(s.version), "state": s.state,
             "status": {"error_code": s.error_code, "error_message": s.error_message}} for s in statuses]
