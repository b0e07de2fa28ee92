"""The promotion gate CI calls (`mlops promote`) and its way back (`mlops rollback`).

Promote: the registry's ``challenger`` and ``champion`` are evaluated afresh on the same rows (the
challenger's eval split, or ``--examples``), each through its own Transform graph; rules: an
absolute bound per target, a minimum improvement over the champion, no slice regressing by more
than a set amount. On pass the ``champion`` alias and the serving label ``stable`` (or, for a canary,
``canary``) move to the candidate and the event is appended to the history, kept as registry tags
and mirrored in ``<home>/promotions/<name>.jsonl``. On fail nothing changes.

One promotion per model at a time: the first takes ``<home>/promotions/<name>.lock`` and a second
fails at once; before writing, the aliases are read again, so a change made meanwhile by another
machine is refused instead of overwritten.
"""
import getpass
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from components.gate_metrics import MAX_SLICE_DROP, MIN_SLICE_ROWS, OVERALL
from core.file_lock import held
from core.home import Home
from core.run_report import SCALED_WINDOW_METRICS
from release import mlflow_registry
from release.mlflow_registry import CANARY, CHALLENGER, CHAMPION
from serving.codec.columns import read_columns
from serving.codec.comparable import why_not_comparable
from serving.codec.periods import read_series_info
from serving.runtime import traffic
from serving.runtime.traffic import (  # TF Serving version labels in models.config
    CANARY_LABEL,
    SHADOW_LABEL,
    STABLE_LABEL,
)

DEFAULT_MAX_SLICE_DROP = MAX_SLICE_DROP  # the pipeline's slice gate, the promotion's default
DEFAULT_MIN_SLICE_ROWS = MIN_SLICE_ROWS
ANY_TARGET = "*"  # a --min-metric without a label: every target


class PromotionError(Exception):
    """The promotion could not be carried out (busy, unreachable, inconsistent); nothing changed."""


@dataclass(frozen=True)
class PromotionRules:
    min_metric: Mapping[str, float] = field(default_factory=dict)  # label -> bound; default: the pipeline's gate
    min_improvement: float = 0.0  # over the champion, in the metric's better direction
    max_slice_drop: float = DEFAULT_MAX_SLICE_DROP
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS  # smaller slices are shown, not gated

    def as_dict(self) -> dict:
        return {"min_metric": dict(self.min_metric), "min_improvement": self.min_improvement,
                "max_slice_drop": self.max_slice_drop, "min_slice_rows": self.min_slice_rows}


@dataclass
class Check:
    target: str
    slice: str
    metric: str
    champion: Optional[float]
    challenger: Optional[float]
    rows: int
    rule: str
    passed: bool


@dataclass
class Outcome:
    name: str
    action: str  # promoted | canary | refused | nothing
    challenger: Optional[int] = None
    champion: Optional[int] = None  # before the promotion
    checks: List[Check] = field(default_factory=list)
    message: str = ""
    event: Optional[dict] = None

    @property
    def passed(self) -> bool:
        return self.action in ("promoted", "canary", "nothing")


def actor() -> str:
    """Who promotes: the CI's actor when there is one, else the local user."""
    return os.environ.get("GITHUB_ACTOR") or os.environ.get("GITLAB_USER_LOGIN") or getpass.getuser()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def history_path(home: Home, name: str) -> Path:
    return home.root / "promotions" / f"{name}.jsonl"


@contextmanager
def exclusive(home: Home, name: str) -> Iterator[None]:
    """The model's promotion lock, not waited for: a concurrent promote or rollback fails clearly."""
    def refuse(holder: str) -> None:
        raise PromotionError(f"another promotion or rollback of '{name}' is in progress ({holder}); nothing changed")

    with held(home.root / "promotions" / f"{name}.lock", f"pid {os.getpid()} since {_now()}", refuse):
        yield


# --- the gate ------------------------------------------------------------------------------------

def _better(value: float, other: float, higher_is_better: bool) -> float:
    """How much better ``value`` is than ``other`` (negative: worse)."""
    return value - other if higher_is_better else other - value


