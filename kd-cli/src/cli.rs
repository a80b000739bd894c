//! The command line, shared by `kd` and `kd-engine` so both parse exactly the same arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// kd: a workbench for knowledge-distillation research on image classification.
#[derive(Debug, Parser)]
#[command(name = "kd", version, about, max_term_width = 100)]
pub struct Cli {
    /// Print only results and errors: no progress bars, no chatter.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print kd's and libtorch's versions, CUDA and cuDNN, and the thread counts.
    Doctor(DoctorArgs),
    /// The one-command showcase, on the built-in synthetic dataset (no download).
    Demo(DemoArgs),
    /// Datasets: download the official archives, inspect a folder, export images.
    #[command(subcommand)]
    Data(DataCommand),
    /// Augmentations: see what a pipeline or a scheme does.
    #[command(subcommand)]
    Augment(AugmentCommand),
    /// List the model zoo: parameters, multiply-accumulates and features at an input size.
    Models(ModelsArgs),
    /// Evaluate a model on a dataset: top-1, top-5 and mean cross-entropy.
    Eval(EvalArgs),
    /// Convert a PyTorch checkpoint (.pth/.pt) to safetensors, optionally checking it fits a model.
    Convert(ConvertArgs),
    /// Train a model with cross-entropy (a teacher, or a baseline student) from a TOML config.
    Train(TrainArgs),
    /// Distill a student from a frozen teacher, from a TOML config.
    Distill(TrainArgs),
    /// How good stronger DAs are for distillation: the teacher's T. stddev and mean entropy per
    /// scheme (Good-DA-in-KD), as a table, CSV and JSON.
    Goodness(GoodnessArgs),
    /// Per-sample confidence of several models on one dataset (kd_data's analysis): entropy and
    /// top logit difference per sample (CSV, .npy), their TLD densities on one plot, ECE, and
    /// the first model (the teacher) against each other as the 4 cases of right/wrong.
    Analyze(AnalyzeArgs),
    /// Studies: sets of runs and their analysis; resumable, and shardable across machines.
    #[command(subcommand)]
    Study(StudyCommand),
    /// Internal: the training half of `kd demo`, run inside `kd-engine`.
    #[command(hide = true)]
    DemoTrain(DemoArgs),
    /// Internal: run by `kd doctor` inside `kd-engine` to query libtorch.
    #[command(hide = true)]
    EngineProbe,
}

/// Options of `kd doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `kd demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The seed of the data, its order and its augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Batch size of the loader.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Where the demo writes what it shows (a PNG of samples, a subset file).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
}

/// `kd data …`
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download an official dataset archive: resumable, md5-verified, unpacked.
    Download(DownloadArgs),
    /// Describe the dataset in a folder: format, splits, image size, classes, counts.
    Info(InfoArgs),
    /// Write a few images of a dataset as PNG files (and a grid) to look at.
    Export(ExportArgs),
    /// Make a δ/ζ training subset (at random, or by per-sample scores) and save it as JSON for
    /// `data.subset`.
    Subset(SubsetArgs),
}

/// The datasets `kd data download` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DownloadDataset {
    /// CIFAR-10 (170 MB; 60,000 32×32 images, 10 classes).
    Cifar10,
    /// CIFAR-100 (170 MB; 60,000 32×32 images, 100 classes).
    Cifar100,
    /// MNIST (12 MB; 70,000 28×28 digits).
    Mnist,
    /// Fashion-MNIST (31 MB; 70,000 28×28 clothing images).
    FashionMnist,
}

/// The file format of a CIFAR download.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CifarFormat {
    /// The python pickles (what torchvision downloads).
    Python,
    /// The binary records.
    Binary,
}

