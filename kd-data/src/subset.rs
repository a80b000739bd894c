//! Subsets of a training set: the δ (classes kept) and ζ (samples kept per class) selections of
//! "When does KD help? A study of data amount" (kd_data), at random or by a per-sample score.
//!
//! A selection keeps a half-open quantile range `[lower, upper)` of a list; its width
//! `upper − lower` is the fraction kept, so δ ≡ `cls_upper_qnt − cls_lower_qnt` and
//! ζ ≡ `sample_upper_qnt − sample_lower_qnt`, as in kd_data's flags.
//!
//! * [`Pick::Random`] only uses the width. It holds out `int(round(n·(1 − width), 2))` of `n`
//!   items and keeps the rest. The rounding matters: kd_data's first version computed
//!   `int(100·(1 − 0.9)) = int(9.999…) = 9` and so kept 91 classes for δ = 0.9; its later version
//!   rounds to two decimals first, and so do we: δ = 0.9 keeps exactly 90 of 100 classes.
//! * [`Pick::ByScore`] sorts ascending by a caller-supplied score (the teacher's entropy or TLD)
//!   and keeps the sorted positions `[int(n·lower) : int(n·upper)]`. The same two-decimal
//!   rounding is applied to `n·lower` and `n·upper` (kd_data does not round here; it only differs
//!   where a product lands a hair below an integer, e.g. `100·0.29 = 28.999…`).
//! * [`Scope::PerClass`] selects classes first, then samples inside each kept class (kd_data's
//!   `--per_class`); [`Scope::Global`] selects among all samples, classes ignored (so the classes
//!   are not balanced).
//!
//! The held-out samples (the complement) are what kd_data evaluates as its "valid" split.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use kd_augment::rng::{Rng, domain};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The selection seed kd_data uses for every split (`random.seed(2020)`, whatever the run seed).
///
/// Only the number is shared: kd_data draws with Python's Mersenne Twister and we draw with our
/// own [`Rng`], so the same seed does not select the same samples. To reproduce kd_data's exact
/// split, load its saved `{class_id: [indices]}` file with [`Subset::load`].
pub const REFERENCE_SEED: u64 = 2020;

// Sub-streams of the SUBSET domain. Each class draws its samples from its own stream so that the
// samples kept in a class do not depend on which other classes were kept.
const CLASS_STREAM: u64 = 0;
const SAMPLE_STREAM: u64 = 1;
const GLOBAL_STREAM: u64 = 2;

/// A half-open quantile range `[lower, upper)` of a sorted list; `upper − lower` is the fraction
/// kept.
///
/// In a config it is written either as a number `f` (the fraction, meaning `[0, f)`) or as a
/// table `{ lower = …, upper = … }`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "QuantilesRepr")]
pub struct Quantiles {
    /// Lower quantile, in [0, 1).
    pub lower: f64,
    /// Upper quantile, in (lower, 1].
    pub upper: f64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum QuantilesRepr {
    Fraction(f64),
    Range(QuantilesRange),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantilesRange {
    lower: f64,
    upper: f64,
}

impl From<QuantilesRepr> for Quantiles {
    fn from(r: QuantilesRepr) -> Self {
        match r {
            QuantilesRepr::Fraction(f) => Quantiles::fraction(f),
            QuantilesRepr::Range(QuantilesRange { lower, upper }) => Quantiles::range(lower, upper),
        }
    }
}

impl Quantiles {
    /// Everything: `[0, 1)`.
    pub const ALL: Quantiles = Quantiles {
        lower: 0.0,
        upper: 1.0,
    };

    /// The fraction `f` from the bottom: `[0, f)`.
    pub const fn fraction(f: f64) -> Self {
        Quantiles {
            lower: 0.0,
            upper: f,
        }
    }

    /// The range `[lower, upper)`.
    pub const fn range(lower: f64, upper: f64) -> Self {
        Quantiles { lower, upper }
    }

    /// The fraction kept, `upper − lower` (δ or ζ).
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }

    /// Whether the range keeps everything.
    pub fn is_all(&self) -> bool {
        self.lower == 0.0 && self.upper == 1.0
    }

    /// Checks `0 ≤ lower < upper ≤ 1`; `name` is how the user knows the parameter (`δ (classes)`).
    pub fn validate(&self, name: &str) -> Result<()> {
        let unit = 0.0..=1.0;
        if self.lower == 0.0 && !(self.upper > 0.0 && self.upper <= 1.0) {
            return Err(DataError::invalid(
                name,
                self.upper,
                "a fraction must be in (0, 1]",
            ));
        }
        if !unit.contains(&self.lower) {
            return Err(DataError::invalid(
                format!("{name} lower quantile"),
                self.lower,
                "must be in [0, 1]",
            ));
        }
        if !unit.contains(&self.upper) {
            return Err(DataError::invalid(
                format!("{name} upper quantile"),
                self.upper,
                "must be in [0, 1]",
            ));
        }
        if self.lower >= self.upper {
            return Err(DataError::invalid(
                name,
                self,
                "the lower quantile must be below the upper one (the fraction upper − lower must be in (0, 1])",
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {})", self.lower, self.upper)
    }
}

/// A class named in an explicit class list: by label index or by class name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassRef {
    /// A label index.
    Index(usize),
    /// A class name, as in [`Dataset::classes`].
    Name(String),
}

impl std::fmt::Display for ClassRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClassRef::Index(i) => write!(f, "{i}"),
            ClassRef::Name(n) => write!(f, "{n:?}"),
        }
    }
}

