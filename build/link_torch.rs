// Shared by the build scripts of the crates whose binaries, tests or benches link libtorch
// (included with `include!`). torch-sys's own rpath reaches only its C++ wrapper, and the linker's
// `--as-needed` drops libtorch_cuda.so because no symbol of ours names it, which turns CUDA off
// silently. So each linking target gets:
//   * an rpath to the libtorch that torch-sys built against (no LD_LIBRARY_PATH needed), and
//   * `--no-as-needed -ltorch`, which keeps libtorch (and through it libtorch_cuda) linked.

/// The linker arguments, for the directory torch-sys reports.
fn torch_link_args() -> Vec<String> {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report DEP_TCH_LIBTORCH_LIB; is torch-sys a direct dependency?");
    vec![
        format!("-Wl,-rpath,{lib}"),
        "-Wl,--no-as-needed".to_string(),
        "-ltorch".to_string(),
        "-Wl,--as-needed".to_string(),
    ]
}