/// Options of `kd data download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Which dataset.
    pub dataset: DownloadDataset,
    /// The folder to download into.
    #[arg(long, default_value = "data")]
    pub root: PathBuf,
    /// CIFAR only: which of the two official formats.
    #[arg(long, value_enum, default_value_t = CifarFormat::Python)]
    pub format: CifarFormat,
    /// Fetch from this base URL instead of the official host (a mirror, or a local server).
    #[arg(long)]
    pub mirror: Option<String>,
    /// Keep the .tar.gz after unpacking it.
    #[arg(long)]
    pub keep_archive: bool,
}

/// Options of `kd data info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The dataset folder (or its parent).
    pub dir: PathBuf,
    /// Print the description as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which split a command reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

/// Options of `kd data export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The dataset folder (or its parent); `synthetic` for the built-in dataset.
    pub dir: PathBuf,
    /// Where to write the PNG files.
    #[arg(long, default_value = "export")]
    pub out: PathBuf,
    /// Which split.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    /// How many images per class.
    #[arg(long, default_value_t = 4)]
    pub per_class: usize,
    /// Upscale factor of the grid image (nearest neighbour).
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
}

/// Options of `kd data subset`.
#[derive(Debug, Args)]
pub struct SubsetArgs {
    /// The dataset folder (or its parent); `synthetic` for the built-in dataset. The subset is
    /// of its training split.
    pub dir: PathBuf,
    /// The subset file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// δ: the fraction of the classes kept.
    #[arg(long, default_value_t = 1.0)]
    pub delta: f64,
    /// ζ: the fraction of each kept class's samples kept (of all samples with `--global`).
    #[arg(long, default_value_t = 1.0)]
    pub zeta: f64,
    /// The seed of a random pick (independent of any run's seed).
    #[arg(long, default_value_t = kd_data::subset::REFERENCE_SEED)]
    pub seed: u64,
    /// Pick by score instead of at random: a file of one score per training sample (teacher
    /// entropy or TLD), one number per line, or a CSV with a header naming `--column`.
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// The CSV column holding the scores.
    #[arg(long, requires = "scores")]
    pub column: Option<String>,
    /// With `--scores`: the lower quantile of the kept ranges (the samples kept are
    /// `[lower, lower + ζ)` of each class sorted by score; the classes `[lower, lower + δ)` of the
    /// classes sorted by mean score).
    #[arg(long, default_value_t = 0.0, requires = "scores")]
    pub lower: f64,
    /// Select among all samples at once instead of within each class (δ must be 1).
    #[arg(long)]
    pub global: bool,
}

/// `kd augment …`
#[derive(Debug, Subcommand)]
pub enum AugmentCommand {
    /// Write a PNG grid: each row an original image and several augmented draws of it.
    Preview(PreviewArgs),
}

