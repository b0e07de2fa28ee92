"""Seq2seq family: an LSTM encoder, RepeatVector over the forecast horizon, an LSTM decoder giving
one state per future step (the forecast head maps each to a value)."""
from typing import Any, Dict, Mapping

import tf_keras as keras

from components.models.base import FeatureSpec, HeadSpec
from components.models.rnn import recurrent_layer


def build(inputs: Dict[str, Any], spec: FeatureSpec, hp: Mapping[str, Any], head: HeadSpec) -> Any:
    name, _ = spec.single_tensor(2, "seq2seq")
    encoded = recurrent_layer(hp, hp["units"], False, "encoder")(inputs[name])
    repeated = keras.layers.RepeatVector(head.units, name="repeat_horizon")(encoded)
    return recurrent_layer(hp, hp["units"], True, "decoder")(repeated)
