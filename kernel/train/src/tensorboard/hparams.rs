//! The HParams plugin's session records: a session's hyperparameters when it starts and
//! its status when it ends, as TensorBoard's `tensorboard.hparams.HParamsPluginData`
//! inside a summary's plugin metadata (so `tensorboard --logdir` over a sweep shows its
//! runs as a table and parallel coordinates).

use super::proto::Message;
use serde_json::{Map, Value};

pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";
pub const SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// `tensorboard.hparams.Status`.
#[derive(Clone, Copy, Debug)]
pub enum Status {
    Success = 1,
    Failure = 2,
}

/// A `google.protobuf.Value`: numbers, strings and booleans as themselves, anything else
/// as its JSON text.
fn value(v: &Value) -> Message {
    match v {
        Value::Number(n) => Message::new().double(2, n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Message::new().string(3, s),
        Value::Bool(b) => Message::new().varint(4, u64::from(*b)),
        other => Message::new().string(3, &other.to_string()),
    }
}

/// A summary with one value: the plugin data under `tag`, and the empty float tensor the
/// plugin's own writer attaches.
fn summary(tag: &str, plugin_data: Message) -> Message {
    let content = plugin_data.into_bytes();
    let metadata = Message::new().message(1, Message::new().string(1, "hparams").bytes(2, &content));
    let null_tensor = Message::new().varint(1, 1).message(2, Message::new().message(2, Message::new()));
    Message::new().message(1, Message::new().string(1, tag).message(9, metadata).message(8, null_tensor))
}

pub fn session_start(hparams: &Map<String, Value>, group: &str, start_time: f64) -> Message {
    let mut info = Message::new();
    for (name, v) in hparams {
        info = info.message(1, Message::new().string(1, name).message(2, value(v)));
    }
    let info = info.string(4, group).double(5, start_time);
    summary(SESSION_START_TAG, Message::new().message(3, info))
}

pub fn session_end(status: Status, end_time: f64) -> Message {
    let info = Message::new().varint(1, status as u64).double(2, end_time);
    summary(SESSION_END_TAG, Message::new().message(4, info))
}