def decide(targets: List[Tuple[str, str]], challenger: Mapping, champion: Optional[Mapping],
           gates: Mapping[str, float], rules: PromotionRules) -> List[Check]:
    """One check per rule: the overall bound and improvement per target, then each slice."""
    from components.tasks import get_task

    checks = []
    for label, subtask in targets:
        task = get_task(subtask)
        higher, metric = task.higher_is_better, task.gate_metric
        mine, theirs = challenger[label], (champion or {}).get(label, {})
        overall = mine[OVERALL]
        bound = rules.min_metric.get(label, rules.min_metric.get(ANY_TARGET, gates.get(label)))
        if bound is not None:
            ok = overall.value is not None and (overall.value >= bound if higher else overall.value <= bound)
            checks.append(Check(label, OVERALL, metric, None, overall.value, overall.count,
                                f"{'>=' if higher else '<='} {bound:g}", ok))
        if champion is None:
            continue
        base = theirs.get(OVERALL)
        ok = None not in (overall.value, base and base.value) and \
            _better(overall.value, base.value, higher) >= rules.min_improvement
        checks.append(Check(label, OVERALL, metric, base.value if base else None, overall.value, overall.count,
                            f"improves by >= {rules.min_improvement:g}", bool(ok)))
        for slice_name, score in mine.items():
            other = theirs.get(slice_name)
            if slice_name == OVERALL or other is None:
                continue
            gated = score.count >= rules.min_slice_rows and None not in (score.value, other.value)
            ok = not gated or _better(score.value, other.value, higher) >= -rules.max_slice_drop
            checks.append(Check(label, slice_name, metric, other.value, score.value, score.count,
                                f"drops <= {rules.max_slice_drop:g}" if gated else "not gated (small/undefined)",
                                ok))
    return checks


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_table(outcome: Outcome, markdown: bool = False) -> str:
    champion = f"v{outcome.champion}" if outcome.champion else "none"
    head = (f"promotion of '{outcome.name}': challenger v{outcome.challenger} vs champion {champion}"
            if outcome.challenger else f"promotion of '{outcome.name}': champion {champion}")
    columns = ("target", "slice", "metric", "champion", "challenger", "rows", "rule", "ok")
    rows = [(c.target, c.slice, c.metric, _fmt(c.champion), _fmt(c.challenger), str(c.rows), c.rule,
             "yes" if c.passed else "NO") for c in outcome.checks]
    verdict = f"verdict: {outcome.action}" + (f" ({outcome.message})" if outcome.message else "")
    if markdown:
        lines = [f"### {head}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines + ["", f"**{verdict}**", ""])
    if not rows:
        return "\n".join([head, verdict])
    widths = [max(len(x) for x in col) for col in zip(columns, *rows)]
    lines = [head] + ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in (columns, *rows)]
    return "\n".join(lines + [verdict])


# --- serving labels ------------------------------------------------------------------------------

def _serving_version(version) -> int:
    return int(version.tags[mlflow_registry.SERVING_VERSION_TAG])


def _check_served(home: Home, name: str, versions) -> Path:
    """models.config lists the model and each version's dir is there; raises before anything changes."""
    from serving.runtime import model_config

    path = model_config.config_path(home.serving_dir)
    config = model_config.read(path)
    if config is None or model_config.find_model(config, name) is None:
        raise PromotionError(f"{path}: model '{name}' is not listed (nothing was pushed to this home)")
    for version in versions:
        directory = home.model_base_dir(name) / str(_serving_version(version))
        if not directory.is_dir():
            raise PromotionError(f"{directory}: the pushed model of registered version {version.version} "
                                 "is not in this home's serving dir")
    return path


def route(home: Home, name: str, labels: Dict[str, Optional[int]]) -> None:
    """Sets the serving labels and serves exactly: each labelled version, the stable version being
    replaced (a roll back needs no load), and the newest pushed version (the next challenger)."""
    from serving.runtime import model_config

    path = model_config.config_path(home.serving_dir)
    base = home.model_base_dir(name)
    newest = max((int(p.name) for p in base.iterdir() if p.name.isdigit()), default=None)
    with model_config.editing(path) as config:
        model = model_config.find_model(config, name)
        previous = model.version_labels.get(STABLE_LABEL)
        for label, version in labels.items():
            if version is None:
                model.version_labels.pop(label, None)
            else:
                model.version_labels[label] = version
        keep = set(model.version_labels.values()) | ({newest} if newest else set())  # every label's too
        if previous and (base / str(previous)).is_dir():
            keep.add(previous)
        model.model_version_policy.specific.ClearField("versions")
        model.model_version_policy.specific.versions.extend(sorted(keep))


