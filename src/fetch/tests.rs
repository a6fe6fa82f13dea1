//! Downloads from a local server: a correct file, a truncated one, one with the wrong
//! checksum, a connection dropped half way (continued), a partial file from an earlier run
//! (continued), and the command over the real catalogue with a mirror serving wrong bytes.

use super::catalog::Digest;
use super::download::{fetch, partial_path, rejected_path, Expected, Quiet};
use super::test_server::{serve, Served};
use std::collections::HashMap;

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn md5_hex(bytes: &[u8]) -> &'static str {
    use md5::Digest as _;
    let hex: String = md5::Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    Box::leak(hex.into_boxed_str())
}

fn expected(bytes: &[u8]) -> Expected {
    Expected { size: Some(bytes.len() as u64), digest: Digest::Md5(md5_hex(bytes)), source: "the test".into() }
}

fn one(name: &str, served: Served) -> super::test_server::Server {
    serve(HashMap::from([(name.to_string(), served)]))
}

#[test]
fn a_correct_file_arrives_under_its_name() {
    let data = content(300_000);
    let server = one("f.bin", Served { bytes: data.clone(), drop_first_after: None });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub/f.bin");
    fetch(&format!("{}f.bin", server.base), &dest, &expected(&data), &mut Quiet).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!partial_path(&dest).exists());
    // a second fetch checks the file and asks the server nothing
    fetch(&format!("{}f.bin", server.base), &dest, &expected(&data), &mut Quiet).unwrap();
    assert_eq!(server.requests.lock().unwrap().len(), 1);
    // SHA-256 is checked the same way (the standard check value of "abc")
    let abc = dir.path().join("abc");
    std::fs::write(&abc, b"abc").unwrap();
    let sha = Digest::Sha256("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    super::download::verify(&abc, &Expected { size: Some(3), digest: sha, source: "FIPS 180-2".into() }).unwrap();
}

#[test]
fn a_truncated_file_is_refused_and_kept() {
    let data = content(100_000);
    let server = one("f.bin", Served { bytes: data[..60_000].to_vec(), drop_first_after: None });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let err = format!("{:#}", fetch(&format!("{}f.bin", server.base), &dest, &expected(&data), &mut Quiet).unwrap_err());
    assert!(err.contains("it has 60000 bytes, the published file 100000"), "{err}");
    assert!(!dest.exists());
    assert_eq!(std::fs::read(rejected_path(&dest)).unwrap(), &data[..60_000]);
}

#[test]
fn a_wrong_checksum_is_named_and_the_file_kept() {
    let data = content(50_000);
    let mut other = data.clone();
    other[777] ^= 0x20;
    let server = one("f.bin", Served { bytes: other.clone(), drop_first_after: None });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let err = format!("{:#}", fetch(&format!("{}f.bin", server.base), &dest, &expected(&data), &mut Quiet).unwrap_err());
    assert!(err.contains(&format!("its MD5 is {}, the published one {}", md5_hex(&other), md5_hex(&data))), "{err}");
    assert!(err.contains("f.bin.rejected"), "{err}");
    assert_eq!(std::fs::read(rejected_path(&dest)).unwrap(), other);
    // a file already at the destination that does not verify is left alone
    std::fs::write(&dest, b"mine").unwrap();
    let err = format!("{:#}", fetch(&format!("{}f.bin", server.base), &dest, &expected(&data), &mut Quiet).unwrap_err());
    assert!(err.contains("already there but is not the published file"), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"mine");
}

#[test]
fn a_connection_dropped_half_way_is_continued_with_a_range_request() {
    let data = content(400_000);
    let server = one("f.bin", Served { bytes: data.clone(), drop_first_after: Some(150_000) });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    fetch(&format!("{}f.bin", server.base), &dest, &expected(&data), &mut Quiet).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests, vec![("f.bin".to_string(), None), ("f.bin".to_string(), Some("bytes=150000-".to_string()))]);
}

#[test]
fn a_partial_file_from_an_earlier_run_is_continued() {
    let data = content(200_000);
    let server = one("f.bin", Served { bytes: data.clone(), drop_first_after: None });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    std::fs::write(partial_path(&dest), &data[..70_000]).unwrap();
    fetch(&format!("{}f.bin", server.base), &dest, &expected(&data), &mut Quiet).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(server.requests.lock().unwrap()[0].1.as_deref(), Some("bytes=70000-"));
}

#[test]
fn the_command_checks_against_the_published_checksums_and_lists_the_datasets() {
    let wrong = Served { bytes: content(1000), drop_first_after: None };
    let server = serve(HashMap::from([("shd_train.h5.gz".to_string(), wrong.clone()), ("shd_test.h5.gz".to_string(), wrong)]));
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", super::run("shd", Some(dir.path()), Some(&server.base)).unwrap_err());
    assert!(err.contains("the published one d47c9825dee33347913e8ce0f2be08b0") && err.contains("norse"), "{err}");
    assert!(dir.path().join("shd_train.h5.gz.rejected").is_file() && !dir.path().join("shd_train.h5.gz").exists());
    let err = format!("{:#}", super::run("mnist", None, None).unwrap_err());
    assert!(err.contains("shd, enwik8"), "{err}");
}
