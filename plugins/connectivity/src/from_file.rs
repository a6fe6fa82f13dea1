//! A connectome read from a file: an integer `[N, k_c]` tensor in a safetensors file (by
//! name) or an `.npy` array, for models wired elsewhere. The file fixes both `N` and
//! `k_c`: the fan-in is the file's, and a layer of another width is refused.

use elmlab_core::connectivity::{Connectome, Connectivity, WiringShape};
use elmlab_core::error::PluginError;
use elmlab_core::registry::{ConnectivityEntry, ConnectivityPlugin};
use elmlab_core::settings::Settings;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

#[derive(Settings, Clone, Debug, PartialEq)]
pub struct FromFileSettings {
    /// the file: .safetensors (the tensor named `tensor`) or .npy, integer [N, k_c]
    pub path: String,
    /// the tensor's name in a safetensors file
    #[setting(default = "hidden.connectome")]
    pub tensor: String,
}

impl ConnectivityPlugin for FromFileSettings {
    const NAME: &'static str = "from_file";
    const DOC: &'static str = "the connectome of a file (safetensors or .npy, integer [N, k_c]); fixes N and k_c";
    fn build(self) -> Result<Box<dyn Connectivity>, PluginError> {
        Ok(Box::new(FromFile::read(Path::new(&self.path), &self.tensor)?))
    }
}

elmlab_core::inventory::submit! { ConnectivityEntry::of::<FromFileSettings>() }

/// The rows read from the file.
#[derive(Debug)]
pub struct FromFile {
    pub source: String,
    pub indices: Vec<Vec<usize>>,
}

impl FromFile {
    pub fn read(path: &Path, tensor: &str) -> Result<Self, PluginError> {
        let bad = |what: String| PluginError::data(format!("{}: {what}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read the connectome: {e}")))?;
        let (shape, values) = if bytes.starts_with(b"\x93NUMPY") { read_npy(&bytes).map_err(bad)? } else { read_safetensors(&bytes, tensor).map_err(bad)? };
        let [rows, k_c] = shape[..] else { return Err(bad(format!("the connectome has shape {shape:?}; it must be [N, k_c]"))) };
        if rows == 0 || k_c == 0 {
            return Err(bad(format!("the connectome has shape {shape:?}; it needs at least one unit and one synapse")));
        }
        if let Some((at, v)) = values.iter().enumerate().find(|(_, v)| **v < 0) {
            return Err(bad(format!("entry [{}, {}] of the connectome is {v}; indices are 0 or more", at / k_c, at % k_c)));
        }
        let indices = values.chunks(k_c).map(|row| row.iter().map(|&v| v as usize).collect()).collect();
        Ok(FromFile { source: path.display().to_string(), indices })
    }
}

fn read_npy(bytes: &[u8]) -> Result<(Vec<usize>, Vec<i64>), String> {
    let npy = npyz::NpyFile::new(bytes).map_err(|e| format!("not a readable .npy file: {e}"))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let values: Vec<i64> = match npy.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Int && t.size_field() == 8 => npy.into_vec::<i64>().map_err(|e| e.to_string())?,
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Int && t.size_field() == 4 => npy.into_vec::<i32>().map_err(|e| e.to_string())?.into_iter().map(i64::from).collect(),
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Uint && t.size_field() == 4 => npy.into_vec::<u32>().map_err(|e| e.to_string())?.into_iter().map(i64::from).collect(),
        other => return Err(format!("the connectome has dtype {}; it must be integers (int64, int32 or uint32)", other.descr())),
    };
    Ok((shape, values))
}

fn read_safetensors(bytes: &[u8], tensor: &str) -> Result<(Vec<usize>, Vec<i64>), String> {
    use safetensors::tensor::{Dtype, SafeTensors};
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not a readable safetensors file ({e:?}) nor an .npy array"))?;
    let view = st.tensor(tensor).map_err(|_| {
        let mut names: Vec<&String> = st.names();
        names.sort();
        format!("has no tensor `{tensor}` (it has {names:?}); name it with `tensor`")
    })?;
    let data = view.data();
    let values: Vec<i64> = match view.dtype() {
        Dtype::I64 => data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
        Dtype::I32 => data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64).collect(),
        Dtype::U32 => data.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64).collect(),
        other => return Err(format!("tensor `{tensor}` is {other:?}; a connectome is integers (I64, I32 or U32)")),
    };
    Ok((view.shape().to_vec(), values))
}

