"""What TF Serving does and our server does too: servables, the version manager, batching, traffic
split and shadow, warmup, the request log, atomic publish, metrics."""