# --- promote / rollback --------------------------------------------------------------------------

def _tags_json(version, tag: str, default):
    raw = version.tags.get(tag)
    return json.loads(raw) if raw else default


def _model_dir(home: Home, name: str, version) -> str:
    """The pushed dir of a registered version in this home (checked by ``_check_served``)."""
    return str(home.model_base_dir(name) / str(_serving_version(version)))


def _record(client, home: Home, name: str, event: dict) -> dict:
    event = mlflow_registry.append_history(client, name, event)
    path = history_path(home, name)
    with open(path, "a") as f:
        f.write(json.dumps(event, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return event


def _summary(version, scores: Optional[Mapping]) -> dict:
    entry = {"version": int(version.version), "serving_version": _serving_version(version),
             "run_id": version.run_id}
    if scores:
        entry["metrics"] = {label: by_slice[OVERALL].value for label, by_slice in scores.items()}
    return entry


def _evaluate_both(home: Home, name: str, challenger: Any, champion: Any, examples: Optional[str],
                   evaluate: Callable) -> Tuple[List[Tuple[str, str]], Any, Any, str, int]:
    """Challenger and champion evaluated afresh on the same rows: (targets, challenger's scores,
    champion's or None, the rows' path, their count)."""
    from release import model_eval

    targets = [tuple(t) for t in _tags_json(challenger, mlflow_registry.TARGETS_TAG, [])]
    task_name = challenger.tags.get(mlflow_registry.TASK_TAG, "")
    slices = _tags_json(challenger, mlflow_registry.SLICES_TAG, [])
    rows_path = examples or challenger.tags.get(mlflow_registry.EVAL_EXAMPLES_TAG)
    if not targets or not rows_path:
        raise PromotionError(f"registered version {challenger.version} of '{name}' has no "
                             f"'{mlflow_registry.TARGETS_TAG}'/'{mlflow_registry.EVAL_EXAMPLES_TAG}' tags; "
                             "give --examples")
    rows = model_eval.read_examples(rows_path)
    mine = evaluate(_model_dir(home, name, challenger), rows, targets, task_name, slices)
    theirs = evaluate(_model_dir(home, name, champion), rows, targets, task_name, slices) if champion else None
    return targets, mine, theirs, rows_path, len(rows)


def _incomparable(home: Home, name: str, challenger: Any, champion: Any, examples: Optional[str] = None) -> str:
    """Why the champion is not scored on the rows (the challenger's eval split, or ``examples``): ""
    when it is (serving.codec.comparable). The challenger is then held to the gate alone."""
    if champion is None:
        return ""
    why = why_not_comparable(_model_dir(home, name, champion), _model_dir(home, name, challenger),
                             later_split=not examples)
    return f"the champion v{champion.version} is not compared: {why}; the challenger met the gate alone" if why else ""


def _show_as_the_user_named(checks: List[Check], model_dir: str) -> None:
    """A user's label by its column name (a forecaster's target is "target") and a forecaster's
    window-scaled metric as the run's summary names it."""
    series, columns = read_series_info(model_dir), read_columns(model_dir)
    for check in checks:
        check.target = series.label if series is not None else columns.name_of(check.target)
        if series is not None:
            check.metric = SCALED_WINDOW_METRICS.get(check.metric, check.metric)


def _move_aliases(client: Any, home: Home, name: str, challenger: Any, canary: bool, canary_percent: float) -> str:
    """The registry's aliases and the serving labels moved to the challenger: as champion and
    ``stable`` (any canary and shadow ended), or as the canary with its share of traffic."""
    served = _serving_version(challenger)
    split = traffic_file(home)
    if canary:
        mlflow_registry.set_alias(client, name, CANARY, int(challenger.version))
        route(home, name, {CANARY_LABEL: served})
        traffic.set_split(split, name, canary_percent=canary_percent)
        return "canary"
    mlflow_registry.set_alias(client, name, CHAMPION, int(challenger.version))
    mlflow_registry.set_alias(client, name, CHALLENGER, None)
    mlflow_registry.set_alias(client, name, CANARY, None)
    traffic.set_split(split, name, canary_percent=0, shadow=False)
    route(home, name, {STABLE_LABEL: served, CANARY_LABEL: None, SHADOW_LABEL: None})
    return "promoted"


def promote(home: Home, name: str, tracking_uri: str, rules: PromotionRules, canary: bool = False,
            examples: Optional[str] = None, by: Optional[str] = None,
            evaluate: Optional[Callable] = None, canary_percent: float = 0.0) -> Outcome:
    """The gate. On pass: champion and ``stable`` move to the challenger (any canary split and shadow
    end), or with ``canary`` the ``canary`` label and alias do, and ``canary_percent`` of the requests
    that name no version go to it (traffic.json)."""
    from release import model_eval

    with exclusive(home, name):
        client = mlflow_registry.client_for(tracking_uri)
        before = mlflow_registry.aliases(client, name)
        mlflow_registry.check_may_edit(tracking_uri, name, "a promotion")  # before the evaluation's work
        if CHALLENGER not in before:
            return Outcome(name, "nothing", champion=before.get(CHAMPION),
                           message="no challenger (every pushed model was already promoted)")
        challenger = mlflow_registry.get_version(client, name, before[CHALLENGER])
        champion = mlflow_registry.get_version(client, name, before[CHAMPION]) if CHAMPION in before else None
        outcome = Outcome(name, "refused", challenger=int(challenger.version),
                          champion=int(champion.version) if champion else None)
        if champion is not None and int(champion.version) == int(challenger.version):
            outcome.action, outcome.message = "nothing", "the challenger is already the champion"
            return outcome
        _check_served(home, name, [challenger] + ([champion] if champion else []))
        apart = _incomparable(home, name, challenger, champion, examples)
        targets, mine, theirs, rows_path, rows = _evaluate_both(home, name, challenger, None if apart else champion,
                                                                examples, evaluate or model_eval.evaluate)
        outcome.checks = decide(targets, mine, theirs, _tags_json(challenger, mlflow_registry.GATES_TAG, {}), rules)
        _show_as_the_user_named(outcome.checks, _model_dir(home, name, challenger))
        failed = [c for c in outcome.checks if not c.passed]
        outcome.message = apart
        if failed:
            outcome.message = "; ".join([f"{c.target} {c.slice} {c.metric} {_fmt(c.challenger)} fails '{c.rule}'"
                                         for c in failed[:5]] + ([apart] if apart else []))
            return outcome
        if mlflow_registry.aliases(client, name) != before:
            raise PromotionError(f"the aliases of '{name}' changed while it was evaluated (another promotion?); "
                                 "nothing changed")
        outcome.action = _move_aliases(client, home, name, challenger, canary, canary_percent)
        event = {"kind": outcome.action, "by": by or actor(), "at": _now(),
                 "from": _summary(champion, theirs) if champion else None, "to": _summary(challenger, mine),
                 "rules": rules.as_dict(), "examples": rows_path, "rows": rows,
                 **({"canary_percent": canary_percent} if canary else {})}
        outcome.event = _record(client, home, name, event)
        client.set_model_version_tag(name, challenger.version, f"{outcome.action}_at", event["at"])
        client.set_model_version_tag(name, challenger.version, f"{outcome.action}_by", event["by"])
        return outcome


def traffic_file(home: Home) -> Path:
    return traffic.traffic_path(home.serving_dir)


def end_canary(home: Home, name: str, tracking_uri: str, by: Optional[str] = None) -> dict:
    """`--canary 0`: every request that names no version goes to stable again; the canary label and
    alias are removed (no evaluation: nothing new takes traffic)."""
    with exclusive(home, name):
        client = mlflow_registry.client_for(tracking_uri)
        canary = mlflow_registry.aliases(client, name).get(CANARY)
        mlflow_registry.check_may_edit(tracking_uri, name, "the end of a canary")
        _check_served(home, name, [])
        mlflow_registry.set_alias(client, name, CANARY, None)  # the registry first: its refusal changes nothing
        traffic.set_split(traffic_file(home), name, canary_percent=0)
        route(home, name, {CANARY_LABEL: None})
        return _record(client, home, name, {"kind": "canary_end", "by": by or actor(), "at": _now(), "from": None,
                                            "to": {"version": canary} if canary else None})


def set_shadow(home: Home, name: str, tracking_uri: str, on: bool, by: Optional[str] = None) -> dict:
    """`--shadow`: the challenger gets a copy of every request, off the request's path (label
    ``shadow``; traffic.json); ``off`` ends it. No evaluation: the shadow never answers anyone."""
    with exclusive(home, name):
        client = mlflow_registry.client_for(tracking_uri)
        mlflow_registry.check_may_edit(tracking_uri, name, "a shadow")  # its first registry write comes last
        event = {"kind": "shadow" if on else "shadow_end", "by": by or actor(), "at": _now(), "from": None,
                 "to": None}
        if on:
            aliases = mlflow_registry.aliases(client, name)
            if CHALLENGER not in aliases:
                raise PromotionError(f"'{name}' has no challenger to shadow (every pushed model was promoted)")
            challenger = mlflow_registry.get_version(client, name, aliases[CHALLENGER])
            _check_served(home, name, [challenger])
            route(home, name, {SHADOW_LABEL: _serving_version(challenger)})
            event["to"] = _summary(challenger, None)
        else:
            _check_served(home, name, [])
            route(home, name, {SHADOW_LABEL: None})
        traffic.set_split(traffic_file(home), name, shadow=on)
        return _record(client, home, name, event)


def rollback_target(events: List[dict], current: int) -> Optional[int]:
    """The newest earlier champion that was never rolled back from."""
    rolled_back = {e["from"]["version"] for e in events if e["kind"] == "rollback" and e.get("from")}
    champions = [e["to"]["version"] for e in events if e["kind"] in ("promoted", "rollback")]
    for version in reversed(champions):
        if version != current and version not in rolled_back:
            return version
    return None


def rollback(home: Home, name: str, tracking_uri: str, to_version: Optional[int] = None,
             by: Optional[str] = None) -> dict:
    """Back to the previous champion (or ``to_version``): alias, ``stable`` label, history."""
    with exclusive(home, name):
        client = mlflow_registry.client_for(tracking_uri)
        before = mlflow_registry.aliases(client, name)
        mlflow_registry.check_may_edit(tracking_uri, name, "a rollback")
        if CHAMPION not in before:
            raise PromotionError(f"'{name}' has no champion to roll back from")
        current = mlflow_registry.get_version(client, name, before[CHAMPION])
        target_number = to_version or rollback_target(mlflow_registry.history(client, name), before[CHAMPION])
        if target_number is None:
            raise PromotionError(f"'{name}' has no earlier champion in its history; name one with --to")
        if target_number == before[CHAMPION]:
            raise PromotionError(f"version {target_number} of '{name}' is already the champion")
        target = mlflow_registry.get_version(client, name, target_number)
        _check_served(home, name, [target])
        mlflow_registry.set_alias(client, name, CHAMPION, target_number)
        mlflow_registry.set_alias(client, name, CANARY, None)
        traffic.set_split(traffic_file(home), name, canary_percent=0)
        route(home, name, {STABLE_LABEL: _serving_version(target), CANARY_LABEL: None})
        event = {"kind": "rollback", "by": by or actor(), "at": _now(),
                 "from": _summary(current, None), "to": _summary(target, None)}
        event = _record(client, home, name, event)
        client.set_model_version_tag(name, current.version, "rolled_back_at", event["at"])
        return event


def format_history(events: List[dict]) -> str:
    lines = [f"  {'#':>3}  {'when':<20}  {'kind':<9} {'from':>6} -> {'to':<6} by"]
    for e in events:
        origin = f"v{e['from']['version']}" if e.get("from") else "-"
        target = f"v{e['to']['version']:<5}" if e.get("to") else f"{'-':<6}"
        lines.append(f"  {e['seq']:>3}  {e['at']:<20}  {e['kind']:<9} {origin:>6} -> {target} {e['by']}")
    return "\n".join(lines)
