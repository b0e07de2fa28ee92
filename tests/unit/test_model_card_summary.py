"""`mlops card`'s terminal summary of a card (release.model_card.card_summary)."""
def test_the_cards_terminal_summary_names_text_columns_candidates_and_the_gates_bound():
    """`mlops card` said 'blessed (passed every threshold)' beside MASE 1.2133 with no bound (2, given
    by --threshold), and named neither the text columns nor the linear candidate it kept."""
    from release.model_card import card_summary

    card = {"name": "notes", "purpose": {"task": "binary", "labels": ["kind"], "source": "notes.csv"},
            "data": {"rows": {"train": 300, "eval": 75}, "unit": "rows", "schema_features": 2,
                     "text_columns": ["Summary"]},
            "model": {"family": "dnn", "parameters": 3472, "epochs_run": 12, "best_epoch": 4,
                      "candidates": {"metric": "auc", "dnn": 0.6929, "linear": 0.7357, "chosen": "linear"}},
            "evaluation": {"blessed": True, "blessing_reason": "passed every threshold", "slices": [],
                           "gates": [{"name": "auc", "bound": 0.7, "higher_is_better": True}]},
            "edge": [], "lineage": {"mlflow_run": "r", "registry_version": 1, "serving_version": "1"}, "caveats": []}
    text = "\n".join(card_summary(card))
    assert "schema features; read as text: Summary" in text
    assert "; candidates dnn 0.6929, linear 0.7357 (auc on the eval split); kept: linear" in text
    assert "blessed (passed every threshold); gate: auc >= 0.7" in text
    assert "lineage: MLflow run r, registry version 1, serving 1" in text
    card["lineage"] = {"mlflow_run": None, "registry_version": None, "serving_version": "1"}  # --no-tracking
    assert "lineage: not tracked in MLflow (--no-tracking), serving 1" in card_summary(card)