impl Connectivity for FromFile {
    /// The file's: the neuron's request does not change it.
    fn fan_in(&self, _requested: usize, _input_width: usize, _units: usize) -> usize {
        self.indices[0].len()
    }

    fn wire(&self, shape: WiringShape, _rng: &mut ChaCha8Rng) -> Result<Connectome, PluginError> {
        if shape.units != self.indices.len() {
            return Err(PluginError::shape(format!("the connectome in {} has {} rows; the layer has {} units (set model.units to match)", self.source, self.indices.len(), shape.units)));
        }
        let c = Connectome { shape, indices: self.indices.clone() };
        c.validate().map_err(|e| PluginError::shape(format!("the connectome in {}: {e}", self.source)))?;
        Ok(c)
    }

    fn is_recurrent(&self) -> bool {
        // the pattern is the file's; where it reads recurrent sources is checked by `validate`
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elmlab_core::rng::stream;
    use npyz::WriterBuilder;

    fn npy(path: &Path, shape: &[u64], values: &[i64]) {
        let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(std::fs::File::create(path).unwrap()).begin_nd().unwrap();
        w.extend(values.iter().copied()).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn reads_npy_and_safetensors_and_wires_exactly_what_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.npy");
        npy(&p, &[2, 3], &[0, 4, 4, 5, 1, 2]);
        let f = FromFile::read(&p, "ignored").unwrap();
        assert_eq!(f.fan_in(99, 4, 2), 3);
        let c = f.wire(WiringShape { units: 2, input_width: 4, fan_in: 3 }, &mut stream(0, "w", 0)).unwrap();
        assert_eq!(c.indices, vec![vec![0, 4, 4], vec![5, 1, 2]]);
        // the same through safetensors, by name
        let data: Vec<u8> = [0i64, 4, 4, 5, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![2, 3], &data).unwrap();
        let bytes = safetensors::tensor::serialize([("layer.connectome", view)], &None).unwrap();
        let s = dir.path().join("w.safetensors");
        std::fs::write(&s, bytes).unwrap();
        assert_eq!(FromFile::read(&s, "layer.connectome").unwrap().indices, c.indices);
        let e = FromFile::read(&s, "hidden.connectome").unwrap_err().to_string();
        assert!(e.contains("no tensor `hidden.connectome`") && e.contains("layer.connectome"), "{e}");
    }

    #[test]
    fn refuses_what_cannot_be_a_connectome_with_the_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.npy");
        npy(&p, &[2, 2], &[0, -1, 2, 3]);
        let e = FromFile::read(&p, "").unwrap_err().to_string();
        assert!(e.contains("entry [0, 1] of the connectome is -1"), "{e}");
        npy(&p, &[2, 2], &[0, 1, 2, 9]);
        let f = FromFile::read(&p, "").unwrap();
        let e = f.wire(WiringShape { units: 2, input_width: 3, fan_in: 2 }, &mut stream(0, "w", 0)).unwrap_err().to_string();
        assert!(e.contains("reads source 9, but there are only 5"), "{e}");
        let e = f.wire(WiringShape { units: 3, input_width: 3, fan_in: 2 }, &mut stream(0, "w", 0)).unwrap_err().to_string();
        assert!(e.contains("has 2 rows; the layer has 3 units"), "{e}");
        std::fs::write(&p, b"not a tensor").unwrap();
        assert!(FromFile::read(&p, "x").unwrap_err().to_string().contains("not a readable safetensors file"));
        assert!(FromFile::read(&dir.path().join("missing.npy"), "x").unwrap_err().to_string().contains("cannot read"));
        elmlab_core::conformance::check_entry_fields(&ConnectivityEntry::of::<FromFileSettings>());
    }
}
