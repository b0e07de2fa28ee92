"""RNN family: stacked SimpleRNN / LSTM / GRU layers over a [T, F] sequence, optionally bidirectional."""
from typing import Any, Dict, Mapping

import tf_keras as keras

from components.models.base import FeatureSpec, HeadSpec

# by components.models.families.CHOICES["cell"], which resolve_hparams checks
CELLS = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def recurrent_layer(hp: Mapping[str, Any], units: int, return_sequences: bool, name: str) -> Any:
    return CELLS[hp["cell"]](units, return_sequences=return_sequences, dropout=hp["dropout"], name=name)


def build(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any], head: HeadSpec) -> Any:
    name, _ = spec.single_tensor(2, "rnn")
    x = inputs[name]
    for index in range(hp["layers"]):
        layer = recurrent_layer(hp, hp["units"], index < hp["layers"] - 1, f"rnn{index}")
        x = keras.layers.Bidirectional(layer, name=f"bi_rnn{index}")(x) if hp["bidirectional"] else layer(x)
    return x
