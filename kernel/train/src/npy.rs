//! Input batches as `.npy` arrays (`elmlab record --input`): float32 or float64, any
//! shape, read whole; a header that promises more values than the file holds is refused
//! before anything is allocated for them.

use std::path::Path;

/// The shape and values (as f32) of an `.npy` file's bytes; `path` names it in errors.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<f32>), String> {
    check_header(bytes).map_err(|e| format!("{} is not a .npy file: {e}", path.display()))?;
    let npy = npyz::NpyFile::new(bytes).map_err(|e| format!("{} is not a .npy file: {e}", path.display()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let width = match npy.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && (t.size_field() == 4 || t.size_field() == 8) => t.size_field() as usize,
        other => return Err(format!("{}: dtype {} is not supported; save float32 or float64", path.display(), other.descr())),
    };
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let fits = count.and_then(|c| c.checked_mul(width)).is_some_and(|need| need <= bytes.len());
    if !fits {
        return Err(format!("{}: the header says shape {shape:?}, more values than the file's {} bytes hold", path.display(), bytes.len()));
    }
    let values: Vec<f32> = if width == 4 {
        npy.into_vec::<f32>().map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        npy.into_vec::<f64>().map_err(|e| format!("{}: {e}", path.display()))?.into_iter().map(|v| v as f32).collect()
    };
    Ok((shape, values))
}

/// What the `.npy` reader trusts, checked first: the stated header length must fit in the
/// file (the reader allocates it before reading: tests/fuzz.rs found a 4 GB header length
/// in 89 bytes), and the shape's product must not overflow (the reader multiplies
/// unchecked) nor exceed the bytes that follow.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err("no .npy magic".into());
    }
    let (length, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("format version {v} is not one numpy writes (1, 2 or 3)")),
    };
    if start + length > bytes.len() {
        return Err(format!("the header claims {length} bytes, the file has {}", bytes.len()));
    }
    let header = String::from_utf8_lossy(&bytes[start..start + length]);
    let Some(tuple) = header.split("'shape':").nth(1).and_then(|rest| rest.split_once('(')).and_then(|(_, rest)| rest.split_once(')')).map(|(t, _)| t) else {
        return Ok(()); // the reader refuses a header without a shape itself
    };
    let mut count: usize = 1;
    for dim in tuple.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let dim: usize = dim.parse().map_err(|_| format!("the shape ({tuple}) is not a tuple of sizes"))?;
        count = count.checked_mul(dim).filter(|&c| c <= bytes.len()).ok_or_else(|| format!("the shape ({tuple}) holds more values than the file's {} bytes", bytes.len()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` file: the header for `shape` (f32, C order), then `values`.
    fn npy(shape: &str, values: &[f32]) -> Vec<u8> {
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    #[test]
    fn headers_and_shapes_that_promise_more_than_the_file_holds_are_refused() {
        let p = Path::new("x.npy");
        let good = npy("(2, 1)", &[1.5, -2.0]);
        assert_eq!(parse_npy(&good, p).unwrap(), (vec![2, 1], vec![1.5, -2.0]));
        let mut long = good.clone();
        long[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(parse_npy(&long, p).unwrap_err().contains("the header claims 65535 bytes"));
        let e = parse_npy(&npy("(9, 9)", &[1.5, -2.0]), p).unwrap_err();
        assert!(e.contains("shape [9, 9], more values than the file"), "{e}");
        // found by this test: the reader's own count overflows
        let e = parse_npy(&npy("(4294967296, 4294967296, 4294967296)", &[]), p).unwrap_err();
        assert!(e.contains("holds more values than the file"), "{e}");
    }
}
