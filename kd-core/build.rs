include!("../build/link_torch.rs");

// Every target of kd-core (its tests, benches, examples) links libtorch.
fn main() {
    for arg in torch_link_args() {
        println!("cargo:rustc-link-arg={arg}");
    }
}
