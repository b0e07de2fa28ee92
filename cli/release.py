"""Release commands: promote (the CI gate), rollback, history, card. A refused promotion, a busy lock
or an unreachable registry is one line and exit 1; nothing changes."""
import argparse
import contextlib
from typing import Dict, Iterator, List

from cli.exit_codes import EXIT_OK, EXIT_REFUSED, UserError, translated
from cli.shared_options import HOME, TRACKING, add_command, home_of, quiet_runtime


@contextlib.contextmanager
def registry_errors() -> Iterator[None]:
    """What the registry side may refuse with (a server's refusal of the caller included): one line, exit 1;
    a model, version or alias the registry does not have is the caller's bad input: exit 2."""
    from release.mlflow_registry import RegistryError, UnknownModelError, access_errors
    from release.model_eval import EvaluationError
    from release.promotion import PromotionError
    from serving.runtime.model_config import ModelConfigError

    with translated(user=(UnknownModelError,), refused=(PromotionError, RegistryError, EvaluationError,
                                                        ModelConfigError)), access_errors():
        yield


def _min_metrics(pairs: List[str]) -> Dict[str, float]:
    from release.promotion import ANY_TARGET

    bounds = {}
    for pair in pairs:
        label, sep, value = pair.rpartition("=")
        try:
            bounds[label if sep else ANY_TARGET] = float(value)
        except ValueError:
            raise UserError(f"--min-metric {pair!r}: expected [LABEL=]NUMBER") from None
    return bounds


LABEL_ONLY = -1.0  # `--canary` without a percentage: the canary label, no share of unaddressed traffic


def _percent(text: str) -> float:
    try:
        value = float(text)
        valid = 0 <= value <= 100
    except ValueError:
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(f"{text!r}: a percentage from 0 to 100")
    return value


def cmd_promote(args: argparse.Namespace) -> int:
    home = home_of(args)
    bounds = _min_metrics(args.min_metric)
    if args.shadow and args.canary is not None:
        raise UserError("--shadow and --canary: one at a time (a shadow is never served, a canary is)")
    quiet_runtime(args.verbose, cpp_errors=False)  # its table is what the user (and a CI log) reads
    from release.promotion import PromotionRules, end_canary, format_table, promote, set_shadow
    from serving.runtime.traffic import CLIENT_KEY_HEADER

    tracking = home.tracking_uri(args.tracking_uri)
    if args.shadow or args.canary == 0:
        with registry_errors():
            if args.shadow:
                event = set_shadow(home, args.name, tracking, args.shadow == "on", by=args.by)
            else:
                event = end_canary(home, args.name, tracking, by=args.by)
        what = {"shadow": f"shadow on: every request to '{args.name}' is also run on version "
                          f"{(event.get('to') or {}).get('serving_version')} (`mlops shadow {args.name}` compares)",
                "shadow_end": f"shadow off for '{args.name}'",
                "canary_end": f"canary ended: every request to '{args.name}' without a version goes to stable"}
        print(what[event["kind"]])
        return EXIT_OK
    rules = PromotionRules(bounds, args.min_improvement, args.max_slice_drop, args.min_slice_rows)
    canary = args.canary is not None
    with registry_errors():
        outcome = promote(home, args.name, tracking, rules, canary=canary, examples=args.examples, by=args.by,
                          canary_percent=max(args.canary or 0.0, 0.0))
    if canary and outcome.action == "canary" and args.canary > 0:
        print(f"canary: {args.canary:g}% of the requests to '{args.name}' that name no version or label go to "
              f"the canary (sticky per {CLIENT_KEY_HEADER} header when sent); `--canary 0` ends it")
    print(format_table(outcome), flush=True)
    if args.summary_md:
        with open(args.summary_md, "a") as f:
            f.write(format_table(outcome, markdown=True) + "\n")
    return EXIT_OK if outcome.passed else EXIT_REFUSED


def cmd_rollback(args: argparse.Namespace) -> int:
    from release.promotion import rollback

    home = home_of(args)
    with registry_errors():
        event = rollback(home, args.name, home.tracking_uri(args.tracking_uri), args.to, args.by)
    print(f"rolled back '{args.name}': champion v{event['from']['version']} -> v{event['to']['version']} "
          f"(serving version {event['to']['serving_version']} is now 'stable')")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from release.mlflow_registry import client_for, history
    from release.promotion import format_history

    home = home_of(args)
    with registry_errors():
        events = history(client_for(home.tracking_uri(args.tracking_uri)), args.name)
    print(format_history(events) if events else f"no promotions of '{args.name}' yet")
    return EXIT_OK


def cmd_card(args: argparse.Namespace) -> int:
    """The model card of a pushed model: registry version V (its serving_path), else the newest pushed
    version that has one; printed in short, its HTML path named, opened in a browser with --open."""
    import json
    import webbrowser
    from pathlib import Path

    from release.model_card import CARD_JSON, card_path, card_summary

    home = home_of(args)
    if args.version is not None:
        from release.mlflow_registry import resolve_model_uri

        with registry_errors():
            _, _, serving_path = resolve_model_uri(f"models:/{args.name}/{args.version}",
                                                   home.tracking_uri(args.tracking_uri))
        candidates = [Path(serving_path)]
    else:
        base = home.model_base_dir(args.name)
        candidates = sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name),
                            reverse=True) if base.is_dir() else []
    path = next((card_path(c) for c in candidates if card_path(c).is_file()), None)
    if path is None:
        which = f"version {args.version}" if args.version is not None else "any pushed version"
        raise UserError(f"no model card for '{args.name}' ({which}) under {home.root}: cards are written for "
                        "blessed models pushed by `mlops run`")
    print("\n".join(card_summary(json.loads((path.parent / CARD_JSON).read_text()))))
    print(f"card: {path}")
    if args.open:
        webbrowser.open(path.as_uri())
    return EXIT_OK


