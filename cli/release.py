"""Release commands: promote (the CI gate), rollback, history, card. A refused promotion, a busy lock
or an unreachable registry is one line and exit 1; nothing changes."""
import argparse
from typing import Dict, List

from cli.errors import EXIT_OK, EXIT_REFUSED, UserError, translated
from cli.options import HOME, TRACKING, add_command, quiet_runtime


def registry_errors():
    """What the registry side may refuse with: one line, exit 1."""
    from release.mlflow_registry import RegistryError
    from release.model_eval import EvaluationError
    from release.promotion import PromotionError
    from serving.model_config import ModelConfigError

    return translated(refused=(PromotionError, RegistryError, EvaluationError, ModelConfigError))


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


def cmd_promote(args: argparse.Namespace) -> int:
    from core.home import Home

    home = Home.resolve(args.home)
    bounds = _min_metrics(args.min_metric)
    quiet_runtime(args.verbose)
    from release.promotion import PromotionRules, format_table, promote

    rules = PromotionRules(bounds, args.min_improvement, args.max_slice_drop, args.min_slice_rows)
    with registry_errors():
        outcome = promote(home, args.name, home.tracking_uri(args.tracking_uri), rules, canary=args.canary,
                          examples=args.examples, by=args.by)
    print(format_table(outcome), flush=True)
    if args.summary_md:
        with open(args.summary_md, "a") as f:
            f.write(format_table(outcome, markdown=True) + "\n")
    return EXIT_OK if outcome.passed else EXIT_REFUSED


def cmd_rollback(args: argparse.Namespace) -> int:
    from core.home import Home
    from release.promotion import rollback

    home = Home.resolve(args.home)
    with registry_errors():
        event = rollback(home, args.name, home.tracking_uri(args.tracking_uri), args.to, args.by)
    print(f"rolled back '{args.name}': champion v{event['from']['version']} -> v{event['to']['version']} "
          f"(serving version {event['to']['serving_version']} is now 'stable')")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from core.home import Home
    from release.mlflow_registry import client_for, history
    from release.promotion import format_history

    home = Home.resolve(args.home)
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

    from core.home import Home
    from release.model_card import CARD_JSON, card_path, card_summary

    home = Home.resolve(args.home)
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
    promote.add_argument("--canary", action="store_true",
                         help="on pass, serve it under the label 'canary' (alias canary); champion unchanged")
    promote.add_argument("--examples", help="evaluate on these TFRecords instead of the challenger's eval split")
    promote.add_argument("--summary-md", help="also write the table as markdown (e.g. $GITHUB_STEP_SUMMARY)")

    rollback = add_command(sub, "rollback", cmd_rollback,
                           "back to the previous champion (or --to VERSION); labels follow", registry)
    rollback.add_argument("name")
    rollback.add_argument("--to", type=int, metavar="VERSION", help="registry version to make champion")

    history = add_command(sub, "history", cmd_history, "promotions and rollbacks of a registered model", registry)
    history.add_argument("name")

    card = add_command(sub, "card", cmd_card, "the model card of a pushed model (HTML + JSON in its assets.extra/)",
                       HOME, TRACKING)
    card.add_argument("name", help="pipeline / registered model name")
    card.add_argument("--version", type=int, help="registry version (default: the newest pushed version)")
    card.add_argument("--open", action="store_true", help="open the HTML card in a browser")