/// Options of `kd augment preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// A per-image pipeline, e.g. "crop:4,flip,cutout:8" or "autoaugment:cifar10".
    #[arg(long, conflicts_with = "scheme")]
    pub pipeline: Option<String>,
    /// One of Good-DA-in-KD's schemes, applied per batch to the normalised images: identity,
    /// flip, crop, crop+flip, cutout, autoaugment, mixup, cutmix, cutmix_pick:teacher_entropy;
    /// `@sample` (e.g. `autoaugment@sample`) draws per image instead.
    #[arg(long)]
    pub scheme: Option<String>,
    /// The dataset folder, or `synthetic`.
    #[arg(long, default_value = "synthetic")]
    pub data: PathBuf,
    /// Which split.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    /// Where to write the grid.
    #[arg(long, default_value = "preview.png")]
    pub out: PathBuf,
    /// How many images (rows).
    #[arg(long, default_value_t = 8)]
    pub images: usize,
    /// Augmented draws per image (columns after the original).
    #[arg(long, default_value_t = 7)]
    pub samples: usize,
    /// Upscale factor of the grid (nearest neighbour).
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Options of `kd train` and `kd distill`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The run's TOML config (sections run, data, augment, model, loss, optim, schedule).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The recipe the defaults come from: repdistiller (the default) or kd-data.
    #[arg(long)]
    pub preset: Option<String>,
    /// Override one key, e.g. `--set optim.lr=0.1 --set model.student=resnet20` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    /// kd distill: RepDistiller's feature distiller with its run-script weights (fitnet, at, sp,
    /// cc, vid, rkd, pkt, ab, ft, fsp, nst, crd), as `--set loss.distiller=NAME`.
    #[arg(long, value_name = "NAME")]
    pub distiller: Option<String>,
    /// Continue the run in the run directory from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Print the resolved config and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// `kd study …`
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Good-DA-in-KD for one teacher–student pair: the T. stddev of each augmentation scheme, a
    /// distillation per scheme and seed, the correlations of T. stddev with the student's test
    /// loss, a scatter plot and report.md.
    GoodDa(StudyArgs),
    /// "When does KD help?" for one teacher–student pair: a distillation per α × τ (τ = inf
    /// included) and per logit loss (KL, MSE, SmoothL1); train and test accuracy and the
    /// teacher's mean entropy on the samples the student gets right, as tables, heatmaps and
    /// report.md.
    KdGrid(StudyArgs),
    /// "When does KD help?" on less data: runs per δ (classes kept) and ζ (samples kept per
    /// class), at random or by the teacher's entropy/TLD, for the vanilla, over-, self- and
    /// under-distillation kinds; accuracy on the test set and on the held-out samples, as the
    /// paper's Table 4.
    DataAmount(StudyArgs),
    /// Rebuild a study's report from the jobs that have finished.
    Report(StudyReportArgs),
}

/// Options of `kd study good-da`, `kd study kd-grid` and `kd study data-amount`.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// The study file: a run config plus a [study] section.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Run only the jobs at positions ≡ i (mod n), 0 ≤ i < n: one shard of a job array.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,
    /// Override a key of the runs' config (repeatable), e.g. `--set run.epochs=30`.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
}

/// Options of `kd study report`.
#[derive(Debug, Args)]
pub struct StudyReportArgs {
    /// The study's directory (it holds study.toml).
    pub dir: PathBuf,
}

/// Options of `kd analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The models, comma-separated; the first is the teacher of the 4-case table. Each is a
    /// run's checkpoint (`runs/x/checkpoints/last.safetensors`: the architecture is read from
    /// the run's config.toml) or ARCH=PATH (`wrn_16_2=student.safetensors`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub models: Vec<String>,
    /// Names of the models in tables, plots and file names, comma-separated; default: the run's
    /// name (a run's checkpoint), else the file's stem.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The data: a dataset folder, `synthetic`, or a run config (.toml, e.g. a run's
    /// config.toml), whose [data] section (dataset, synthetic size, normalisation) is used.
    #[arg(long)]
    pub data: PathBuf,
    /// Which split (the paper analyses the training set).
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    /// Normalisation: a preset or `auto`; default: the config's `data.norm` (`auto`).
    #[arg(long)]
    pub norm: Option<String>,
    /// Bins of the TLD density (the reference: 300).
    #[arg(long, default_value_t = 300)]
    pub bins: usize,
    /// The TLD density's range as LO,HI (the reference: --tld-range=-10,20); default: from the
    /// smallest to the largest TLD of all models.
    #[arg(long, allow_hyphen_values = true)]
    pub tld_range: Option<String>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Where to write per_sample.csv, <model>.entropy.npy, <model>.tld.npy, models.csv,
    /// cases.csv, tld_density.{csv,png,svg} and report.md.
    #[arg(long, default_value = "runs/analyze")]
    pub out: PathBuf,
}

