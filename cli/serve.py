"""Serving commands: serve (TF Serving's REST and gRPC APIs), predict (a client), edge (LiteRT).
No TFX import on these paths."""
import argparse
import functools
import json
import sys
from pathlib import Path

from cli.exit_codes import EXIT_OK, UserError, translated
from cli.shared_options import HOME, add_command, home_of, quiet_runtime


def cmd_serve(args: argparse.Namespace) -> int:
    """TF Serving's REST and gRPC APIs over <home>/serving."""

    home = home_of(args)
    serving_dir = Path(args.serving_dir).expanduser().resolve() if args.serving_dir else home.serving_dir
    if not serving_dir.is_dir():
        raise UserError(f"{serving_dir}: no serving directory (run a pipeline first, or give --serving-dir)")
    if not 0.0 <= args.log_requests <= 1.0:
        raise UserError(f"--log-requests {args.log_requests}: a sampling rate between 0 and 1")
    quiet_runtime(args.verbose, cpp_errors=False)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from serving.options import ServerOptions
    from serving.runtime.model_config import ModelConfigError
    from serving.server import serve_forever

    options = ServerOptions(
        poll_seconds=args.poll_seconds, enable_batching=args.enable_batching, max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms, batch_threads=args.batch_threads,
        max_request_rows=args.max_request_rows, max_request_bytes=args.max_request_bytes,
        request_timeout_s=args.request_timeout,
        request_log_dir=Path(args.request_log_dir) if args.request_log_dir else home.request_logs,
        request_log_rate=args.log_requests, shadow_log_dir=home.shadow_logs, tls=_server_tls(args),
        idle_timeout_s=args.idle_timeout, max_connections=args.max_connections,
        max_concurrent_rpcs=args.max_concurrent_rpcs, max_concurrent_streams=args.max_concurrent_streams,
        grpc_max_connection_idle_s=args.grpc_max_connection_idle,
        grpc_max_connection_age_s=args.grpc_max_connection_age,
        threads=args.threads, workers=args.workers)
    if args.workers < 1 or args.threads < 1:
        raise UserError("--workers and --threads: 1 or more")
    from serving.options import is_loopback

    if options.tls is None and not is_loopback(args.host):
        print(f"mlops: warning: serving on {args.host} without TLS: anyone who reaches this address can call "
              "the models in the clear (--ssl-cert/--ssl-key, and --ssl-client-ca for mutual TLS)", file=sys.stderr)
    try:
        with translated(user=(ModelConfigError,)):
            serve_forever(serving_dir, args.host, args.rest_port, args.grpc_port, options)
    except OSError as e:
        raise UserError(f"cannot start the server on {args.host}: {e}") from None
    return EXIT_OK


def _server_tls(args: argparse.Namespace):
    """--ssl-cert/--ssl-key [--ssl-client-ca] as TlsFiles, checked (one line naming the file) before
    any model loads."""
    import ssl

    from serving.options import TlsFiles

    if not (args.ssl_cert or args.ssl_key or args.ssl_client_ca):
        return None
    if not (args.ssl_cert and args.ssl_key):
        raise UserError("--ssl-cert and --ssl-key go together (and --ssl-client-ca needs them)")
    for option, value in (("--ssl-cert", args.ssl_cert), ("--ssl-key", args.ssl_key),
                          ("--ssl-client-ca", args.ssl_client_ca)):
        if value and not Path(value).is_file():
            raise UserError(f"{option} {value}: no such file")
    tls = TlsFiles(Path(args.ssl_cert), Path(args.ssl_key), Path(args.ssl_client_ca) if args.ssl_client_ca else None)
    try:
        tls.server_context()
    except (ssl.SSLError, ValueError) as e:
        raise UserError(f"--ssl-cert {args.ssl_cert} / --ssl-key {args.ssl_key}: not a PEM certificate and its "
                        f"key ({e})") from None
    return tls


def _client_tls(args: argparse.Namespace):
    from serving.options import TlsFiles

    if not (args.ssl_ca or args.ssl_cert or args.ssl_key):
        return None
    if bool(args.ssl_cert) != bool(args.ssl_key):
        raise UserError("--ssl-cert and --ssl-key go together (a client certificate for mutual TLS)")
    for option, value in (("--ssl-ca", args.ssl_ca), ("--ssl-cert", args.ssl_cert), ("--ssl-key", args.ssl_key)):
        if value and not Path(value).is_file():
            raise UserError(f"{option} {value}: no such file")
    return TlsFiles(Path(args.ssl_cert) if args.ssl_cert else None, Path(args.ssl_key) if args.ssl_key else None,
                    Path(args.ssl_ca) if args.ssl_ca else None)


