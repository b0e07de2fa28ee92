"""`make bench` (batching part): `mlops serve --enable-batching` against `mlops serve` on image models,
where the model call is most of a request's cost. The serving bench measures batching on the default
table model too; there one call is ~50 us of a ~300 us request, and merging calls cannot save more than
that share.

Two models of the photos use case (class folders of JPEG and PNG files), each trained here through the
pipeline in a fresh home (`mlops run photos`, few epochs and `--threshold 0` so that the gate pushes
it: this bench measures speed, not accuracy): the use case's CNN at its own size (48 px) and MobileNet
at 96 px. Each is served by `mlops serve` and by `mlops serve --enable-batching` with two batch threads
(the default) and with one, all up at once; each request carries one of the use case's JPEG files
(REST V1 `{"b64": ...}`, gRPC V2 BYTES), batch 1, at 1, 8 and 32 clients, with serving_bench's load
generator, alternated rounds and median round. The session call alone (one image, then 32) is the
floor. Writes bench/results/batching.json and batching.md; numbers are reported, never asserted.
"""
import argparse
import base64
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench.serving_bench as serving_bench  # noqa: E402 (the serving bench's load generator and servers)

NAME = "photos"
PLAIN = "mlops serve"
# the batching servers: the default (two batch threads) and one batch thread
BATCHING = {"mlops serve --enable-batching": ("--enable-batching",),
            "mlops serve --enable-batching --batch-threads 1": ("--enable-batching", "--batch-threads", "1")}
CLIENTS = (1, 8, 32)
APIS = {"REST V1": ("http", f"/v1/models/{NAME}:predict"),
        "gRPC V2": ("grpc", "/inference.GRPCInferenceService/ModelInfer")}
# model -> the `mlops run photos` options that make it
MODELS = {"CNN 48 px (the use case's own)": ("--hparam", "epochs=3"),
          "MobileNet 96 px": ("--family", "mobilenet", "--image-size", "96", "--hparam", "epochs=2")}


