// Shared by the build scripts of every crate whose binaries, tests or benches link libtorch
// (included with `include!`). torch-sys's own rpath reaches only its C++ wrapper, and the linker's
// `--as-needed` drops libtorch_cuda.so because no symbol of ours names it, which turns CUDA off
// silently. So every linking crate adds, for its own targets:
//   * an rpath to the libtorch that torch-sys built against (no LD_LIBRARY_PATH needed), and
//   * `--no-as-needed -ltorch`, which keeps libtorch (and through it libtorch_cuda) linked.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report DEP_TCH_LIBTORCH_LIB; is torch-sys a direct dependency?");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
}