def cmd_predict(args: argparse.Namespace) -> int:
    from serving.client import ClientError, RequestFileError, is_table_file, print_predictions, request_from_file

    if args.grpc:  # the gRPC stubs load TensorFlow
        quiet_runtime(args.verbose, cpp_errors=False)
    server = _PredictClient(args)
    from serving.codec.images import is_image_name

    paths = [Path(f) for f in args.files]
    if all(is_image_name(p) for p in paths):
        return _predict_images(server, paths)
    if len(paths) > 1:
        raise UserError("give one .json, .csv or .tsv file, or image files (.jpg .jpeg .png .bmp .gif)")
    _existing(args.files[0])
    if is_table_file(paths[0]):
        from serving.client import series_info

        with translated(user=(RequestFileError,), refused=(ClientError,)):
            series = series_info(server.metadata)
        if series is not None:
            return _predict_series(server, paths[0], series)
    with translated(user=(RequestFileError,), refused=(ClientError,)):  # the server answered no, or is not there
        body, dropped = request_from_file(paths[0], server.inputs)
        if dropped:
            print(f"mlops: note: columns the model does not take were left out: {', '.join(dropped)}",
                  file=sys.stderr)
        response = server.predict(body)
        # a CSV was read with the model's columns: say what its scores are (a JSON body needs no metadata)
        note = server.inputs()[1].scores_note() if is_table_file(paths[0]) else ""
    print_predictions(response)
    if note:
        print(f"mlops: note: {note}", file=sys.stderr)
    return EXIT_OK


class _PredictClient:
    """The served model `mlops predict` talks to, over REST or (--grpc) gRPC alone: its metadata
    (fetched once, when needed) and predictions."""

    def __init__(self, args: argparse.Namespace):
        from serving.client import Target

        self.args = args
        self.target = Target(args.host, args.model, args.version, args.label, args.signature or "",
                             _client_tls(args))

    @functools.cached_property
    def metadata(self) -> dict:
        from serving.client import model_metadata

        return model_metadata(self.target, self.args.rest_port, self.args.grpc_port if self.args.grpc else None)

    def inputs(self):
        from serving.client import model_inputs

        return model_inputs(self.metadata, self.target)

    def predict(self, body: dict) -> dict:
        from serving.client import predict_grpc, predict_rest

        if self.args.grpc:
            return predict_grpc(self.args.host, self.args.grpc_port, self.target, body, *self.inputs())
        return predict_rest(self.args.host, self.args.rest_port, self.target, body)


def _predict_series(server: _PredictClient, path: Path, series) -> int:
    """A forecaster: a history CSV in, each series' future steps out (CSV on stdout)."""
    from serving.client import ClientError, RequestFileError
    from serving.codec.periods import FORECAST_OUTPUT
    from serving.forecast_client import HistoryError, forecast_request, read_history, write_forecasts

    with translated(user=(HistoryError,)):
        windows = read_history(path, series)
    with translated(user=(RequestFileError,), refused=(ClientError,)):
        response = server.predict(forecast_request(windows, series))
    rows = [row[FORECAST_OUTPUT] if isinstance(row, dict) else row for row in response.get("predictions", [])]
    write_forecasts(series, windows, rows, sys.stdout)
    return EXIT_OK


def _predict_images(server: _PredictClient, paths) -> int:
    """Image files to an image model: REST with {"b64": ...} instances, or gRPC with a DT_STRING tensor."""
    from serving.client import ClientError, RequestFileError, image_request, print_image_predictions

    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: no such file")
    with translated(user=(RequestFileError,), refused=(ClientError,)):
        response = server.predict(image_request(paths))
        classes = (server.metadata.get("image") or {}).get("class_names", [])
    print_image_predictions(paths, response, classes)
    return EXIT_OK


def _existing(path: str) -> Path:
    model_path = Path(path)
    if not model_path.exists():
        raise UserError(f"{model_path}: no such file")
    return model_path


