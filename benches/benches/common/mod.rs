//! What the libtorch benches share: their start-up, the `KD_BENCH_PAIRS` list and the
//! `KD_BENCH_FORMAT` layout.

/// Sets libtorch up as kd-engine does at start-up, with `KD_BENCH_THREADS` intra-op threads
/// (default 2) and seed 0; returns the thread count.
#[allow(
    dead_code,
    reason = "the epoch bench sets threads through its run config"
)]
pub fn init_torch() -> i32 {
    let threads = std::env::var("KD_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    kd_core::runtime::keep_freed_memory();
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    threads
}

/// The teacher → student pairs to run, from `KD_BENCH_PAIRS` (`teacher:student`, separated by
/// commas) or `default`.
#[allow(dead_code, reason = "not every bench runs pairs")]
pub fn pairs(default: &str) -> Vec<(String, String)> {
    let list = std::env::var("KD_BENCH_PAIRS").unwrap_or_else(|_| default.to_string());
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (t, s) = pair
                .split_once(':')
                .unwrap_or_else(|| panic!("KD_BENCH_PAIRS: '{pair}' is not teacher:student"));
            (t.trim().to_string(), s.trim().to_string())
        })
        .collect()
}

/// The layout the CPU benches run in: `KD_BENCH_FORMAT`, as `run.memory_format` takes it
/// (default `auto`: channels-last on the CPU).
#[allow(dead_code, reason = "not every bench lays tensors out")]
pub fn format() -> kd_core::runtime::MemoryFormat {
    let text = std::env::var("KD_BENCH_FORMAT").unwrap_or_else(|_| "auto".into());
    kd_core::runtime::MemoryFormat::parse(&text, tch::Device::Cpu)
        .unwrap_or_else(|why| panic!("KD_BENCH_FORMAT: {why}"))
}
