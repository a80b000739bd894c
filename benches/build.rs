include!("../build/link_torch.rs");

// The model benches link libtorch; the data and augmentation benches do not need it, but one
// build script serves the package.
fn main() {
    for arg in torch_link_args() {
        println!("cargo:rustc-link-arg-benches={arg}");
    }
}