def cmd_edge_predict(args: argparse.Namespace) -> int:
    """Runs a .tflite model on raw rows with the LiteRT interpreter (no TFX, no TensorFlow)."""
    from serving.codec.images import ImageError
    from serving.edge_runtime import (
        PREDICTIONS,
        EdgeInputError,
        EdgeModel,
        image_inputs,
        read_rows,
        read_sidecar,
        rows_to_inputs,
    )
    from serving.forecast_client import HistoryError

    model_path = _existing(args.model)
    paths = [Path(f) for f in args.files]
    with translated(user=(EdgeInputError, ImageError, HistoryError)):
        sidecar = read_sidecar(model_path)
        if sidecar.get("series"):
            return _edge_forecast(model_path, sidecar, paths)
        if sidecar.get("image"):
            inputs = image_inputs(sidecar, paths)
        elif len(paths) > 1:
            raise EdgeInputError("give one .csv or .npy file (image files go to an image model)")
        else:
            inputs = rows_to_inputs(sidecar, read_rows(paths[0], sidecar), str(paths[0]))
    outputs = EdgeModel(model_path).predict(inputs)
    if sidecar.get("image"):
        from serving.client import print_image_predictions

        print_image_predictions(paths, {"predictions": outputs[PREDICTIONS].tolist()},
                                sidecar.get("class_names", []))
        return EXIT_OK
    for i in range(len(next(iter(outputs.values())))):
        row = {name: value[i].tolist() for name, value in outputs.items()}
        print(f"{i}\t{json.dumps(row if len(row) > 1 else next(iter(row.values())))}")
    return EXIT_OK


def _edge_forecast(model_path: Path, sidecar, paths) -> int:
    """A forecaster's TF Lite model on a history CSV: each series' future steps, as `mlops predict` prints them."""
    from serving.client import is_table_file
    from serving.codec.periods import FORECAST_OUTPUT
    from serving.edge_runtime import EdgeInputError, EdgeModel, rows_to_inputs, series_rows
    from serving.forecast_client import write_forecasts

    if len(paths) != 1 or not is_table_file(paths[0]):
        raise EdgeInputError("a forecaster takes one history CSV (the series' recent points, as `mlops predict` does)")
    info, windows, rows = series_rows(paths[0], sidecar)
    outputs = EdgeModel(model_path).predict(rows_to_inputs(sidecar, rows, str(paths[0])))
    write_forecasts(info, windows, outputs[FORECAST_OUTPUT].tolist(), sys.stdout)
    return EXIT_OK


def cmd_edge_bench(args: argparse.Namespace) -> int:
    from serving.edge_runtime import EdgeInputError, bench

    model_path = _existing(args.model)
    with translated(user=(EdgeInputError,)):
        result = bench(model_path, runs=args.runs)
    print(f"{model_path}: {result['size_bytes'] / 1024:.1f} KiB, batch 1 over {result['runs']} runs: "
          f"p50 {result['p50_us']} us, p99 {result['p99_us']} us")
    return EXIT_OK


def _serve_limits(group, defaults) -> None:
    """What one request, one connection and the whole server may take."""
    group.add_argument("--max-request-rows", type=int, default=defaults.max_request_rows,
                       help="rows allowed in one request")
    group.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes, help="request body limit")
    group.add_argument("--request-timeout", type=float, default=defaults.request_timeout_s,
                       help="seconds a model call may take")
    group.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout_s, metavar="SECONDS",
                       help="close a REST connection that sends nothing (or half a request) this long")
    group.add_argument("--max-connections", type=int, default=defaults.max_connections,
                       help="open REST connections; a new one beyond gets 503")
    group.add_argument("--max-concurrent-rpcs", type=int, default=defaults.max_concurrent_rpcs,
                       help="gRPC calls in flight or queued; beyond: RESOURCE_EXHAUSTED")
    group.add_argument("--max-concurrent-streams", type=int, default=defaults.max_concurrent_streams,
                       help="gRPC calls open on one connection; beyond: refused")
    group.add_argument("--grpc-max-connection-idle", type=float, default=defaults.grpc_max_connection_idle_s,
                       metavar="SECONDS", help="GOAWAY to a gRPC connection without calls this long (0: never)")
    group.add_argument("--grpc-max-connection-age", type=float, default=defaults.grpc_max_connection_age_s,
                       metavar="SECONDS", help="GOAWAY to a gRPC connection this old, to rebalance (0: never)")


