"""The Trainer against a bare ``model.fit``: the same model (family, head, hyperparameters as the
Trainer built it), the same transformed rows held in memory as arrays, the same number of epochs
the Trainer ran, no callbacks, no export. Called by bench/profile_run.py on the default job's home;
prints one JSON line: {"bare_fit_s", "epochs", "train_rows"}.

    python bench/bare_fit.py HOME
"""
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import components  # noqa: E402,F401 (sets the legacy-Keras switch before TensorFlow loads)


def _in_memory(uri: str, split: str, tft_output, config) -> tuple:
    import numpy as np
    import tensorflow as tf

    from components.trainer import inputs_and_label

    files = [str(p) for p in sorted(Path(uri, f"Split-{split}").glob("*.gz"))]
    spec = tft_output.transformed_feature_spec()
    parts = [inputs_and_label(tf.io.parse_example(batch, spec), config)
             for batch in tf.data.TFRecordDataset(files, "GZIP").batch(1 << 14)]
    x = {k: np.concatenate([p[0][k].numpy() for p in parts]) for k in parts[0][0]}
    return x, np.concatenate([p[1].numpy() for p in parts])


def measure(home: Path) -> dict:
    import tensorflow_transform as tft
    import tf_keras as keras

    from components.models.builder import build_model
    from components.models.families import resolve_hparams
    from components.trainer import MODEL_FILE, spec_classes_head
    from core.home import Home
    from core.run_report import collect
    from pipelines.configure import RunRequest, build_config

    config = build_config(RunRequest(home=str(home)))
    uris = collect(SimpleNamespace(name=config.name, home=Home(home)), 0).artifact_uris
    model_info = json.loads((Path(uris["Trainer"]["ModelRun"]) / MODEL_FILE).read_text())
    training = config.train_spec()
    tft_output = tft.TFTransformOutput(uris["Transform"]["TransformGraph"])
    x, y = _in_memory(uris["Transform"]["Examples"], "train", tft_output, training)
    x_eval, y_eval = _in_memory(uris["Transform"]["Examples"], "eval", tft_output, training)
    hp = resolve_hparams(model_info["family"], model_info["hparams"])
    keras.utils.set_random_seed(hp["seed"])
    started = time.perf_counter()
    spec, _, head = spec_classes_head(tft_output, training)
    model = build_model(model_info["family"], head, spec, hp, ())
    model.fit(x, y, batch_size=hp["batch_size"], epochs=model_info["epochs_run"], validation_data=(x_eval, y_eval),
              verbose=0)
    return {"bare_fit_s": round(time.perf_counter() - started, 2), "epochs": model_info["epochs_run"],
            "train_rows": int(len(y))}


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]))))