def cmd_shadow(args: argparse.Namespace) -> int:
    """How the shadow compares with the version that answered: agreement, latency, counts."""
    import json

    from serving.runtime.shadow import shadow_report

    home = home_of(args)
    path = home.shadow_logs / f"{args.name}.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: no shadow traffic logged for '{args.name}' (`mlops promote {args.name} --shadow`, "
                        "then requests to `mlops serve`)")
    with path.open() as f:
        first = json.loads(f.readline())
    model_json = home.model_base_dir(args.name) / str(first["primary_version"]) / "assets.extra" / "mlops_model.json"
    task = json.loads(model_json.read_text()).get("task", "") if model_json.is_file() else ""
    report = shadow_report(path, task)
    if args.json:
        print(json.dumps(report, indent=1))
        return EXIT_OK
    pairs = ", ".join(f"v{a} vs shadow v{b}" for a, b in report["versions"])
    print(f"shadow of '{args.name}' ({task or 'task unknown'}; {pairs}): {report['requests']} requests mirrored, "
          f"{report['compared']} compared ({report['rows']} rows), {report['shadow_errors']} shadow errors")
    if "agreement" in report:
        print(f"  agreement {report['agreement']:.4f}; confusion (serving class -> shadow class: rows): "
              + "; ".join(f"{a} -> {dict(b)}" for a, b in report["confusion"].items()))
    if "mean_abs_difference" in report:
        print(f"  mean |serving - shadow| {report['mean_abs_difference']:.6g}")
    if report["compared"]:
        print(f"  latency ms p50/p99: serving {report['primary_ms_p50']:.2f}/{report['primary_ms_p99']:.2f}, "
              f"shadow {report['shadow_ms_p50']:.2f}/{report['shadow_ms_p99']:.2f}")
    return EXIT_OK


def register(sub) -> None:
    from release.promotion import DEFAULT_MAX_SLICE_DROP, DEFAULT_MIN_SLICE_ROWS

    registry = argparse.ArgumentParser(add_help=False, parents=[HOME, TRACKING])
    registry.add_argument("--by", help="who acts (default: $GITHUB_ACTOR or the user)")

    promote = add_command(sub, "promote", cmd_promote, "the CI gate: challenger vs champion on the same rows; on "
                          "pass, champion alias and serving label 'stable' move (exit 1 when refused)", registry)
    promote.add_argument("name", help="registered model (= pipeline name)")
    promote.add_argument("--min-metric", action="append", default=[], metavar="[LABEL=]VALUE",
                         help="absolute bound on the gate metric (default: the pipeline's own gate)")
    promote.add_argument("--min-improvement", type=float, default=0.0,
                         help="required gain over the champion in the metric's better direction (default 0)")
    promote.add_argument("--max-slice-drop", type=float, default=DEFAULT_MAX_SLICE_DROP,
                         help="largest allowed worsening on any slice")
    promote.add_argument("--min-slice-rows", type=int, default=DEFAULT_MIN_SLICE_ROWS,
                         help="slices with fewer eval rows are shown but not gated")
    promote.add_argument("--canary", type=_percent, nargs="?", const=LABEL_ONLY, metavar="PERCENT",
                         help="on pass, serve it under the label 'canary' (alias canary), champion unchanged; with "
                              "PERCENT, that share of the requests naming no version goes to it; 0 ends the canary")
    promote.add_argument("--shadow", nargs="?", const="on", choices=("on", "off"),
                         help="mirror every request to the challenger off the request's path (no gate; `mlops "
                              "shadow NAME` reports); off ends it")
    promote.add_argument("--examples", help="evaluate on these TFRecords instead of the challenger's eval split")
    promote.add_argument("--summary-md", help="also write the table as markdown (e.g. $GITHUB_STEP_SUMMARY)")

    rollback = add_command(sub, "rollback", cmd_rollback,
                           "back to the previous champion (or --to VERSION); labels follow", registry)
    rollback.add_argument("name")
    rollback.add_argument("--to", type=int, metavar="VERSION", help="registry version to make champion")

    history = add_command(sub, "history", cmd_history, "promotions and rollbacks of a registered model", registry)
    history.add_argument("name")

    shadow = add_command(sub, "shadow", cmd_shadow, "how the shadow version compares with the serving one on the "
                         "mirrored requests (agreement, confusion or mean difference, latency)", HOME)
    shadow.add_argument("name")
    shadow.add_argument("--json", action="store_true", help="the report as JSON")

    card = add_command(sub, "card", cmd_card, "the model card of a pushed model (HTML + JSON in its assets.extra/)",
                       HOME, TRACKING)
    card.add_argument("name", help="pipeline / registered model name")
    card.add_argument("--version", type=int, help="registry version (default: the newest pushed version)")
    card.add_argument("--open", action="store_true", help="open the HTML card in a browser")