/// Which classes a per-class selection keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassSelection {
    /// A quantile range of the classes (δ = its width), picked as [`SubsetSpec::pick`] says.
    Quantiles(Quantiles),
    /// Exactly these classes (an ImageNet-100-style list), whatever the pick.
    List(Vec<ClassRef>),
}

impl Default for ClassSelection {
    fn default() -> Self {
        ClassSelection::Quantiles(Quantiles::ALL)
    }
}

/// How the kept items are chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pick {
    /// Uniformly at random from our seeded [`Rng`]; only the widths of the ranges matter.
    Random {
        /// Selection seed; independent of the run seed, as in kd_data.
        seed: u64,
    },
    /// By a per-sample score supplied to [`Subset::select`], sorted ascending: classes by their
    /// mean score, samples by their own. Ties keep dataset (or class) index order.
    ByScore,
}

/// Whether samples are selected inside each kept class or among all samples at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Classes first, then samples within each kept class (kd_data's `--per_class`).
    #[default]
    PerClass,
    /// One selection over all samples; the class selection must keep all classes.
    Global,
}

/// What to select: the config form of a subset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubsetSpec {
    /// The classes kept (δ); per-class scope only.
    pub classes: ClassSelection,
    /// The samples kept per kept class (ζ), or among all samples with [`Scope::Global`].
    pub samples: Quantiles,
    /// How items are chosen.
    pub pick: Pick,
    /// Per class or global.
    pub scope: Scope,
}

impl Default for SubsetSpec {
    /// Everything, at random with [`REFERENCE_SEED`], per class.
    fn default() -> Self {
        SubsetSpec {
            classes: ClassSelection::default(),
            samples: Quantiles::ALL,
            pick: Pick::Random {
                seed: REFERENCE_SEED,
            },
            scope: Scope::PerClass,
        }
    }
}

impl SubsetSpec {
    /// A random per-class selection keeping the fraction `delta` of the classes and `zeta` of
    /// the samples of each kept class.
    pub fn random(delta: f64, zeta: f64, seed: u64) -> Self {
        SubsetSpec {
            classes: ClassSelection::Quantiles(Quantiles::fraction(delta)),
            samples: Quantiles::fraction(zeta),
            pick: Pick::Random { seed },
            scope: Scope::PerClass,
        }
    }

    /// A per-class selection by score: the class quantile range of classes sorted by mean score,
    /// then the sample quantile range of each kept class sorted by score.
    pub fn by_score(classes: Quantiles, samples: Quantiles) -> Self {
        SubsetSpec {
            classes: ClassSelection::Quantiles(classes),
            samples,
            pick: Pick::ByScore,
            scope: Scope::PerClass,
        }
    }

    /// The same selection with another scope.
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// The same selection keeping exactly the listed classes.
    pub fn with_class_list(mut self, classes: Vec<ClassRef>) -> Self {
        self.classes = ClassSelection::List(classes);
        self
    }

