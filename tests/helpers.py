"""Test data generators and small helpers shared by the test layers."""
import csv
import random
from pathlib import Path
from typing import Optional

SEGMENTS = ("retail", "online", "wholesale")
TRANSACTIONS = "transactions"  # the pipeline name of the session's shared run


def write_transactions_csv(path: Path, rows: int = 240, seed: int = 0, segments=SEGMENTS,
                           missing_every: int = 7) -> Path:
    """A fraud-style binary data set with a string column and missing values in two columns."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["amount", "age_days", "risk_score", "segment", "is_fraud"])
        for i in range(rows):
            amount, age, risk = rng.lognormvariate(4, 1), rng.randint(1, 3000), rng.gauss(0, 1)
            segment = rng.choice(segments)
            logit = 1.8 * risk + 0.6 * (segment == "online") - 0.0004 * age + rng.gauss(0, 0.5)
            label = int(logit > 0)
            writer.writerow([
                f"{amount:.2f}",
                "" if i % missing_every == 3 else age,  # missing numeric values
                f"{risk:.4f}",
                "" if i % missing_every == 5 else segment,  # missing strings
                label,
            ])
    return path


def run_cli_config(*argv: str, home: Optional[Path] = None):
    """The PipelineConfig `mlops run ARGV` would build, with its inputs prepared (as the CLI does)."""
    from cli.run import request_from_argv
    from pipelines.configure import build_config, prepare_inputs

    args = list(argv) + (["--home", str(home)] if home else [])
    return prepare_inputs(build_config(request_from_argv(args)))
