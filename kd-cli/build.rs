include!("../build/link_torch.rs");