    /// Checks the ranges; class names and indices are checked against a dataset by
    /// [`Subset::select`].
    pub fn validate(&self) -> Result<()> {
        self.samples.validate("ζ (samples)")?;
        match (&self.classes, self.scope) {
            (ClassSelection::Quantiles(q), Scope::PerClass) => q.validate("δ (classes)"),
            (ClassSelection::Quantiles(q), Scope::Global) if q.is_all() => Ok(()),
            (ClassSelection::List(list), Scope::PerClass) if list.is_empty() => {
                Err(DataError::invalid(
                    "classes",
                    "[]",
                    "an explicit class list must name at least one class",
                ))
            }
            (ClassSelection::List(_), Scope::PerClass) => Ok(()),
            (classes, Scope::Global) => Err(DataError::invalid(
                "classes",
                describe_classes(classes),
                "a global selection ignores classes; use scope = per_class to select classes",
            )),
        }
    }
}

fn describe_classes(classes: &ClassSelection) -> String {
    match classes {
        ClassSelection::Quantiles(q) => q.to_string(),
        ClassSelection::List(list) => {
            format!(
                "[{}]",
                list.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// A list of sample indices of one dataset, with what it was selected by.
///
/// Selections produce ascending indices; [`Subset::from_indices`] and [`Subset::load`] keep the
/// order they are given. Indices are unique and inside the dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Subset {
    dataset: String,
    num_samples: usize,
    description: String,
    spec: Option<SubsetSpec>,
    indices: Vec<usize>,
    by_class: BTreeMap<u32, Vec<usize>>,
}

/// The file written by [`Subset::save`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubsetFile {
    dataset: String,
    num_samples: usize,
    description: String,
    spec: Option<SubsetSpec>,
    indices: Vec<usize>,
    /// kd_data's `{class_id: [indices]}` view of the same samples.
    by_class: BTreeMap<u32, Vec<usize>>,
}

/// What is wrong with an index list.
enum IndexProblem {
    OutOfRange { position: usize, index: usize },
    Duplicate { index: usize },
}

impl IndexProblem {
    fn describe(&self, num_samples: usize) -> String {
        match self {
            IndexProblem::OutOfRange { position, index } => {
                format!("index {index} (position {position}) is outside 0..{num_samples}")
            }
            IndexProblem::Duplicate { index } => format!("index {index} appears more than once"),
        }
    }
}

fn check_indices(indices: &[usize], num_samples: usize) -> std::result::Result<(), IndexProblem> {
    let mut seen = vec![false; num_samples];
    for (position, &index) in indices.iter().enumerate() {
        let slot = seen
            .get_mut(index)
            .ok_or(IndexProblem::OutOfRange { position, index })?;
        if std::mem::replace(slot, true) {
            return Err(IndexProblem::Duplicate { index });
        }
    }
    Ok(())
}

/// Python's `int(round(x, 2))` for x ≥ 0: the two-decimal rounding absorbs float error such as
/// `100·(1 − 0.9) = 9.999…`. (Python rounds the exact binary value half to even; we round the
/// product half away from zero. They differ only on exact ties at the third decimal, which
/// `n·fraction` with a two-decimal fraction does not produce.)
fn floor_2dp(x: f64) -> usize {
    ((x * 100.0).round() / 100.0).floor().max(0.0) as usize
}

/// How the items of one selection step are ordered before a range of them is kept.
enum Order<'a> {
    /// A random order; only the width of the range is used.
    Random(Rng),
    /// Ascending by `key[item]`, ties by item.
    Ascending(&'a [f64]),
}

/// Keeps the part of `items` that `range` names under `order`, in no particular order.
fn keep(items: &[usize], range: Quantiles, order: Order) -> Vec<usize> {
    let n = items.len();
    let mut v = items.to_vec();
    match order {
        Order::Random(mut rng) => {
            rng.shuffle(&mut v);
            let held_out = floor_2dp(n as f64 * (1.0 - range.width())).min(n);
            v.split_off(held_out)
        }
        Order::Ascending(key) => {
            v.sort_by(|&a, &b| key[a].total_cmp(&key[b]).then(a.cmp(&b)));
            let lo = floor_2dp(n as f64 * range.lower).min(n);
            let hi = floor_2dp(n as f64 * range.upper).min(n);
            v[lo..hi.max(lo)].to_vec()
        }
    }
}

/// The per-sample scores as `f64`, checked: one per sample, no NaN.
fn checked_scores(dataset: &Dataset, scores: Option<&[f32]>) -> Result<Vec<f64>> {
    let scores = scores.ok_or_else(|| {
        DataError::invalid(
            "scores",
            "none",
            "pick = by_score needs one score per sample (teacher entropy or TLD)",
        )
    })?;
    if scores.len() != dataset.len() {
        return Err(DataError::invalid(
            "scores",
            format!("{} values", scores.len()),
            format!(
                "{} has {} samples; one score per sample is needed",
                dataset.name(),
                dataset.len()
            ),
        ));
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(DataError::invalid(
            format!("score of sample {i}"),
            "NaN",
            "scores must be numbers",
        ));
    }
    Ok(scores.iter().map(|&s| s as f64).collect())
}

/// Mean score per class; a class without samples sorts last.
fn class_means(by_class: &[Vec<usize>], scores: &[f64]) -> Vec<f64> {
    by_class
        .iter()
        .map(|members| {
            if members.is_empty() {
                f64::INFINITY
            } else {
                members.iter().map(|&i| scores[i]).sum::<f64>() / members.len() as f64
            }
        })
        .collect()
}

/// Resolves an explicit class list to label indices, rejecting unknown names, out-of-range
/// indices and duplicates.
fn resolve_class_list(dataset: &Dataset, list: &[ClassRef]) -> Result<Vec<usize>> {
    let mut seen = vec![false; dataset.num_classes()];
    let mut out = Vec::with_capacity(list.len());
    for class in list {
        let c = match class {
            ClassRef::Index(i) if *i < dataset.num_classes() => *i,
            ClassRef::Index(i) => {
                return Err(DataError::invalid(
                    "classes",
                    i,
                    format!(
                        "outside 0..{} (the classes of {})",
                        dataset.num_classes(),
                        dataset.name()
                    ),
                ));
            }
            ClassRef::Name(name) => dataset
                .classes()
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| {
                    DataError::invalid(
                        "classes",
                        format!("{name:?}"),
                        format!("no such class in {}", dataset.name()),
                    )
                })?,
        };
        if std::mem::replace(&mut seen[c], true) {
            return Err(DataError::invalid(
                "classes",
                class,
                "listed more than once",
            ));
        }
        out.push(c);
    }
    Ok(out)
}

impl Subset {
    /// Selects the subset `spec` describes.
    ///
    /// `scores` (one per sample, e.g. the teacher's entropy or TLD) is required by
    /// [`Pick::ByScore`] and ignored by [`Pick::Random`]. The result is in ascending index order.
    pub fn select(dataset: &Dataset, spec: &SubsetSpec, scores: Option<&[f32]>) -> Result<Subset> {
        spec.validate()?;
        let picker = Picker::new(dataset, &spec.pick, scores)?;
        let mut indices = match spec.scope {
            Scope::PerClass => select_per_class(dataset, spec, &picker)?,
            Scope::Global => {
                let all: Vec<usize> = (0..dataset.len()).collect();
                keep(&all, spec.samples, picker.order(&[GLOBAL_STREAM]))
            }
        };
        indices.sort_unstable();
        let description = describe_selection(dataset, spec, &indices);
        Ok(Subset::build(
            dataset,
            indices,
            description,
            Some(spec.clone()),
        ))
    }

    /// Every sample of `dataset`.
    pub fn full(dataset: &Dataset) -> Subset {
        let description = format!("all {} samples of {}", dataset.len(), dataset.name());
        Subset::build(dataset, (0..dataset.len()).collect(), description, None)
    }

    /// An explicit index list (kept in its order); rejects indices outside the dataset and
    /// duplicates.
    pub fn from_indices(
        dataset: &Dataset,
        indices: Vec<usize>,
        description: impl Into<String>,
    ) -> Result<Subset> {
        if let Err(problem) = check_indices(&indices, dataset.len()) {
            return Err(DataError::invalid(
                "indices",
                format!("a list of {}", indices.len()),
                format!(
                    "{} (dataset {})",
                    problem.describe(dataset.len()),
                    dataset.name()
                ),
            ));
        }
        Ok(Subset::build(dataset, indices, description.into(), None))
    }

    fn build(
        dataset: &Dataset,
        indices: Vec<usize>,
        description: String,
        spec: Option<SubsetSpec>,
    ) -> Subset {
        let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for &i in &indices {
            by_class.entry(dataset.label(i)).or_default().push(i);
        }
        Subset {
            dataset: dataset.name().to_string(),
            num_samples: dataset.len(),
            description,
            spec,
            indices,
            by_class,
        }
    }

    /// The selected dataset indices.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Number of selected samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether nothing was selected.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The name of the dataset it was selected from.
    pub fn dataset_name(&self) -> &str {
        &self.dataset
    }

    /// The sample count of the dataset it was selected from.
    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// A one-line account of the selection, with the counts.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The spec it was selected by; `None` for explicit and loaded kd_data index lists.
    pub fn spec(&self) -> Option<&SubsetSpec> {
        self.spec.as_ref()
    }

    /// The selected indices grouped by label (kd_data's `{class_id: [indices]}`), only classes
    /// with at least one selected sample.
    pub fn by_class(&self) -> &BTreeMap<u32, Vec<usize>> {
        &self.by_class
    }

    /// The labels with at least one selected sample, ascending.
    pub fn classes(&self) -> Vec<u32> {
        self.by_class.keys().copied().collect()
    }

    /// The held-out samples, ascending: every dataset index not selected (kd_data's "valid"
    /// split: unseen classes and the samples held out of kept classes).
    pub fn complement(&self) -> Vec<usize> {
        let mut selected = vec![false; self.num_samples];
        for &i in &self.indices {
            selected[i] = true;
        }
        (0..self.num_samples).filter(|&i| !selected[i]).collect()
    }

    /// Writes the subset as JSON (`dataset`, `num_samples`, `description`, `spec`, `indices`,
    /// `by_class`), atomically: a temporary file beside `path`, then a rename.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let file = SubsetFile {
            dataset: self.dataset.clone(),
            num_samples: self.num_samples,
            description: self.description.clone(),
            spec: self.spec.clone(),
            indices: self.indices.clone(),
            by_class: self.by_class.clone(),
        };
        let mut json = serde_json::to_vec(&file)
            .map_err(|e| DataError::format(path.as_ref(), e.to_string()))?;
        json.push(b'\n');
        write_atomic(path.as_ref(), &json)
    }

    /// Reads a subset of `dataset` from a file written by [`Subset::save`], or from kd_data's
    /// `{class_id: [indices]}` split file (whose class ids must match the labels).
    ///
    /// Rejects indices outside the dataset, duplicates, a file made for a dataset of another
    /// size, and a per-class map that disagrees with the dataset's labels; every error names the
    /// file.
    pub fn load(path: impl AsRef<Path>, dataset: &Dataset) -> Result<Subset> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| DataError::format(path, format!("not JSON: {e}")))?;
        let is_ours = value.get("indices").is_some();
        let subset = if is_ours {
            let file: SubsetFile = serde_json::from_value(value)
                .map_err(|e| DataError::format(path, format!("not a kd subset file: {e}")))?;
            Subset::from_file(path, file, dataset)?
        } else {
            let by_class: BTreeMap<u32, Vec<usize>> = serde_json::from_value(value).map_err(|e| {
                DataError::format(
                    path,
                    format!("neither a kd subset file (no \"indices\") nor a kd_data {{class_id: [indices]}} map: {e}"),
                )
            })?;
            let indices: Vec<usize> = by_class.values().flatten().copied().collect();
            check_loaded_indices(path, &indices, dataset)?;
            check_labels(path, &by_class, dataset)?;
            let description = format!(
                "kd_data split {} ({} samples)",
                path.display(),
                indices.len()
            );
            Subset::build(dataset, indices, description, None)
        };
        Ok(subset)
    }

    fn from_file(path: &Path, file: SubsetFile, dataset: &Dataset) -> Result<Subset> {
        if file.num_samples != dataset.len() {
            return Err(DataError::format(
                path,
                format!(
                    "made for a dataset of {} samples ({}), but {} has {}",
                    file.num_samples,
                    file.dataset,
                    dataset.name(),
                    dataset.len()
                ),
            ));
        }
        check_loaded_indices(path, &file.indices, dataset)?;
        check_labels(path, &file.by_class, dataset)?;
        let subset = Subset::build(dataset, file.indices, file.description, file.spec);
        if subset.by_class != file.by_class {
            return Err(DataError::format(
                path,
                "\"by_class\" does not list the same samples as \"indices\"",
            ));
        }
        Ok(subset)
    }
}