/// Options of `kd models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Number of classes of the classifier.
    #[arg(long, default_value_t = 100)]
    pub classes: i64,
    /// Side of the square input images (32 CIFAR, 64 Tiny-ImageNet, 224 ImageNet).
    #[arg(long, default_value_t = 32)]
    pub input_size: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `kd eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The model's registry name (see `kd models`).
    #[arg(long)]
    pub model: String,
    /// Its weights: .safetensors, or a PyTorch checkpoint (.pth/.pt).
    #[arg(long)]
    pub weights: PathBuf,
    /// The dataset folder, or `synthetic`.
    #[arg(long)]
    pub data: PathBuf,
    /// Which split.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Normalisation constants: a preset (cifar100, cifar10, tiny-imagenet, imagenet, …) or
    /// `auto` (the preset named after the dataset, else the training split's pixel statistics).
    #[arg(long, default_value = "auto")]
    pub norm: String,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Write the logits ([n, classes], float32) to this .npy file.
    #[arg(long)]
    pub save_logits: Option<PathBuf>,
}

/// Options of `kd convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The checkpoint: a `torch.save` file (`{'model': …}`, `module.` prefixes are handled) or
    /// safetensors.
    pub input: PathBuf,
    /// The safetensors file to write.
    pub output: PathBuf,
    /// Check that the weights load into this zoo model (every key, every shape) before writing.
    #[arg(long)]
    pub model: Option<String>,
    /// The model's number of classes, with --model.
    #[arg(long, default_value_t = 100)]
    pub classes: i64,
    /// The model's input size, with --model.
    #[arg(long, default_value_t = 32)]
    pub input_size: i64,
}

/// Options of `kd goodness`.
#[derive(Debug, Args)]
pub struct GoodnessArgs {
    /// The teacher's registry name (see `kd models`).
    #[arg(long)]
    pub teacher_model: String,
    /// The teacher's weights: .safetensors, or a PyTorch checkpoint (.pth/.pt).
    #[arg(long)]
    pub teacher: PathBuf,
    /// The dataset folder (its training split is measured), or `synthetic`.
    #[arg(long)]
    pub data: String,
    /// The stronger DAs, comma-separated: identity, flip, crop, crop+flip, cutout, autoaugment,
    /// mixup, cutmix, cutmix_pick_t (= cutmix_pick:teacher_entropy), cutmix_pick_s
    /// (= cutmix_pick:student_entropy, needs --student-model and --student); `@sample` after a
    /// name draws per image instead of per batch.
    #[arg(long, value_name = "SCHEMES")]
    pub da: String,
    /// The student's registry name, for cutmix_pick_s.
    #[arg(long, requires = "student")]
    pub student_model: Option<String>,
    /// The trained student's weights, for cutmix_pick_s (it ranks the pool by its entropy).
    #[arg(long, requires = "student_model")]
    pub student: Option<PathBuf>,
    /// Passes over the training set per scheme (the paper: 10).
    #[arg(long, default_value_t = 10)]
    pub passes: usize,
    /// Batch size B of the loader (the paper: 64); CutMixPick keeps B rows of its 2B pool.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// The seed of the data order, the standard DA and the stronger DA.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// A saved subset of the training set (kd's or kd_data's JSON) to measure on.
    #[arg(long)]
    pub subset: Option<PathBuf>,
    /// Normalisation constants: a preset (cifar100, cifar10, tiny-imagenet, imagenet, …) or
    /// `auto` (the dataset's preset, else the training set's own pixel statistics).
    #[arg(long, default_value = "auto")]
    pub norm: String,
    /// The per-sample standard DA before the stronger DA, a pipeline; `auto` is
    /// `crop:size/8,flip` (the paper's random crop and flip).
    #[arg(long, default_value = "auto")]
    pub standard: String,
    /// libtorch intra-op threads; 0 keeps libtorch's default.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Loader threads; 0: one per core.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Also time the teacher's plain forward on the same data (one pass's worth of images, data
    /// loading excluded) in batches of this many images (without a value: 2 × --batch-size,
    /// the size of the [x; x′] forward), to compare with the schemes' img/s.
    #[arg(long, value_name = "IMAGES", num_args = 0..=1, default_missing_value = "0")]
    pub baseline: Option<usize>,
    /// Where to write goodness.csv and goodness.json.
    #[arg(long, default_value = "runs/goodness")]
    pub out: PathBuf,
}
