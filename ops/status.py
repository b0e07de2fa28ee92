"""`mlops status`: one screen of a home. Each pipeline's last run (when, result, blessed, pushed),
each registered model's aliases, what models.config serves (and traffic.json splits or mirrors)
and what a server on the default port answers, and alarms (a last run stopped by validation or the
drift gate, a challenger waiting). Reads MLflow (tracking + registry), the timings file beside each
`mlops run` log (the outcome of a run with --no-tracking), models.config and, when one
answers, the REST server; no TFX."""
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional

from core.home import Home

PROBE_TIMEOUT_S = 1.0


@dataclass
class PipelineStatus:
    name: str
    last_run: Optional[dict] = None  # started, status, blessed, pushed, reason, error
    aliases: Dict[str, int] = field(default_factory=dict)
    served: Dict[str, object] = field(default_factory=dict)  # policy, labels, live versions
    alarms: List[str] = field(default_factory=list)


def _run_from_tags(tags: Dict[str, str], started_at: float, run_id: str) -> dict:
    started = datetime.fromtimestamp(started_at, timezone.utc).strftime("%Y-%m-%d %H:%M")
    return {"started": started, "started_at": started_at, "status": tags.get("status", "?"),
            "blessed": tags.get("blessed", "n/a"), "pushed": tags.get("pushed_version", "none"),
            "pushed_now": tags.get("pushed_this_run") == "true",
            "reason": tags.get("blessing_reason", ""), "error": tags.get("error", ""), "run_id": run_id}


def _last_tracked_run(client, name: str) -> Optional[dict]:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.pipeline_run_id != ''",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    run = runs[0]
    return _run_from_tags(run.data.tags, run.info.start_time / 1000, run.info.run_id)


def _last_logged_run(home: Home, name: str) -> Optional[dict]:
    """The newest `mlops run` of ``name`` as its log's timings file records it (a run with --no-tracking
    is in no MLflow experiment), marked untracked."""
    for path in sorted(home.logs(name).glob("*.timings.json"), reverse=True):  # named by start time
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if "outcome" in document:
            return {**_run_from_tags(document["outcome"], document["started_at"], ""), "untracked": True}
    return None


def _last_run(client, home: Home, name: str) -> Optional[dict]:
    """The newer of the last tracked run and the last run `mlops run` logged."""
    runs = [r for r in (_last_tracked_run(client, name), _last_logged_run(home, name)) if r]
    return max(runs, key=lambda r: r["started_at"]) if runs else None


def _served(home: Home) -> Dict[str, dict]:
    from serving.runtime import model_config, traffic

    config = model_config.read(model_config.config_path(home.serving_dir))
    served: Dict[str, dict] = {}
    if config is None:
        return served
    splits = traffic.read(traffic.traffic_path(home.serving_dir))
    for model in config.model_config_list.config:
        policy = model.model_version_policy.WhichOneof("policy_choice") or "latest"
        versions = list(model.model_version_policy.specific.versions) if policy == "specific" else []
        served[model.name] = {"policy": policy, "versions": versions, "labels": dict(model.version_labels)}
        split = splits.get(model.name)
        if split is not None:
            served[model.name]["traffic"] = {"canary_percent": split.canary_percent, "shadow": split.shadow}
    return served


def _live(host: str, port: int, name: str) -> Optional[List[str]]:
    """Version states from a running server's GET /v1/models/NAME, or None when none answers."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/v1/models/{name}", timeout=PROBE_TIMEOUT_S) as response:
            document = json.load(response)
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None
    return [f"{v.get('version')} {v.get('state')}" for v in document.get("model_version_status", [])]


def collect(home: Home, tracking_uri: Optional[str] = None, host: str = "127.0.0.1",
            port: int = 8501) -> List[PipelineStatus]:
    from release import mlflow_registry

    names = sorted(p.name for p in (home.root / "pipelines").iterdir() if p.is_dir()) \
        if (home.root / "pipelines").is_dir() else []
    served = _served(home)
    scheduled = {p.stem[len("schedule-"):] for p in (home.root / "logs").glob("schedule-*.log")}
    names = sorted(set(names) | set(served) | scheduled)  # a schedule whose every run failed early has no pipeline
    client = mlflow_registry.client_for(home.tracking_uri(tracking_uri))
    statuses = []
    for name in names:
        status = PipelineStatus(name)
        status.last_run = _last_run(client, home, name)
        try:
            status.aliases = mlflow_registry.aliases(client, name)
        except mlflow_registry.RegistryError:
            status.aliases = {}
        if name in served:
            status.served = dict(served[name])
            live = _live(host, port, name)
            if live is not None:
                status.served["live"] = live
        status.alarms = _alarms(status) + _schedule_alarms(home, name)
        statuses.append(status)
    return statuses


def _schedule_alarms(home: Home, name: str) -> List[str]:
    """The newest scheduled attempt, when it failed (its log: ops.schedule)."""
    from ops.schedule import last_failure, schedule_log

    failed = last_failure(home.root, name)
    if failed is None:
        return []
    when, status, said = failed
    return [f"the scheduled run at {when} exited {status}: {said[:160]} ({schedule_log(home.root, name)})"]


def _alarms(status: PipelineStatus) -> List[str]:
    alarms = []
    run = status.last_run
    if run and run["status"] == "failed":
        alarms.append(f"last run failed: {(run['error'] or '?').splitlines()[0][:160]}")
    elif run and run["blessed"] == "false":
        alarms.append(f"last model not blessed: {run['reason'][:160]}")
    if "drift" in (run or {}).get("error", "").lower():
        alarms.append("the drift gate stopped the newest span (see `mlops run` --span, docs/operations.md)")
    challenger, champion = status.aliases.get("challenger"), status.aliases.get("champion")
    if challenger is not None and challenger != champion:
        alarms.append(f"challenger v{challenger} waits for `mlops promote {status.name}`")
    return alarms


def format_status(home: Home, statuses: List[PipelineStatus]) -> str:
    lines = [f"home {home.root}"]
    if not statuses:
        return "\n".join(lines + ["no pipelines yet (`mlops run` starts one)"])
    for s in statuses:
        run = s.last_run
        if run is None:
            head = "no run recorded"
        else:
            pushed = "nothing pushed" if run["pushed"] == "none" else \
                f"pushed {run['pushed'].rstrip('/').rsplit('/', 1)[-1]}{'' if run['pushed_now'] else ' (earlier)'}"
            head = (f"last run {run['started']} UTC{' (not tracked)' if run.get('untracked') else ''}: "
                    f"{run['status']}, blessed {run['blessed']}, {pushed}")
        lines.append(f"{s.name}: {head}")
        if s.aliases:
            lines.append("  registry: " + ", ".join(f"{alias} v{v}" for alias, v in sorted(s.aliases.items())))
        if s.served:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(s.served["labels"].items())) or "none"
            live = s.served.get("live")
            lines.append(f"  serving: policy {s.served['policy']}"
                         f"{' ' + str(s.served['versions']) if s.served['versions'] else ''}, labels {labels}; "
                         + (f"server: {', '.join(live)}" if live is not None else "no server answering"))
            split = s.served.get("traffic")
            if split and (split["canary_percent"] or split["shadow"]):
                lines.append(f"  traffic: canary {split['canary_percent']:g}% of unaddressed requests"
                             f"{', shadow on (`mlops shadow ' + s.name + '`)' if split['shadow'] else ''}")
        lines.extend(f"  alarm: {a}" for a in s.alarms)
    return "\n".join(lines)
