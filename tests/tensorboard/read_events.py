"""Reads a TensorBoard log directory with TensorBoard's own readers and prints, as JSON,
what TensorBoard sees in each run: scalars (tag -> [[step, value], ...]) and the HParams
plugin's session start/end records. Used by tests/tensorboard.rs; needs `pip install
tensorboard`.

usage: python read_events.py LOGDIR
"""
import json
import sys

from tensorboard.backend.event_processing import event_multiplexer
from tensorboard.plugins.hparams import metadata as hparams_metadata
from google.protobuf import json_format


def main(logdir):
    mux = event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    out = {}
    for run in sorted(mux.Runs()):
        acc = mux.GetAccumulator(run)
        tags = acc.Tags()
        scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in tags.get("scalars", [])}
        sessions = {}
        for tag, content in mux.PluginRunToTagToContent(hparams_metadata.PLUGIN_NAME).get(run, {}).items():
            parse = {
                hparams_metadata.SESSION_START_INFO_TAG: hparams_metadata.parse_session_start_info_plugin_data,
                hparams_metadata.SESSION_END_INFO_TAG: hparams_metadata.parse_session_end_info_plugin_data,
                hparams_metadata.EXPERIMENT_TAG: hparams_metadata.parse_experiment_plugin_data,
            }[tag]
            data = parse(content)
            sessions[tag] = json_format.MessageToDict(data, preserving_proto_field_name=True)
        out[run] = {"scalars": scalars, "hparams": sessions}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