def _train(options: Tuple[str, ...], home: Path) -> Path:
    """The pushed version of `mlops run photos OPTIONS` in ``home`` (untracked, no edge variants)."""
    command = [sys.executable, "-m", "cli.main", "run", NAME, *options, "--home", str(home), "--no-tracking",
               "--no-edge", "--threshold", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"mlops run {NAME} {' '.join(options)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return max((home / "serving" / NAME).glob("[0-9]*"), key=lambda p: int(p.name))


def _image(home: Path) -> bytes:
    """One of the use case's JPEG files, as a client would send it."""
    return sorted((home / "data" / NAME).rglob("*.jpg"))[0].read_bytes()


def _bodies(image: bytes) -> Dict[str, bytes]:
    """A one-image request for each API, encoded once."""
    import numpy as np
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import serialize_byte_tensor

    infer = service_pb2.ModelInferRequest(model_name=NAME)
    infer.inputs.add(name="image", datatype="BYTES", shape=[1])
    infer.raw_input_contents.append(serialize_byte_tensor(np.array([image], dtype=object)).item())
    return {"REST V1": json.dumps({"instances": [{"image": {"b64": base64.b64encode(image).decode()}}]}).encode(),
            "gRPC V2": infer.SerializeToString()}


def _model_calls(model_dir: Path, image: bytes) -> Dict[str, float]:
    """The serving signature in a loop in one process: us per call for 1 and 32 images."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    one, many = tf.constant([image]), tf.constant([image] * 32)
    return {"1 image": round(serving_bench._per_call_us(lambda: signature(image=one), calls=200), 1),
            "32 images": round(serving_bench._per_call_us(lambda: signature(image=many), calls=30), 1)}


def _measure(pool, model_dir: Path, bodies: Dict[str, bytes], args, workdir: Path) -> Dict[serving_bench.Load, dict]:
    """Both servers up at once, every load in alternated rounds; a load no request of which was
    answered stops the bench (a wrong request is not a measurement)."""
    serving_dir = workdir / "serving"
    shutil.copytree(model_dir, serving_dir / NAME / model_dir.name)
    with ExitStack() as stack:
        servers = {PLAIN: serving_bench._mlops_serve(serving_dir),
                   **{name: serving_bench._mlops_serve(serving_dir, *options) for name, options in BATCHING.items()}}
        for server in servers.values():
            stack.callback(serving_bench._stop, server.process)
        loads = {serving_bench.Load(name, api, 1, clients):
                 serving_bench.Target(kind, server.ports[kind], path, bodies[api], server.process.pid)
                 for name, server in servers.items() for api, (kind, path) in APIS.items() for clients in CLIENTS}
        results = serving_bench._alternated(pool, loads, args.requests, args.load_seconds, args.rounds)
    unanswered = [load for load, result in results.items() if not result["requests"]]
    if unanswered:
        raise RuntimeError(f"no request answered: {unanswered}")
    return results


def _rows(model: str, results: Dict[serving_bench.Load, dict]) -> List[dict]:
    rows = []
    for server in BATCHING:
        for api in APIS:
            for clients in CLIENTS:
                a = results[serving_bench.Load(server, api, 1, clients)]
                b = results[serving_bench.Load(PLAIN, api, 1, clients)]
                rows.append({"model": model, "server": server, "api": api, "clients": clients,
                             "ratio": serving_bench.throughput_ratio(a, b),
                             "batching": a, "plain": b, "goal": ">= 1.5x" if clients == 32 else ""})
    return rows


def _markdown(report: dict) -> List[str]:
    settings = report["settings"]
    lines = [f"# Server-side batching on image models (loopback, {report['machine']['cpus']} CPUs)", "",
             f"Each load: batch 1 (one JPEG a request), at most {settings['requests']} requests and "
             f"{settings['load_seconds']} s; {settings['rounds']} rounds, alternated, the median round shown. "
             "CPU in cores used over the load (the server; the load generator).", "",
             f"| model | server (over `{PLAIN}`) | API | clients | ratio | req/s | p50 ms | p99 ms | server CPU | "
             "load generator CPU | goal |", "|---|---|---|---:|---:|---|---|---|---|---|---|"]
    for r in report["rows"]:
        a, b = r["batching"], r["plain"]
        lines.append(f"| {r['model']} | {r['server']} | {r['api']} | {serving_bench._clients(r['clients'])} | "
                     f"{r['ratio']}x | "
                     f"{a['req_per_s']} vs {b['req_per_s']} | {a['p50_ms']} vs {b['p50_ms']} | "
                     f"{a['p99_ms']} vs {b['p99_ms']} | {a['server_cpu_cores']} vs {b['server_cpu_cores']} | "
                     f"{a['client_cpu_cores']} vs {b['client_cpu_cores']} | {r['goal']} |")
    lines += ["", "The session call alone (serving_default on encoded JPEG bytes, best of 3 rounds, us per call):",
              "", "| model | 1 image | 32 images | 32 images / 32 single calls |", "|---|---:|---:|---:|"]
    for model, calls in report["model_calls_us"].items():
        lines.append(f"| {model} | {calls['1 image']} | {calls['32 images']} | "
                     f"{round(32 * calls['1 image'] / calls['32 images'], 2)}x faster |")
    lines += ["", f"Measured {report['measured_at']} in {report['bench_seconds']:.0f} s."]
    return lines


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per load, at most")
    parser.add_argument("--load-seconds", type=float, default=5.0, help="seconds per load, at most")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every load (the median is reported)")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="mlops-batching-bench-"))
    pool = multiprocessing.get_context("spawn").Pool(serving_bench.CLIENT_PROCESSES)
    rows, calls = [], {}
    try:
        for model, options in MODELS.items():
            home = workdir / f"home-{len(calls)}"
            model_dir = _train(options, home)
            image = _image(home)
            calls[model] = _model_calls(model_dir, image)
            rows += _rows(model, _measure(pool, model_dir, _bodies(image), args, workdir / f"serve-{len(calls)}"))
            print(f"batching bench: {model} done", file=sys.stderr, flush=True)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report = {"rows": rows, "model_calls_us": calls, "settings": {
        "requests": args.requests, "load_seconds": args.load_seconds, "rounds": args.rounds,
        "client_processes": serving_bench.CLIENT_PROCESSES}, "machine": {"cpus": os.cpu_count()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "bench_seconds": round(time.monotonic() - began, 1)}
    serving_bench.write_results("batching", report, _markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
