"""Thin adapters over the data plane: TF Serving's REST and gRPC APIs, the Open Inference Protocol's
(KServe V2) REST and gRPC APIs, and the servers that carry them."""
