"""What the serving, predict, promote and score paths import: no TFX (tens of seconds of imports)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


REPO = Path(__file__).resolve().parents[2]


def test_serve_predict_and_config_paths_import_no_tfx():
    code = ("import sys; import cli.main, serving.server, serving.client, serving.runtime.model_config; "
            "cli.main.build_parser().parse_args(['serve']); "
            "bad = sorted(m for m in sys.modules if m == 'tfx' or m.startswith('tfx.')); "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_promote_rollback_and_score_paths_import_neither_tfx_nor_tft():
    """They load TensorFlow (the models) but not TFX or TFT (18-50 s of imports)."""
    code = ("import sys; import cli.main, release.promotion, release.model_eval, release.mlflow_registry, "
            "ops.scoring, serving.pyfunc; import tensorflow; "
            "[cli.main.build_parser().parse_args(a) for a in (['promote', 'm'], ['rollback', 'm'], "
            "['score', 'm', '--data', 'x.csv', '--output', 'o'])]; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tfx', 'tensorflow_transform')); "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
