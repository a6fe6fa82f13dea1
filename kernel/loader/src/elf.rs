//! Just enough of ELF64 (little-endian) to find a symbol's address in a shared library's
//! symbol tables, including local symbols that the dynamic linker does not export.
//! Every read is bounds-checked: a damaged file gives an error, never a panic.

/// A symbol as the file declares it; `value` is relative to the library's load address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub value: u64,
    pub size: u64,
}

const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;

fn bytes<const N: usize>(data: &[u8], at: u64) -> Result<[u8; N], String> {
    let at = usize::try_from(at).map_err(|_| "offset out of range".to_string())?;
    data.get(at..at.checked_add(N).ok_or("offset out of range")?)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("truncated ELF file (reading {N} bytes at {at})"))
}
fn u16_at(data: &[u8], at: u64) -> Result<u16, String> {
    bytes::<2>(data, at).map(u16::from_le_bytes)
}
fn u32_at(data: &[u8], at: u64) -> Result<u32, String> {
    bytes::<4>(data, at).map(u32::from_le_bytes)
}
fn u64_at(data: &[u8], at: u64) -> Result<u64, String> {
    bytes::<8>(data, at).map(u64::from_le_bytes)
}

/// `base + index·stride + field`, refusing what does not fit in 64 bits (a damaged header
/// can put a table at the end of the address space).
fn offset(base: u64, index: u64, stride: u64, field: u64) -> Result<u64, String> {
    index.checked_mul(stride).and_then(|o| o.checked_add(base)).and_then(|o| o.checked_add(field)).ok_or_else(|| "offset out of range".to_string())
}

struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
    entry_size: u64,
}

/// Symbols of the static (`.symtab`) and dynamic (`.dynsym`) tables whose names satisfy `keep`.
pub fn symbols(data: &[u8], keep: impl Fn(&str) -> bool) -> Result<Vec<Symbol>, String> {
    if data.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let table_at = u64_at(data, 0x28)?;
    let header_size = u64::from(u16_at(data, 0x3a)?);
    let count = u64::from(u16_at(data, 0x3c)?);
    let sections: Vec<Section> = (0..count)
        .map(|i| {
            let field = |f: u64| offset(table_at, i, header_size, f);
            Ok(Section { kind: u32_at(data, field(4)?)?, offset: u64_at(data, field(24)?)?, size: u64_at(data, field(32)?)?, link: u32_at(data, field(40)?)?, entry_size: u64_at(data, field(56)?)? })
        })
        .collect::<Result<_, String>>()?;
    let mut found = Vec::new();
    for table in sections.iter().filter(|s| s.kind == SHT_SYMTAB || s.kind == SHT_DYNSYM) {
        let names = sections.get(table.link as usize).ok_or("symbol table links to a missing string table")?;
        if table.entry_size < 24 {
            return Err("symbol entries shorter than 24 bytes".into());
        }
        for i in 0..table.size / table.entry_size {
            let at = offset(table.offset, i, table.entry_size, 0)?;
            let name_at = u64::from(u32_at(data, at)?);
            if name_at >= names.size {
                return Err("symbol name outside its string table".into());
            }
            let start = usize::try_from(offset(names.offset, 0, 0, name_at)?).map_err(|_| "offset out of range")?;
            let end = data.get(start..).and_then(|rest| rest.iter().position(|&b| b == 0)).ok_or("unterminated symbol name")?;
            let name = String::from_utf8_lossy(&data[start..start + end]);
            if keep(&name) {
                found.push(Symbol { name: name.into_owned(), value: u64_at(data, offset(at, 0, 0, 8)?)?, size: u64_at(data, offset(at, 0, 0, 16)?)? });
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_elf_without_panicking() {
        assert_eq!(symbols(b"hello", |_| true), Err("not an ELF file".into()));
        let mut truncated = b"\x7fELF\x02\x01".to_vec();
        truncated.resize(0x30, 0);
        assert!(symbols(&truncated, |_| true).unwrap_err().contains("truncated"));
        // Every prefix of a real library is refused or read, never a panic.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for cut in [0x40, 0x1000, exe.len() / 2] {
            let _ = symbols(&exe[..cut], |_| true);
        }
    }

    #[test]
    fn finds_a_function_of_this_test_binary_at_its_real_address() {
        // The distance between two functions in the file equals their distance in memory.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let wanted = |n: &str| n.contains("6record10own_record17h") || n.contains("6record10own_fields17h");
        let found = symbols(&exe, wanted).unwrap();
        let of = |part: &str| found.iter().find(|s| s.name.contains(part)).unwrap_or_else(|| panic!("{part} not in {found:?}")).value;
        let in_file = of("own_record") as i64 - of("own_fields") as i64;
        let in_memory = elmlab_core::plugin::record::own_record as *const () as i64 - elmlab_core::plugin::record::own_fields as *const () as i64;
        assert_eq!(in_file, in_memory);
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// Offsets and sizes near u64::MAX in the header: refused, not an overflow panic
    /// (found while writing tests/fuzz.rs's ELF target).
    #[test]
    fn offsets_at_the_end_of_the_address_space_are_refused() {
        let seed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fuzz/corpus/elf/tiny.so")).unwrap();
        assert!(symbols(&seed, |_| true).unwrap().iter().any(|s| s.name == "elmlab_entry_point"));
        for (at, value) in [(0x28usize, u64::MAX), (0x28, u64::MAX - 3), (0x28, 1 << 63)] {
            let mut data = seed.clone();
            data[at..at + 8].copy_from_slice(&value.to_le_bytes());
            assert!(symbols(&data, |_| true).is_err());
        }
        // a section's offset and size
        let table_at = u64::from_le_bytes(seed[0x28..0x30].try_into().unwrap()) as usize;
        let header_size = u16::from_le_bytes(seed[0x3a..0x3c].try_into().unwrap()) as usize;
        for section in 0..u16::from_le_bytes(seed[0x3c..0x3e].try_into().unwrap()) as usize {
            for field in [24, 32, 56] {
                let mut data = seed.clone();
                let at = table_at + section * header_size + field;
                data[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
                let _ = symbols(&data, |_| true);
            }
        }
    }
}
