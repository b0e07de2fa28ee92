"""Serving: TF Serving's REST and gRPC APIs over the pushed models (``mlops serve``), the
``models.config`` both servers read, and a client (``mlops predict``). No TFX import here."""