fn check_loaded_indices(path: &Path, indices: &[usize], dataset: &Dataset) -> Result<()> {
    check_indices(indices, dataset.len()).map_err(|problem| {
        DataError::format(
            path,
            format!(
                "{} (dataset {})",
                problem.describe(dataset.len()),
                dataset.name()
            ),
        )
    })
}

/// Every index listed under class `c` must have label `c` in `dataset`: catches a split file
/// made for another dataset of the same size.
fn check_labels(
    path: &Path,
    by_class: &BTreeMap<u32, Vec<usize>>,
    dataset: &Dataset,
) -> Result<()> {
    for (&class, members) in by_class {
        if let Some(&i) = members.iter().find(|&&i| i >= dataset.len()) {
            return Err(DataError::format(
                path,
                format!(
                    "sample {i} listed under class {class} is outside 0..{}",
                    dataset.len()
                ),
            ));
        }
        if let Some(&i) = members.iter().find(|&&i| dataset.label(i) != class) {
            return Err(DataError::format(
                path,
                format!(
                    "sample {i} is listed under class {class} but has label {} in {}",
                    dataset.label(i),
                    dataset.name()
                ),
            ));
        }
    }
    Ok(())
}

/// A [`Pick`] with its scores checked and at hand.
enum Picker {
    Random { seed: u64 },
    ByScore { scores: Vec<f64> },
}