def _serve_scale(group, defaults) -> None:
    group.add_argument("--workers", type=int, default=defaults.workers,
                       help="server processes sharing the ports, each with the models loaded (default 1)")
    group.add_argument("--threads", type=int, default=defaults.threads,
                       help="threads running requests, per API and worker")


def _serve_tls(group) -> None:
    group.add_argument("--ssl-cert", metavar="PEM", help="HTTPS and gRPC over TLS: the server's certificate chain")
    group.add_argument("--ssl-key", metavar="PEM", help="the certificate's private key")
    group.add_argument("--ssl-client-ca", metavar="PEM",
                       help="mutual TLS: require client certificates signed by this CA (REST and gRPC)")


def _register_serve(sub) -> None:
    from serving.options import DEFAULT_GRPC_PORT, DEFAULT_HOST, DEFAULT_REST_PORT, ServerOptions

    defaults = ServerOptions()
    serve = add_command(sub, "serve", cmd_serve, "serve the pushed models over TF Serving's REST and gRPC APIs", HOME)
    serve.add_argument("--serving-dir", help="serve this base dir instead of <home>/serving")
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: loopback only)")
    serve.add_argument("--rest-port", type=int, default=DEFAULT_REST_PORT)
    serve.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT)
    serve.add_argument("--poll-seconds", type=float, default=defaults.poll_seconds,
                       help="how often models.config and dirs are read")
    serve.add_argument("--enable-batching", action="store_true", help="batch concurrent requests server-side")
    serve.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size,
                       help="rows per batched model call")
    serve.add_argument("--batch-timeout-ms", type=float, default=defaults.batch_timeout_ms,
                       help="how long a batch waits to fill")
    serve.add_argument("--batch-threads", type=int, default=defaults.batch_threads,
                       help="batches gathered and run at once per signature (TF Serving's num_batch_threads)")
    serve.add_argument("--log-requests", type=float, default=defaults.request_log_rate, metavar="RATE",
                       help="log this fraction of requests as tf.Examples (0: off)")
    serve.add_argument("--request-log-dir", help="default: <home>/request-logs")
    _serve_limits(serve.add_argument_group("limits"), defaults)
    _serve_scale(serve.add_argument_group("scale"), defaults)
    _serve_tls(serve.add_argument_group("TLS"))


def register(sub) -> None:
    from serving.options import DEFAULT_GRPC_PORT, DEFAULT_HOST, DEFAULT_REST_PORT

    _register_serve(sub)
    predict = add_command(sub, "predict", cmd_predict, "send rows (a JSON or CSV file) or image files to a server")
    predict.add_argument("files", nargs="+", metavar="FILE",
                         help="FILE.json (TF Serving request or list of rows), FILE.csv, or image files")
    predict.add_argument("--model", required=True)
    which = predict.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--label", help="a version label from models.config, e.g. stable or canary")
    api = predict.add_mutually_exclusive_group()
    api.add_argument("--rest", action="store_true", help="use the REST API (default)")
    api.add_argument("--grpc", action="store_true", help="use the gRPC API")
    predict.add_argument("--signature", help="signature name (default: serving_default)")
    predict.add_argument("--host", default=DEFAULT_HOST)
    predict.add_argument("--rest-port", type=int, default=DEFAULT_REST_PORT)
    predict.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT)
    predict.add_argument("--ssl-ca", metavar="PEM", help="TLS: verify the server with this CA (HTTPS, gRPC over TLS)")
    predict.add_argument("--ssl-cert", metavar="PEM", help="mutual TLS: this client's certificate")
    predict.add_argument("--ssl-key", metavar="PEM", help="mutual TLS: its private key")

    edge = sub.add_parser("edge", help="run or time a TF Lite model as an edge device would (LiteRT)")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True)
    edge_predict = add_command(edge_sub, "predict", cmd_edge_predict,
                               "predict raw rows (a CSV or .npy file), image files, or a forecaster's history CSV")
    edge_predict.add_argument("model", help="a .tflite file with edge.json beside it (<version>/tflite/)")
    edge_predict.add_argument("files", nargs="+", metavar="FILE",
                              help="FILE.csv (raw columns by name), FILE.npy, or image files (an image model)")
    edge_bench = add_command(edge_sub, "bench", cmd_edge_bench, "batch-1 latency and size")
    edge_bench.add_argument("model")
    edge_bench.add_argument("--runs", type=int, default=2000)
