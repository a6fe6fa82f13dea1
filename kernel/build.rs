// Records the compiler version: summaries report it, and runtime plugins must match it.
fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ELMLAB_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-changed=build.rs");
}
