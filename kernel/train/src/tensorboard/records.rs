//! TensorBoard's event files: TFRecord framing (length, masked CRC-32C of the length,
//! data, masked CRC-32C of the data) around serialized `Event` messages.

use super::proto::{varint_field, Message};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The CRC TFRecord stores: CRC-32C, rotated and offset so that a CRC of data holding CRCs
/// stays well distributed.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The records of an event file, in order; reading stops at the first torn or damaged
/// record (a run killed while writing leaves at most one).
pub fn read_records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + 12) {
        let (len_bytes, len_crc) = header.split_at(8);
        if masked_crc(len_bytes).to_le_bytes() != len_crc {
            break;
        }
        let Ok(len) = usize::try_from(u64::from_le_bytes(len_bytes.try_into().unwrap_or_default())) else { break };
        let Some(end) = (at + 12).checked_add(len) else { break };
        let (Some(data), Some(crc)) = (bytes.get(at + 12..end), bytes.get(end..end + 4)) else { break };
        if masked_crc(data).to_le_bytes() != crc {
            break;
        }
        out.push(data);
        at = end + 4;
    }
    out
}

/// The step of a serialized `Event` (field 2; absent means 0).
pub fn event_step(event: &[u8]) -> u64 {
    varint_field(event, 2).unwrap_or(0)
}

pub fn is_event_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("events.out.tfevents."))
}

/// The event files in `dir`, in the order TensorBoard reads them (by name).
pub fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).filter(|p| is_event_file(p)).collect()).unwrap_or_default();
    files.sort();
    files
}

/// One event file being appended to; every event is flushed (a killed run keeps what it
/// logged).
pub struct EventFile {
    file: std::fs::File,
    pub path: PathBuf,
}

impl EventFile {
    /// A new file in `dir`, named to sort after the files already there.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let n = event_files(dir).len();
        let path = dir.join(format!("events.out.tfevents.{secs:010}.{n:04}.elmlab"));
        let file = std::fs::OpenOptions::new().create_new(true).write(true).open(&path)?;
        let mut out = EventFile { file, path };
        out.write(Message::new().double(1, wall_time()).string(3, "brain.Event:2"))?;
        Ok(out)
    }

    pub fn write(&mut self, event: Message) -> std::io::Result<()> {
        self.file.write_all(&frame(&event.into_bytes()))?;
        self.file.flush()
    }

    /// An `Event` at `step` holding `summary`.
    pub fn summary(&mut self, step: u64, summary: Message) -> std::io::Result<()> {
        self.write(Message::new().double(1, wall_time()).int64(2, step as i64).message(5, summary))
    }
}

pub fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Rewrites every event file in `dir` without the events after `step` (a resumed run
/// writes them again), each through a temporary file and a rename.
pub fn truncate_after(dir: &Path, step: u64) -> std::io::Result<()> {
    for path in event_files(dir) {
        let bytes = std::fs::read(&path)?;
        let records = read_records(&bytes);
        let kept: Vec<u8> = records.iter().filter(|r| event_step(r) <= step).flat_map(|r| frame(r)).collect();
        if kept.len() != bytes.len() {
            elmlab_core::fs::write_atomic(&path, &kept).map_err(|e| std::io::Error::other(e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_crc32c_masked_as_tfrecord_does() {
        // CRC-32C("123456789") = 0xE3069283, the standard check value
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn records_read_back_and_a_torn_tail_is_dropped() {
        let a = Message::new().int64(2, 3).into_bytes();
        let b = Message::new().int64(2, 9).string(3, "x").into_bytes();
        let mut bytes = frame(&a);
        bytes.extend(frame(&b));
        assert_eq!(read_records(&bytes), vec![&a[..], &b[..]]);
        assert_eq!(read_records(&bytes[..bytes.len() - 1]), vec![&a[..]]);
        let mut flipped = bytes.clone();
        flipped[14] ^= 1;
        assert!(read_records(&flipped).is_empty());
        assert_eq!(read_records(&bytes).iter().map(|r| event_step(r)).collect::<Vec<_>>(), [3, 9]);
    }
}
