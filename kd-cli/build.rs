include!("../build/link_torch.rs");

// Only the engine binary links libtorch. `kd` itself stays free of it, so the data commands work
// before libtorch is installed and `kd doctor` can explain a libtorch that does not load instead
// of dying in the dynamic loader.
fn main() {
    for arg in torch_link_args() {
        println!("cargo:rustc-link-arg-bin=kd-engine={arg}");
    }
    // The tests break a copy of the engine's rpath to check what `kd doctor` says then.
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    println!("cargo:rustc-env=KD_BUILD_LIBTORCH_LIB={lib}");
}
