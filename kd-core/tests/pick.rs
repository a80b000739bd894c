//! CutMixPick's choice of rows: the highest-entropy ones, ties by lower index, the whole pool
//! when it is no larger than the number asked for.

use kd_core::train::objective::pick_highest_entropy;
use tch::Tensor;

/// The softmax entropy of a row, in f64: the obviously correct reference.
fn entropy(row: &[f32]) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &z| m.max(z as f64));
    let exp: Vec<f64> = row.iter().map(|&z| (z as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    -exp.iter()
        .map(|e| e / sum)
        .map(|p| if p == 0.0 { 0.0 } else { p * p.ln() })
        .sum::<f64>()
}

/// Rows sorted by descending entropy, ties by index, first `n`.
fn reference(rows: &[Vec<f32>], n: usize) -> Vec<usize> {
    let h: Vec<f64> = rows.iter().map(|r| entropy(r)).collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| h[b].partial_cmp(&h[a]).unwrap().then(a.cmp(&b)));
    order.truncate(n);
    order
}

fn tensor(rows: &[Vec<f32>]) -> Tensor {
    let flat: Vec<f32> = rows.concat();
    Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
}

/// Eight rows of five classes with known entropies: two uniform rows (the maximum, ln 5, an
/// exact tie), rows with one logit raised by 0.5, 1, 2, 5, 10 and 20 (entropy falling as it rises).
fn pool() -> Vec<Vec<f32>> {
    let peak = |z: f32| vec![z, 0.0, 0.0, 0.0, 0.0];
    vec![
        peak(10.0),                    // 0: nearly one-hot
        vec![0.0; 5],                  // 1: uniform
        peak(2.0),                     // 2
        vec![0.0; 5],                  // 3: uniform, exactly row 1's entropy
        peak(20.0),                    // 4: the lowest
        peak(1.0),                     // 5
        peak(5.0),                     // 6
        vec![0.0, 0.5, 0.0, 0.0, 0.0], // 7: the highest after the uniform rows
    ]
}

#[test]
fn keeps_the_highest_entropy_rows_ties_by_lower_index() {
    let rows = pool();
    let picked = pick_highest_entropy(&tensor(&rows), 4);
    assert_eq!(picked, vec![1, 3, 7, 5]);
    assert_eq!(picked, reference(&rows, 4));
    assert_eq!(pick_highest_entropy(&tensor(&rows), 1), vec![1]);
    assert_eq!(pick_highest_entropy(&tensor(&rows), 0), Vec::<usize>::new());
}

#[test]
fn keeps_the_whole_pool_when_n_is_at_least_its_size() {
    // The reference's short last batch: a pool of 2 × 16 rows and n_pick = 64 keeps all 32.
    let rows = pool();
    for n in [8, 9, 64] {
        let picked = pick_highest_entropy(&tensor(&rows), n);
        assert_eq!(picked, vec![1, 3, 7, 5, 2, 6, 0, 4], "n = {n}");
    }
}

#[test]
fn agrees_with_the_reference_on_random_pools() {
    tch::manual_seed(7);
    for (m, n) in [(128, 64), (32, 64), (100, 37)] {
        let logits = Tensor::randn([m, 10], (tch::Kind::Float, tch::Device::Cpu)) * 3.0;
        let flat: Vec<f32> = Vec::try_from(logits.view([-1])).unwrap();
        let rows: Vec<Vec<f32>> = flat.chunks(10).map(|c| c.to_vec()).collect();
        let picked = pick_highest_entropy(&logits, n);
        assert_eq!(picked, reference(&rows, n), "pool {m}, n {n}");
        // The kept half is the high-entropy half.
        let h: Vec<f64> = rows.iter().map(|r| entropy(r)).collect();
        let kept_min = picked.iter().map(|&r| h[r]).fold(f64::INFINITY, f64::min);
        let dropped_max = (0..m as usize)
            .filter(|r| !picked.contains(r))
            .map(|r| h[r])
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(kept_min >= dropped_max, "pool {m}, n {n}");
    }
}
