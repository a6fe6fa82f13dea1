//! Compiles the kernels: as host C++ for the tests (`host-shim`), to PTX for a CUDA build
//! (`cuda`; nvcc from CUDA_ROOT or PATH, the target from CUDA_COMPUTE_CAP as dfdx's own
//! build reads it).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNELS: &[&str] = &["kernels/portable.h", "kernels/elm.cu", "kernels/lstm.cu", "kernels/host.cpp"];
/// The kernels compiled to PTX, one module each.
const MODULES: &[&str] = &["elm", "lstm"];

fn main() {
    for k in KERNELS {
        println!("cargo:rerun-if-changed={k}");
    }
    for var in ["CUDA_ROOT", "CUDA_COMPUTE_CAP", "PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_HOST_SHIM").is_some() {
        cc::Build::new().cpp(true).file("kernels/host.cpp").flag_if_supported("-std=c++17").opt_level(2).warnings(true).compile("elm_host_shim");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_some() {
        ptx();
    }
}

fn ptx() {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    println!("cargo:rustc-env=ELMLAB_PTX_COMPUTE_CAP={cap}");
    let nvcc = env::var_os("CUDA_ROOT").map(|r| Path::new(&r).join("bin/nvcc")).filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("nvcc"));
    for module in MODULES {
        let out = out_dir.join(format!("{module}.ptx"));
        let source = format!("kernels/{module}.cu");
        let status = Command::new(&nvcc).args(["--ptx", "-O3", &format!("-arch=compute_{cap}"), "-o"]).arg(&out).arg(&source).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{} failed on {source} ({s})", nvcc.display()),
            Err(e) => {
                // No nvcc: a type-check (`--features cuda,dfdx/ci-check`, which skips dfdx's
                // own nvcc step too). A real build without nvcc stops at dfdx's build script; the
                // empty PTX is refused at run time, naming scripts/build-cuda.sh.
                println!("cargo:warning=cannot run {} ({e}): the CUDA kernels get no PTX (fine for a type-check; build with scripts/build-cuda.sh)", nvcc.display());
                std::fs::write(&out, "").expect("writing the empty PTX");
            }
        }
    }
}
