"""`make bench` (traffic part): a canary and a shadow on real models, as an operator runs them.

Two models of the default job in a fresh home (the default training, and a 2-epoch one as the
challenger; the pipeline's own gate opened for it), the first promoted to `stable`, the second put
on `--canary 20` by `mlops promote`, then on `--shadow`. `mlops serve`'s core runs in this process
on loopback; requests are V2 REST calls naming no version (the response says which version
answered). Reports the canary's share of 2,000 requests, how many of 200 client keys stayed on one
side, the caller's median latency with the shadow off and on (alternating blocks), and `mlops
shadow`'s report. Writes bench/results/traffic.{json,md}; numbers are reported, never asserted.
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
NAME = "fraud"  # the default job's pipeline


def _mlops(*argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cli.main", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"mlops {' '.join(argv)}: exit {done.returncode}\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def _bodies(model_dir: Path, data_csv: Path, count: int = 500) -> list:
    """V2 requests of the model's serving signature, one real row each (the job's own CSV)."""
    import csv
    import math

    from serving.api.open_inference import datatype_of
    from serving.codec.signature import tensor_spec
    from serving.runtime.servable import read_signature_defs

    signature = read_signature_defs(model_dir)["serving_default"]
    specs = {name: datatype_of(tensor_spec(name, info)) for name, info in sorted(signature.inputs.items())}
    with data_csv.open() as f:
        rows = list(csv.DictReader(f))[:count]

    def value(text, datatype):
        if datatype == "BYTES":
            return text or ""
        return float(text) if text not in ("", None) else math.nan

    return [json.dumps({"inputs": [{"name": n, "datatype": d, "shape": [1], "data": [value(row.get(n), d)]}
                                   for n, d in specs.items()]}).encode() for row in rows]


def _answer(connection, body: bytes, key=None) -> str:
    headers = {"Content-Type": "application/json", **({"X-Client-Key": key} if key else {})}
    connection.request("POST", f"/v2/models/{NAME}/infer", body=body, headers=headers)
    response = connection.getresponse()
    document = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(document)
    return document["model_version"]


def _median_ms(connection, bodies: list, count: int) -> float:
    times = []
    for i in range(count):
        started = time.perf_counter()
        _answer(connection, bodies[i % len(bodies)])
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    home = Path(tempfile.mkdtemp(prefix="mlops-traffic-"))
    h = ["--home", str(home)]
    _mlops("run", *h)
    _mlops("promote", NAME, *h)
    _mlops("run", *h, "--hparam", "epochs=2", "--threshold", "0", "--max-drop", "1")
    _mlops("promote", NAME, *h, "--canary", "20", "--min-improvement", "-1", "--max-slice-drop", "1")

    import components  # noqa: F401 (the legacy-Keras switch before TensorFlow loads)
    from serving.options import ServerOptions
    from serving.runtime.traffic import set_split, traffic_path
    from serving.server import start_server

    serving = home / "serving"
    versions = sorted(int(p.name) for p in (serving / NAME).iterdir() if p.name.isdigit())
    bodies = _bodies(serving / NAME / str(versions[0]), home / "data" / NAME / f"{NAME}.csv")
    server = start_server(serving, "127.0.0.1", 0, 0, ServerOptions(poll_seconds=0.2))
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    try:
        labels = server.core.manager.routing(NAME)[1]
        canary, stable = str(labels["canary"]), str(labels["stable"])
        answered = [_answer(connection, bodies[i % len(bodies)]) for i in range(2000)]
        keys = {f"client-{i}": {_answer(connection, bodies[i % len(bodies)], f"client-{i}") for _ in range(5)}
                for i in range(200)}
        split = {"requests": len(answered), "to_canary": answered.count(canary),
                 "canary_share": round(answered.count(canary) / len(answered), 4),
                 "keys": len(keys), "keys_on_one_side": sum(len(v) == 1 for v in keys.values()),
                 "keys_on_canary": sum(v == {canary} for v in keys.values())}
        _mlops("promote", NAME, *h, "--canary", "0")
        _mlops("promote", NAME, *h, "--shadow")
        time.sleep(1.0)
        off, on, mirrored = [], [], 0
        for shadow in (False, True) * 3:
            set_split(traffic_path(serving), NAME, shadow=shadow)
            time.sleep(1.0)
            (on if shadow else off).append(round(_median_ms(connection, bodies, 300), 3))
            mirrored += 300 if shadow else 0
        server.core._shadow.drain()
        report = json.loads(_mlops("shadow", NAME, *h, "--json"))
    finally:
        connection.close()
        server.stop()
    result = {"versions": {"stable": stable, "canary": canary}, "split": split,
              "shadow": {"median_ms_off": off, "median_ms_on": on, "requests_mirrored": mirrored,
                         "latency_on_vs_off": round(statistics.median(on) / statistics.median(off), 3),
                         "report": report},
              "machine": {"cpus": os.cpu_count()}, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "traffic.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Canary and shadow on the default job (stable v{stable}, challenger v{canary})", "",
             f"- `--canary 20`: {split['to_canary']} of {split['requests']} requests naming no version went to the "
             f"canary ({100 * split['canary_share']:.1f}%); {split['keys_on_one_side']} of {split['keys']} client "
             f"keys stayed on one side over 5 requests each ({split['keys_on_canary']} on the canary).",
             f"- `--shadow`: the caller's median latency {statistics.median(off):.3f} ms off, "
             f"{statistics.median(on):.3f} ms on ({result['shadow']['latency_on_vs_off']}x), alternating blocks "
             f"of 300 requests.",
             f"- `mlops shadow`: {report['requests']} requests mirrored (sent: {mirrored}), {report['compared']} "
             f"compared, {report['shadow_errors']} shadow errors; agreement {report.get('agreement')}; "
             f"confusion {report.get('confusion')}; p50 ms serving {report['primary_ms_p50']:.3f}, shadow "
             f"{report['shadow_ms_p50']:.3f}.", "",
             f"Measured {result['measured_at']} on {os.cpu_count()} CPUs."]
    (RESULTS / "traffic.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