impl Picker {
    fn new(dataset: &Dataset, pick: &Pick, scores: Option<&[f32]>) -> Result<Picker> {
        Ok(match pick {
            Pick::Random { seed } => Picker::Random { seed: *seed },
            Pick::ByScore => Picker::ByScore {
                scores: checked_scores(dataset, scores)?,
            },
        })
    }

    /// The order of the items of one selection step, which `stream` names for random picks.
    fn order(&self, stream: &[u64]) -> Order<'_> {
        match self {
            Picker::Random { seed } => {
                let keys: Vec<u64> = [*seed, domain::SUBSET]
                    .iter()
                    .chain(stream)
                    .copied()
                    .collect();
                Order::Random(Rng::from_keys(&keys))
            }
            Picker::ByScore { scores } => Order::Ascending(scores),
        }
    }
}

fn select_per_class(dataset: &Dataset, spec: &SubsetSpec, picker: &Picker) -> Result<Vec<usize>> {
    let by_class = dataset.indices_by_class();
    let classes = match &spec.classes {
        ClassSelection::List(list) => resolve_class_list(dataset, list)?,
        ClassSelection::Quantiles(range) => {
            let all: Vec<usize> = (0..dataset.num_classes()).collect();
            match picker {
                Picker::Random { .. } => keep(&all, *range, picker.order(&[CLASS_STREAM])),
                Picker::ByScore { scores } => keep(
                    &all,
                    *range,
                    Order::Ascending(&class_means(&by_class, scores)),
                ),
            }
        }
    };
    let mut indices = Vec::new();
    for c in classes {
        indices.extend(keep(
            &by_class[c],
            spec.samples,
            picker.order(&[SAMPLE_STREAM, c as u64]),
        ));
    }
    Ok(indices)
}

fn describe_selection(dataset: &Dataset, spec: &SubsetSpec, indices: &[usize]) -> String {
    let pick = match spec.pick {
        Pick::Random { seed } => format!("random (seed {seed})"),
        Pick::ByScore => "by ascending score".to_string(),
    };
    let mut kept_classes: Vec<u32> = indices.iter().map(|&i| dataset.label(i)).collect();
    kept_classes.sort_unstable();
    kept_classes.dedup();
    let scope = match spec.scope {
        Scope::PerClass => format!(
            "per class, classes {}, samples {}",
            describe_classes(&spec.classes),
            spec.samples
        ),
        Scope::Global => format!("global, samples {}", spec.samples),
    };
    format!(
        "{} of {} samples in {} of {} classes of {}; {pick}, {scope}",
        indices.len(),
        dataset.len(),
        kept_classes.len(),
        dataset.num_classes(),
        dataset.name()
    )
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so a reader
/// never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| DataError::invalid("path", path.display(), "names no file"))?;
    // Unique per process and per call, so concurrent saves never share a temporary.
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}
