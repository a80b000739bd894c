//! The `kd` command.

fn main() {
    let info = kd_core::runtime::RuntimeInfo::query();
    println!("{info:?}");
}
