//! The few protocol-buffer encodings TensorBoard's event files need (varints,
//! length-delimited fields, fixed 32/64-bit values), and a reader of top-level fields for
//! rewriting our own files on resume.

/// A message under construction: fields appended in the order written.
#[derive(Default)]
pub struct Message {
    bytes: Vec<u8>,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl Message {
    pub fn new() -> Self {
        Message::default()
    }
    fn key(&mut self, field: u32, wire: u8) {
        put_varint(&mut self.bytes, (u64::from(field) << 3) | u64::from(wire));
    }
    pub fn varint(mut self, field: u32, value: u64) -> Self {
        self.key(field, VARINT);
        put_varint(&mut self.bytes, value);
        self
    }
    /// An `int64` (negative values take ten bytes, as protobuf encodes them).
    pub fn int64(self, field: u32, value: i64) -> Self {
        self.varint(field, value as u64)
    }
    pub fn double(mut self, field: u32, value: f64) -> Self {
        self.key(field, FIXED64);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }
    pub fn float(mut self, field: u32, value: f32) -> Self {
        self.key(field, FIXED32);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }
    pub fn bytes(mut self, field: u32, value: &[u8]) -> Self {
        self.key(field, LENGTH_DELIMITED);
        put_varint(&mut self.bytes, value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }
    pub fn string(self, field: u32, value: &str) -> Self {
        self.bytes(field, value.as_bytes())
    }
    pub fn message(self, field: u32, value: Message) -> Self {
        self.bytes(field, &value.bytes)
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The value of varint field `field` at the top level of `message`, if present and the
/// message is well formed.
pub fn varint_field(message: &[u8], field: u32) -> Option<u64> {
    let mut at = 0;
    let mut found = None;
    while at < message.len() {
        let key = get_varint(message, &mut at)?;
        let (number, wire) = ((key >> 3) as u32, (key & 7) as u8);
        match wire {
            VARINT => {
                let v = get_varint(message, &mut at)?;
                if number == field {
                    found = Some(v);
                }
            }
            FIXED64 => at = at.checked_add(8)?,
            FIXED32 => at = at.checked_add(4)?,
            LENGTH_DELIMITED => {
                let len = usize::try_from(get_varint(message, &mut at)?).ok()?;
                at = at.checked_add(len)?;
            }
            _ => return None,
        }
    }
    (at == message.len()).then_some(found).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_protobuf_wire_format() {
        // from the protobuf encoding guide: field 1 = 150 is 08 96 01
        assert_eq!(Message::new().varint(1, 150).into_bytes(), [0x08, 0x96, 0x01]);
        assert_eq!(Message::new().string(2, "testing").into_bytes(), b"\x12\x07testing");
        assert_eq!(Message::new().int64(2, -1).into_bytes().len(), 1 + 10);
        assert_eq!(Message::new().float(2, 1.0).into_bytes(), [0x15, 0, 0, 0x80, 0x3f]);
        let m = Message::new().double(1, 2.5).int64(2, 300).string(5, "x").into_bytes();
        assert_eq!(varint_field(&m, 2), Some(300));
        assert_eq!(varint_field(&m, 3), None);
        assert_eq!(varint_field(&m[..m.len() - 1], 2), None, "a torn message is not read");
    }
}
