"""ServingPusher: TFX's Pusher (same blessing check, same PushedModel properties) made safe for a
server that polls the base dir, and ready for it.

- The version directory appears atomically: the model is copied into a hidden staging directory
  in the base dir and renamed into place, so a server never sees half a model (TFX's Pusher copies
  in place, saved_model.pb last).
- TF Serving warmup records from eval rows go into ``assets.extra`` (both servers replay them).
- The TF Lite variants EdgeExport accepted go into ``tflite/`` with their sidecar, which is told
  the model version they came from.
- ``models.config`` beside the model dirs lists the model (a latest-2 policy when it is new;
  existing policies and labels are left alone).
Versions are Unix timestamps like TFX's, and always larger than the newest existing version.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional

from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import Channel, artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import io_utils

from components.edge_export import EdgeModelArtifact
from components.splits import read_split
from serving.edge_runtime import EDGE_DIR
from serving.runtime.publish import push_version

WARMUP_EXAMPLES = 8


class ServingPusherExecutor(tfx_pusher.Executor):
    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed)
            return
        model_path = Path(self.GetModelPath(input_dict))
        base_dir = Path(exec_properties["base_directory"])
        edge = input_dict.get("edge_model") or []
        extra = {EDGE_DIR: Path(edge[0].uri)} if edge and edge[0].get_int_custom_property("exported") else {}
        destination = push_version(model_path, base_dir, exec_properties["model_name"],
                                   read_split(artifact_utils.get_single_instance(input_dict["examples"]), "eval",
                                              WARMUP_EXAMPLES), extra)
        io_utils.copy_dir(str(destination), pushed.uri)  # the archive copy TFX's Pusher keeps
        self._MarkPushed(pushed, pushed_destination=str(destination), pushed_version=destination.name)


class ServingPusherSpec(ComponentSpec):
    PARAMETERS = {"base_directory": ExecutionParameter(type=str), "model_name": ExecutionParameter(type=str)}
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "edge_model": ChannelParameter(type=EdgeModelArtifact, optional=True),
    }
    OUTPUTS = {"pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}


class ServingPusher(base_component.BaseComponent):
    SPEC_CLASS = ServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ServingPusherExecutor)

    def __init__(self, model: Channel, model_blessing: Channel, examples: Channel, base_directory: str,
                 model_name: str, edge_model: Optional[Channel] = None):
        super().__init__(spec=ServingPusherSpec(
            model=model, model_blessing=model_blessing, examples=examples, edge_model=edge_model,
            base_directory=base_directory, model_name=model_name,
            pushed_model=Channel(type=standard_artifacts.PushedModel)))
