"""Test data generators and small helpers shared by the test layers."""
import csv
import random
from pathlib import Path
from typing import Optional

SEGMENTS = ("retail", "online", "wholesale")
TRANSACTIONS = "transactions"  # the pipeline name of the session's shared run
# A fixed depth: the dnn alone, without the linear rival a small table also fits (components/trainer.py),
# for runs whose tests check what happens around the model, not which model a table gets.
DNN_ALONE = ("--hparam", "depth=2")


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


def write_tls_files(folder: Path) -> dict:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate, all
    signed by it, as PEM files (cryptography, which MLflow already pulls in)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(name, issuer_name, issuer_key, key, ca=False, server=False):
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    files = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("mlops test CA", "mlops test CA", ca_key, ca_key, ca=True)
    for role, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(f"mlops test {role}", "mlops test CA", ca_key, key, server=server)
        files[f"{role}_cert"], files[f"{role}_key"] = folder / f"{role}.pem", folder / f"{role}.key"
        files[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    files["ca"] = folder / "ca.pem"
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files


def run_use_case(tmp_path_factory, usecase: str, *args: str):
    """A ready use case through the whole pipeline in its own home, untracked: (config, report)."""
    from pipelines.runners.local import run_pipeline

    home = tmp_path_factory.mktemp(usecase)
    config = run_cli_config(usecase, *args, home=home)
    report = run_pipeline(config, track=False)
    assert report.succeeded, report.error
    return config, report


def split_rows(report, split: str):
    """The rows ExampleGen wrote for a split, as (serialized examples, {feature: values})."""
    import glob
    import os

    import numpy as np
    import tensorflow as tf

    from serving.codec.examples import read_records

    uri = next(outputs["Examples"] for node, outputs in report.artifact_uris.items() if node.endswith("ExampleGen"))
    serialized = read_records(sorted(glob.glob(os.path.join(uri, f"Split-{split}", "*"))))
    columns = {}
    for record in serialized:
        example = tf.train.Example.FromString(record)
        for key, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value)
            columns.setdefault(key, []).append(values[0] if len(values) == 1 else values)
    return serialized, {k: np.array(v) for k, v in columns.items()}


def split_frame(report, split: str):
    """The rows ExampleGen wrote for a split as (serialized examples, DataFrame of each feature's
    first value): NaN or None where a row has no value, so the columns stay aligned row by row."""
    import glob
    import os

    import pandas as pd
    import tensorflow as tf

    from serving.codec.examples import read_records

    uri = next(outputs["Examples"] for node, outputs in report.artifact_uris.items() if node.endswith("ExampleGen"))
    serialized = read_records(sorted(glob.glob(os.path.join(uri, f"Split-{split}", "*"))))
    rows = []
    for record in serialized:
        row = {}
        for key, feature in tf.train.Example.FromString(record).features.feature.items():
            values = list(getattr(feature, feature.WhichOneof("kind") or "float_list").value)
            value = values[0] if values else None
            row[key] = _text_or_bytes(value)
        rows.append(row)
    return serialized, pd.DataFrame(rows)


def _text_or_bytes(value):
    """Text features as str; bytes that are not UTF-8 (encoded images) stay bytes."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def image_pixels(encoded, size: int):
    """Encoded images (JPEG, PNG) -> [rows, size * size * 3] floats in [0, 1], by Pillow (not the
    pipeline's own decoder): what a linear baseline on pixels sees."""
    import io

    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((size, size)), dtype=np.float32)
                     .reshape(-1) / 255.0 for data in encoded])


def served_accuracy(report, label: str = "label") -> float:
    """The pushed model's accuracy on the eval split ExampleGen wrote, computed here through its
    tf.Example signature (class index = rank in the run's label vocabulary, `class_names`)."""
    import numpy as np
    import tensorflow as tf

    serialized, evaluation = split_frame(report, "eval")
    served = tf.saved_model.load(report.pushed_path)
    scores = served.signatures["serving_tf_example"](examples=tf.constant(serialized))["predictions"].numpy()
    names = np.asarray(report.model_info["class_names"][label])
    return float(np.mean(names[scores.argmax(-1)] == evaluation[label].astype(str)))


def pixel_baseline_accuracy(report, size: int, label: str = "label") -> float:
    """Logistic regression on the pixels, fitted here on the train split ExampleGen wrote, scored on
    its eval split."""
    from sklearn.linear_model import LogisticRegression

    _, train = split_frame(report, "train")
    _, evaluation = split_frame(report, "eval")
    image = next(c for c in train.columns if isinstance(train[c].iloc[0], bytes))
    baseline = LogisticRegression(max_iter=3000, C=0.1).fit(image_pixels(train[image], size), train[label])
    return baseline.score(image_pixels(evaluation[image], size), evaluation[label])


def fraud_auc_and_baseline(report):
    """The default job's pushed model and the test's logistic regression (trained on the run's train
    split), both scored here on its eval rows: (model AUC, baseline AUC, {split: rows ExampleGen wrote})."""
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    _, train = split_frame(report, "train")
    serialized, evaluation = split_frame(report, "eval")
    baseline, x_eval, y_eval = fit_table_baseline(train, evaluation, "malignant", "binary")
    positive = list(baseline.classes_).index(1)
    baseline_auc = roc_auc_score(y_eval, baseline.predict_proba(x_eval)[:, positive])
    served = tf.saved_model.load(report.pushed_path).signatures["serving_tf_example"]
    scores = served(examples=tf.constant(serialized))["predictions"].numpy().reshape(-1)
    return roc_auc_score(evaluation["malignant"], scores), baseline_auc, {"train": len(train), "eval": len(evaluation)}


def fit_table_baseline(train, evaluation, label: str, task: str):
    """The test's own yardstick on the same split: scikit-learn's logistic regression (binary,
    multiclass) or ridge (regression) on imputed, standardized numbers and one-hot text columns of
    few values (an identifier or a date as text says nothing to a linear model). Returns
    (the fitted pipeline, the eval features, the eval labels)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, evaluation = train[train[label].notna()], evaluation[evaluation[label].notna()]
    features = [c for c in train.columns if c != label]
    numbers = [c for c in features if train[c].dtype.kind in "fiu"]
    texts = [c for c in features if c not in numbers and train[c].nunique() <= 20]
    columns = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numbers),
        ("texts", make_pipeline(SimpleImputer(strategy="constant", fill_value=""),
                                OneHotEncoder(handle_unknown="ignore")), texts)])
    model = (RidgeCV(alphas=np.logspace(-3, 3, 13)) if task == "regression"
             else LogisticRegression(max_iter=2000))
    fitted = make_pipeline(columns, model).fit(train[numbers + texts], train[label])
    return fitted, evaluation[numbers + texts], evaluation[label]


# What a TF Lite file holds beside its weights (tensor names, the graph, quantization parameters):
# ~11-12 KB for the small image CNNs, the same in float32 and int8, so their sizes' ratio stays under
# 4x however well int8 packs the weights.
EDGE_FIXED_BYTES = 16 << 10


def int8_shrink(edge_variants) -> float:
    """How many times smaller int8's weights are than float32's, the fixed part set aside."""
    float32, int8 = edge_variants["float32"]["size_bytes"], edge_variants["int8"]["size_bytes"]
    return (float32 - EDGE_FIXED_BYTES) / (int8 - EDGE_FIXED_BYTES)


def metric_samples(text: str):
    """Prometheus text (read by prometheus_client's own parser) -> {sample name: {sorted label pairs: value}}."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples
