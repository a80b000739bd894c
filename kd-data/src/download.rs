//! Downloads the official CIFAR-10/100, MNIST and Fashion-MNIST files: resumable, md5-verified,
//! unpacked safely, and idempotent.
//!
//! A dataset is a [`Source`]: base URLs (mirrors, tried in order) and a list of [`FileSpec`]s
//! (file name, md5, what to do with the file). [`download`] looks a [`DatasetId`] up in the
//! catalogue ([`source`]) and hands it to [`download_source`], which does all the work; tests
//! and private mirrors build their own [`Source`] and go through exactly the same code.
//!
//! For each file, [`download_source`]:
//! 1. does nothing, and sends no request, when the result is already there (the kept file, or
//!    every path the archive is expected to unpack to);
//! 2. only unpacks when the archive is already there with the right md5;
//! 3. otherwise downloads to `<file>.part`, resuming an existing `.part` with a `Range` request
//!    (and starting again from zero when the server answers the whole file), retries a dropped
//!    connection with `Range` up to [`DownloadOptions::max_retries`] times, checks the md5,
//!    renames the `.part` to its final name and unpacks it. A wrong md5 deletes the `.part`
//!    and fails with [`DataError::Checksum`]: a file under its final name is always verified.
//!
//! Archives are unpacked into a staging directory first, refusing entries that are absolute,
//! contain `..`, or are links or devices, then moved into place: a rejected or corrupt archive
//! leaves nothing behind.

use crate::error::{DataError, Result};
use md5::{Digest, Md5};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// CIFAR's home page, which serves all four archives.
const CIFAR_MIRRORS: &[&str] = &["https://www.cs.toronto.edu/~kriz/"];

/// MNIST: torchvision's current primary mirror, then the copy TensorFlow's tutorials use. The
/// original yann.lecun.com page is left out: it has answered 403 to scripted downloads for years.
const MNIST_MIRRORS: &[&str] = &[
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// Fashion-MNIST's official bucket (also torchvision's only mirror).
const FASHION_MNIST_MIRRORS: &[&str] =
    &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

/// MNIST's idx files with the md5s published in torchvision (`torchvision.datasets.MNIST.resources`).
const MNIST_FILES: &[(&str, &str)] = &[
    (
        "train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
];

/// Fashion-MNIST's idx files with the md5s of the project's README (the same as torchvision's).
/// Debian's `dataset-fashion-mnist` holds the same images, but its `.gz` files were written
/// without the original file name in the gzip header, so their md5s differ from these.
const FASHION_MNIST_FILES: &[(&str, &str)] = &[
    (
        "train-images-idx3-ubyte.gz",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
];

/// Size of the read buffer while downloading, hashing and the granularity of progress reports.
const CHUNK: usize = 64 * 1024;

/// The datasets that can be downloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetId {
    /// CIFAR-10 (python or binary archive).
    Cifar10,
    /// CIFAR-100 (python or binary archive).
    Cifar100,
    /// MNIST's four idx `.gz` files.
    Mnist,
    /// Fashion-MNIST's four idx `.gz` files.
    FashionMnist,
}

impl DatasetId {
    /// Every dataset, in the order a help text lists them.
    pub const ALL: [DatasetId; 4] = [
        DatasetId::Cifar10,
        DatasetId::Cifar100,
        DatasetId::FashionMnist,
        DatasetId::Mnist,
    ];

    /// The name used on the command line: `cifar10`, `cifar100`, `mnist`, `fashion-mnist`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetId::Cifar10 => "cifar10",
            DatasetId::Cifar100 => "cifar100",
            DatasetId::Mnist => "mnist",
            DatasetId::FashionMnist => "fashion-mnist",
        }
    }
}

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetId {
    type Err = DataError;

    /// Accepts the [`DatasetId::name`]s, case-insensitively and with or without `-`/`_`
    /// (`CIFAR-10`, `fashion_mnist`, `FashionMNIST`).
    fn from_str(s: &str) -> Result<Self> {
        let key: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        DatasetId::ALL
            .into_iter()
            .find(|id| id.name().replace('-', "") == key)
            .ok_or_else(|| {
                let names: Vec<_> = DatasetId::ALL.iter().map(|id| id.name()).collect();
                DataError::invalid(
                    "dataset",
                    s,
                    format!("expected one of {}", names.join(", ")),
                )
            })
    }
}

/// Which of CIFAR's two archives to fetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CifarFormat {
    /// The pickled "python version": what torchvision and most users have.
    #[default]
    Python,
    /// The "binary version": fixed-size records.
    Binary,
}

impl fmt::Display for CifarFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CifarFormat::Python => "python",
            CifarFormat::Binary => "binary",
        })
    }
}

impl FromStr for CifarFormat {
    type Err = DataError;

    /// `python` (or `py`) and `binary` (or `bin`), case-insensitively.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "python" | "py" => Ok(CifarFormat::Python),
            "binary" | "bin" => Ok(CifarFormat::Binary),
            _ => Err(DataError::invalid("format", s, "expected python or binary")),
        }
    }
}

/// What to do with a file once it is downloaded and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unpack {
    /// Keep it as it is (MNIST's idx `.gz`, which the readers read directly).
    Keep,
    /// Unpack it as a `.tar.gz` into the source's directory. `expect` lists paths, relative to
    /// that directory, that a complete unpacking contains: when they are all present a later
    /// call knows there is nothing to do, and an archive that lacks one is rejected.
    TarGz {
        /// Paths the archive must unpack to.
        expect: Vec<PathBuf>,
    },
}

/// One file of a [`Source`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// File name, appended to a mirror's base URL and used as the local file name.
    pub name: String,
    /// Expected md5, lower-case hex.
    pub md5: String,
    /// What to do with the file once verified.
    pub unpack: Unpack,
}

impl FileSpec {
    /// A file `name` with md5 `md5` (hex, any case).
    pub fn new(name: impl Into<String>, md5: impl Into<String>, unpack: Unpack) -> Self {
        FileSpec {
            name: name.into(),
            md5: md5.into().to_ascii_lowercase(),
            unpack,
        }
    }
}

/// Where a dataset comes from and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Name for reports, e.g. `CIFAR-10 (python)`.
    pub name: String,
    /// Base URLs tried in order; a file's URL is the base, a `/`, and the file's name.
    pub mirrors: Vec<String>,
    /// Directory, relative to the root, where the files are downloaded and unpacked.
    pub dir: PathBuf,
    /// Directory, relative to the root, where the readers find the data.
    pub data_dir: PathBuf,
    /// The files.
    pub files: Vec<FileSpec>,
}

/// The catalogue entry of `dataset`; `format` matters only for CIFAR.
pub fn source(dataset: DatasetId, format: CifarFormat) -> Source {
    match dataset {
        DatasetId::Cifar10 | DatasetId::Cifar100 => {
            cifar_source(dataset == DatasetId::Cifar100, format)
        }
        DatasetId::Mnist => idx_source("MNIST", "mnist", MNIST_MIRRORS, MNIST_FILES),
        DatasetId::FashionMnist => idx_source(
            "Fashion-MNIST",
            "fashion-mnist",
            FASHION_MNIST_MIRRORS,
            FASHION_MNIST_FILES,
        ),
    }
}

/// One CIFAR archive: its name, md5, the directory it unpacks to and the data files in it.
struct CifarArchive {
    file: &'static str,
    md5: &'static str,
    dir: &'static str,
    members: &'static [&'static str],
}

fn cifar_archive(hundred: bool, format: CifarFormat) -> CifarArchive {
    match (hundred, format) {
        (false, CifarFormat::Python) => CifarArchive {
            file: "cifar-10-python.tar.gz",
            md5: "c58f30108f718f92721af3b95e74349a",
            dir: "cifar-10-batches-py",
            members: &[
                "data_batch_1",
                "data_batch_2",
                "data_batch_3",
                "data_batch_4",
                "data_batch_5",
                "test_batch",
                "batches.meta",
            ],
        },
        (false, CifarFormat::Binary) => CifarArchive {
            file: "cifar-10-binary.tar.gz",
            md5: "c32a1d4ab5d03f1284b67883e8d87530",
            dir: "cifar-10-batches-bin",
            members: &[
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
                "test_batch.bin",
                "batches.meta.txt",
            ],
        },
        (true, CifarFormat::Python) => CifarArchive {
            file: "cifar-100-python.tar.gz",
            md5: "eb9058c3a382ffc7106e4002c42a8d85",
            dir: "cifar-100-python",
            members: &["train", "test", "meta"],
        },
        (true, CifarFormat::Binary) => CifarArchive {
            file: "cifar-100-binary.tar.gz",
            md5: "03b5dce01913d631647c71ecec9e9cb8",
            dir: "cifar-100-binary",
            members: &[
                "train.bin",
                "test.bin",
                "fine_label_names.txt",
                "coarse_label_names.txt",
            ],
        },
    }
}

fn cifar_source(hundred: bool, format: CifarFormat) -> Source {
    let archive = cifar_archive(hundred, format);
    let expect = archive
        .members
        .iter()
        .map(|m| Path::new(archive.dir).join(m))
        .collect();
    Source {
        name: format!("CIFAR-{} ({format})", if hundred { 100 } else { 10 }),
        mirrors: CIFAR_MIRRORS.iter().map(|m| m.to_string()).collect(),
        dir: PathBuf::new(),
        data_dir: PathBuf::from(archive.dir),
        files: vec![FileSpec::new(
            archive.file,
            archive.md5,
            Unpack::TarGz { expect },
        )],
    }
}

fn idx_source(name: &str, dir: &str, mirrors: &[&str], files: &[(&str, &str)]) -> Source {
    Source {
        name: name.to_string(),
        mirrors: mirrors.iter().map(|m| m.to_string()).collect(),
        dir: PathBuf::from(dir),
        data_dir: PathBuf::from(dir),
        files: files
            .iter()
            .map(|(file, md5)| FileSpec::new(*file, *md5, Unpack::Keep))
            .collect(),
    }
}

/// A progress report, sent after every chunk received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress<'a> {
    /// The file being downloaded.
    pub file: &'a str,
    /// Bytes of it on disk so far, a resumed prefix included.
    pub done: u64,
    /// Its full size, when the server said.
    pub total: Option<u64>,
}

/// The progress callback: `Fn` so that [`DownloadOptions`] can be shared by reference (a
/// progress bar's methods take `&self`).
pub type ProgressFn = Box<dyn Fn(Progress<'_>) + Send + Sync>;

/// How to download.
pub struct DownloadOptions {
    /// Directory that receives the data (created if absent).
    pub root: PathBuf,
    /// CIFAR archive to fetch; ignored for MNIST and Fashion-MNIST.
    pub format: CifarFormat,
    /// Replaces the mirrors' base URLs (everything before the file name): a private mirror, or
    /// a loopback server in tests.
    pub base_url: Option<String>,
    /// Keep a downloaded `.tar.gz` after unpacking it.
    pub keep_archive: bool,
    /// Called as bytes arrive.
    pub progress: Option<ProgressFn>,
    /// Further attempts per file and mirror after a dropped connection, a timeout or a 5xx.
    pub max_retries: u32,
    /// Pause before each retry.
    pub retry_delay: Duration,
}

impl DownloadOptions {
    /// Defaults into `root`: python CIFAR, official mirrors, archives deleted after
    /// unpacking, no progress callback, 3 retries one second apart.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DownloadOptions {
            root: root.into(),
            format: CifarFormat::default(),
            base_url: None,
            keep_archive: false,
            progress: None,
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("root", &self.root)
            .field("format", &self.format)
            .field("base_url", &self.base_url)
            .field("keep_archive", &self.keep_archive)
            .field("progress", &self.progress.as_ref().map(|_| "callback"))
            .field("max_retries", &self.max_retries)
            .field("retry_delay", &self.retry_delay)
            .finish()
    }
}

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileAction {
    /// Its result was already in place: nothing was requested.
    AlreadyPresent,
    /// The archive was already there with the right md5: it was only unpacked.
    UnpackedExisting,
    /// It was downloaded.
    Downloaded {
        /// URL it came from.
        url: String,
        /// Bytes of an earlier `.part` that the server let us keep (0 when it started afresh).
        resumed_from: u64,
        /// Bytes received in this call, discarded restarts included.
        received: u64,
        /// Attempts after the first one.
        retries: u32,
    },
}

/// One file of a [`DownloadReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// File name.
    pub name: String,
    /// What was done.
    pub action: FileAction,
}

/// What [`download`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadReport {
    /// The source's name.
    pub source: String,
    /// Where the readers find the data.
    pub data_dir: PathBuf,
    /// One entry per file of the source.
    pub files: Vec<FileReport>,
}

impl DownloadReport {
    /// Whether everything was already in place (no request was sent).
    pub fn nothing_to_do(&self) -> bool {
        self.files
            .iter()
            .all(|f| f.action == FileAction::AlreadyPresent)
    }

    /// Bytes received over the network.
    pub fn received(&self) -> u64 {
        self.files
            .iter()
            .map(|f| match f.action {
                FileAction::Downloaded { received, .. } => received,
                _ => 0,
            })
            .sum()
    }
}

impl fmt::Display for DownloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} in {}", self.source, self.data_dir.display())?;
        for file in &self.files {
            write!(f, "  {}: ", file.name)?;
            match &file.action {
                FileAction::AlreadyPresent => writeln!(f, "already present, skipped")?,
                FileAction::UnpackedExisting => {
                    writeln!(f, "archive already present and verified, unpacked")?
                }
                FileAction::Downloaded {
                    url,
                    resumed_from,
                    received,
                    retries,
                } => {
                    write!(f, "downloaded {received} bytes from {url}")?;
                    if *resumed_from > 0 {
                        write!(f, ", resumed at byte {resumed_from}")?;
                    }
                    if *retries > 0 {
                        write!(f, ", {retries} retries")?;
                    }
                    writeln!(f)?;
                }
            }
        }
        Ok(())
    }
}

/// Downloads `dataset` from its catalogue entry ([`source`]) into `opts.root`.
pub fn download(dataset: DatasetId, opts: &DownloadOptions) -> Result<DownloadReport> {
    download_source(&source(dataset, opts.format), opts)
}

/// Downloads, verifies and unpacks every file of `source` into `opts.root` (see the module
/// documentation for the steps).
pub fn download_source(source: &Source, opts: &DownloadOptions) -> Result<DownloadReport> {
    let fetcher = Fetcher::new(source, opts)?;
    let dir = opts.root.join(&source.dir);
    fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let files = source
        .files
        .iter()
        .map(|spec| obtain(spec, &dir, &fetcher))
        .collect::<Result<Vec<_>>>()?;
    Ok(DownloadReport {
        source: source.name.clone(),
        data_dir: opts.root.join(&source.data_dir),
        files,
    })
}

/// Brings one file to its final state in `dir`.
fn obtain(spec: &FileSpec, dir: &Path, fetcher: &Fetcher) -> Result<FileReport> {
    let target = dir.join(&spec.name);
    let report = |action| {
        Ok(FileReport {
            name: spec.name.clone(),
            action,
        })
    };
    if is_complete(spec, dir, &target) {
        return report(FileAction::AlreadyPresent);
    }
    let existing = target.is_file() && md5_file(&target)? == spec.md5;
    let action = if existing {
        FileAction::UnpackedExisting
    } else {
        fetcher.fetch(spec, &target)?
    };
    if let Unpack::TarGz { expect } = &spec.unpack {
        unpack_tar_gz(&target, dir)?;
        check_unpacked(&target, dir, expect)?;
        // An archive the user had put there is theirs to delete.
        if !existing && !fetcher.opts.keep_archive {
            fs::remove_file(&target).map_err(|e| DataError::io(&target, e))?;
        }
    }
    report(action)
}

fn is_complete(spec: &FileSpec, dir: &Path, target: &Path) -> bool {
    match &spec.unpack {
        Unpack::Keep => target.is_file(),
        Unpack::TarGz { expect } => {
            !expect.is_empty() && expect.iter().all(|p| dir.join(p).exists())
        }
    }
}

fn check_unpacked(archive: &Path, dir: &Path, expect: &[PathBuf]) -> Result<()> {
    match expect.iter().find(|p| !dir.join(p).exists()) {
        Some(missing) => Err(DataError::format(
            archive,
            format!(
                "unpacked, but {} is not among its files: not the expected archive",
                missing.display()
            ),
        )),
        None => Ok(()),
    }
}

/// The md5 of a file, lower-case hex.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// A failed attempt: worth another try (dropped connection, timeout, 5xx) or not (404, disk error).
enum Failure {
    Transient(DataError),
    Fatal(DataError),
}

/// What a successful transfer from one mirror looked like.
struct Transfer {
    resumed_from: u64,
    received: u64,
    retries: u32,
}

/// The HTTP side: one agent, the base URLs to try and the options.
struct Fetcher<'a> {
    agent: ureq::Agent,
    bases: Vec<String>,
    opts: &'a DownloadOptions,
}

impl<'a> Fetcher<'a> {
    fn new(source: &Source, opts: &'a DownloadOptions) -> Result<Self> {
        let bases = match &opts.base_url {
            Some(base) => vec![base.clone()],
            None => source.mirrors.clone(),
        };
        if bases.is_empty() {
            return Err(DataError::invalid(
                "mirrors",
                &source.name,
                "the source has no URL to download from",
            ));
        }
        let config = ureq::Agent::config_builder()
            // 206, 416 and 404 are answers to handle, not errors.
            .http_status_as_error(false)
            // A transparently decompressed `.tar.gz` would fail its md5 and break resuming.
            .accept_encoding("identity")
            .user_agent(concat!("kd/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // Per read, not per body: a 170 MB archive on a slow link may take long, but a
            // stalled one should fail and be resumed.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build();
        Ok(Fetcher {
            agent: ureq::Agent::new_with_config(config),
            bases,
            opts,
        })
    }

    /// Downloads `spec` to `target`, trying each base URL in turn, and verifies its md5.
    fn fetch(&self, spec: &FileSpec, target: &Path) -> Result<FileAction> {
        let part = part_path(target);
        let mut failures = Vec::new();
        for base in &self.bases {
            let url = format!("{}/{}", base.trim_end_matches('/'), spec.name);
            match self.transfer(&url, &part, &spec.name) {
                Ok(t) => {
                    verify_and_rename(&part, target, &spec.md5)?;
                    let Transfer {
                        resumed_from,
                        received,
                        retries,
                    } = t;
                    return Ok(FileAction::Downloaded {
                        url,
                        resumed_from,
                        received,
                        retries,
                    });
                }
                Err(e @ DataError::Network { .. }) => failures.push(e),
                Err(e) => return Err(e),
            }
        }
        Err(combine_failures(failures))
    }

    /// Gets the whole file from `url` into `part`, resuming and retrying.
    fn transfer(&self, url: &str, part: &Path, name: &str) -> Result<Transfer> {
        let mut transfer = Transfer {
            resumed_from: 0,
            received: 0,
            retries: 0,
        };
        loop {
            let offset = file_len(part)?;
            match self.attempt(url, part, name, offset, &mut transfer) {
                Ok(()) => return Ok(transfer),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(e)) if transfer.retries >= self.opts.max_retries => {
                    return Err(e);
                }
                Err(Failure::Transient(_)) => {
                    transfer.retries += 1;
                    std::thread::sleep(self.opts.retry_delay);
                }
            }
        }
    }

    /// One request: asks for the bytes after `offset` when a `.part` exists.
    fn attempt(
        &self,
        url: &str,
        part: &Path,
        name: &str,
        offset: u64,
        t: &mut Transfer,
    ) -> Result<(), Failure> {
        let mut request = self.agent.get(url);
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
        }
        let response = request.call().map_err(|e| classify_call_error(url, e))?;
        let status = response.status();
        let range = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .map(ContentRange::parse)
            .unwrap_or_default();
        match status.as_u16() {
            200 => self.receive(response, url, part, name, Resume::Restart, t),
            206 if offset > 0 && range.start == Some(offset) => {
                if t.received == 0 && t.retries == 0 {
                    t.resumed_from = offset;
                }
                self.receive(
                    response,
                    url,
                    part,
                    name,
                    Resume::Append {
                        offset,
                        total: range.total,
                    },
                    t,
                )
            }
            206 => {
                remove_part(part)?;
                Err(Failure::Transient(network(
                    url,
                    format!("asked for bytes {offset}- but got range {range:?}"),
                )))
            }
            416 if offset > 0 && range.total == Some(offset) => Ok(()),
            416 if offset > 0 => {
                // The `.part` is longer than the file: it is not a prefix of it.
                remove_part(part)?;
                Err(Failure::Transient(network(
                    url,
                    format!("{} bytes already on disk exceed the file", offset),
                )))
            }
            code => {
                let reason = format!(
                    "HTTP status {code} {}",
                    status.canonical_reason().unwrap_or("")
                );
                let reason = reason.trim_end().to_string();
                if status.is_server_error() || code == 408 || code == 429 {
                    Err(Failure::Transient(network(url, reason)))
                } else {
                    Err(Failure::Fatal(network(url, reason)))
                }
            }
        }
    }

    /// Streams a response body into `part`, reporting progress after every chunk.
    fn receive(
        &self,
        response: ureq::http::Response<ureq::Body>,
        url: &str,
        part: &Path,
        name: &str,
        resume: Resume,
        t: &mut Transfer,
    ) -> Result<(), Failure> {
        let length = response.body().content_length();
        let (start, total) = match resume {
            Resume::Restart => (0, length),
            Resume::Append { offset, total } => (offset, total.or(length.map(|n| offset + n))),
        };
        let mut file = open_part(part, start > 0).map_err(Failure::Fatal)?;
        let mut body = response.into_body().into_reader();
        let mut buf = vec![0u8; CHUNK];
        let mut done = start;
        self.report(name, done, total);
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Transient(lost(url, done, total, &e.to_string()))),
            };
            // Unbuffered: whatever arrived before a drop is on disk for the next `Range`.
            file.write_all(&buf[..n])
                .map_err(|e| Failure::Fatal(DataError::io(part, e)))?;
            done += n as u64;
            t.received += n as u64;
            self.report(name, done, total);
        }
        match total {
            Some(total) if done != total => Err(Failure::Transient(lost(
                url,
                done,
                Some(total),
                "early end of body",
            ))),
            _ => Ok(()),
        }
    }

    fn report(&self, file: &str, done: u64, total: Option<u64>) {
        if let Some(progress) = &self.opts.progress {
            progress(Progress { file, done, total });
        }
    }
}

/// Where the body goes in the `.part`.
enum Resume {
    /// From byte 0, truncating.
    Restart,
    /// After the `offset` bytes already there; `total` from `Content-Range`.
    Append { offset: u64, total: Option<u64> },
}

/// The parts of a `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL`) header used here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ContentRange {
    start: Option<u64>,
    total: Option<u64>,
}

impl ContentRange {
    fn parse(value: &str) -> Self {
        let Some(spec) = value.trim().strip_prefix("bytes ") else {
            return ContentRange::default();
        };
        let (range, total) = spec.split_once('/').unwrap_or((spec, "*"));
        let start = range
            .split_once('-')
            .and_then(|(s, _)| s.trim().parse().ok());
        ContentRange {
            start,
            total: total.trim().parse().ok(),
        }
    }
}

fn network(url: &str, reason: impl Into<String>) -> DataError {
    DataError::Network {
        url: url.to_string(),
        reason: reason.into(),
    }
}

fn lost(url: &str, done: u64, total: Option<u64>, why: &str) -> DataError {
    let total = total.map_or_else(|| "?".to_string(), |t| t.to_string());
    network(
        url,
        format!("connection lost after {done} of {total} bytes: {why}"),
    )
}

/// Malformed URLs and https-only refusals will not improve with retrying; the rest may.
fn classify_call_error(url: &str, e: ureq::Error) -> Failure {
    let fatal = matches!(
        e,
        ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::RequireHttpsOnly(_)
    );
    let error = network(url, e.to_string());
    if fatal {
        Failure::Fatal(error)
    } else {
        Failure::Transient(error)
    }
}

/// One error for all the mirrors that failed: the first one's, naming the others' reasons.
fn combine_failures(mut failures: Vec<DataError>) -> DataError {
    let first = failures.remove(0);
    let DataError::Network { url, mut reason } = first else {
        return first;
    };
    for other in failures {
        if let DataError::Network { url, reason: why } = other {
            reason.push_str(&format!("; mirror {url}: {why}"));
        }
    }
    DataError::Network { url, reason }
}

fn part_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

fn file_len(path: &Path) -> Result<u64> {
    match fs::metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(DataError::io(path, e)),
    }
}

fn open_part(part: &Path, append: bool) -> Result<File> {
    let mut options = OpenOptions::new();
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    options
        .create(true)
        .open(part)
        .map_err(|e| DataError::io(part, e))
}

fn remove_part(part: &Path) -> Result<(), Failure> {
    match fs::remove_file(part) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Failure::Fatal(DataError::io(part, e)))
        }
        _ => Ok(()),
    }
}

/// Renames a complete `.part` to `target` if its md5 is `expected`; deletes it otherwise, so that
/// the next call starts afresh instead of resuming a corrupt file.
fn verify_and_rename(part: &Path, target: &Path, expected: &str) -> Result<()> {
    let actual = md5_file(part)?;
    if !actual.eq_ignore_ascii_case(expected) {
        let _ = fs::remove_file(part);
        return Err(DataError::Checksum {
            path: target.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    fs::rename(part, target).map_err(|e| DataError::io(target, e))
}

/// Unpacks the `.tar.gz` `archive` into `dest`, merging with what is there.
///
/// Entries that are absolute, contain `..`, or are links, devices or fifos are refused with a
/// [`DataError::Format`] naming the archive and the entry. Everything is first unpacked into a
/// hidden staging directory inside `dest`, so a refused or corrupt archive changes nothing.
pub fn unpack_tar_gz(archive: &Path, dest: &Path) -> Result<()> {
    let name = archive
        .file_name()
        .map_or_else(|| "archive".into(), |n| n.to_string_lossy().into_owned());
    let staging = dest.join(format!(".{name}.unpacking"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    }
    fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    let result = unpack_into(archive, &staging).and_then(|()| merge_dir(&staging, dest));
    let _ = fs::remove_dir_all(&staging);
    result
}

fn unpack_into(archive: &Path, staging: &Path) -> Result<()> {
    let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let corrupt = |e: io::Error| DataError::format(archive, format!("not a readable tar.gz: {e}"));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let path = entry.path().map_err(corrupt)?.into_owned();
        if !is_safe_entry(archive, &path, entry.header().entry_type())? {
            continue;
        }
        let cannot = |why: String| {
            DataError::format(archive, format!("cannot unpack {}: {why}", path.display()))
        };
        if !entry
            .unpack_in(staging)
            .map_err(|e| cannot(e.to_string()))?
        {
            return Err(cannot("it would land outside the destination".into()));
        }
    }
    Ok(())
}

/// Whether to unpack an entry (metadata entries are skipped); an error for unsafe ones.
fn is_safe_entry(archive: &Path, path: &Path, kind: tar::EntryType) -> Result<bool> {
    if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
        return Ok(false);
    }
    let refuse = |why: &str| {
        Err(DataError::format(
            archive,
            format!("refusing entry {}: {why}", path.display()),
        ))
    };
    if !(kind.is_file() || kind.is_contiguous() || kind.is_dir()) {
        return refuse(&format!(
            "a {kind:?} entry; only plain files and directories are unpacked"
        ));
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return refuse("an absolute path or one with `..` would land outside the destination");
    }
    Ok(path.components().any(|c| matches!(c, Component::Normal(_))))
}

/// Moves the content of `src` into `dst`: new entries are renamed, directories present on both
/// sides are merged, files replace files.
fn merge_dir(src: &Path, dst: &Path) -> Result<()> {
    let entries = fs::read_dir(src).map_err(|e| DataError::io(src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let from_is_dir = entry
            .file_type()
            .map_err(|e| DataError::io(&from, e))?
            .is_dir();
        if from_is_dir && to.is_dir() {
            merge_dir(&from, &to)?;
            continue;
        }
        if to.is_dir() {
            return Err(DataError::format(
                &to,
                "is a directory, and the archive has a file there",
            ));
        }
        if to.symlink_metadata().is_ok() && !from_is_dir {
            // Windows's rename does not replace an existing file.
            fs::remove_file(&to).map_err(|e| DataError::io(&to, e))?;
        }
        fs::rename(&from, &to).map_err(|e| DataError::io(&to, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses_ranges_and_unsatisfied_totals() {
        assert_eq!(
            ContentRange::parse("bytes 100-199/200"),
            ContentRange {
                start: Some(100),
                total: Some(200)
            }
        );
        assert_eq!(
            ContentRange::parse("bytes */200"),
            ContentRange {
                start: None,
                total: Some(200)
            }
        );
        assert_eq!(
            ContentRange::parse("bytes 5-9/*"),
            ContentRange {
                start: Some(5),
                total: None
            }
        );
        assert_eq!(ContentRange::parse("items 1-2/3"), ContentRange::default());
    }

    #[test]
    fn dataset_names_round_trip_and_accept_spelling_variants() {
        for id in DatasetId::ALL {
            assert_eq!(id.name().parse::<DatasetId>().unwrap(), id);
        }
        assert_eq!("CIFAR-10".parse::<DatasetId>().unwrap(), DatasetId::Cifar10);
        assert_eq!(
            "fashion_mnist".parse::<DatasetId>().unwrap(),
            DatasetId::FashionMnist
        );
        let err = "imagenet".parse::<DatasetId>().unwrap_err().to_string();
        assert!(
            err.contains("imagenet") && err.contains("cifar100"),
            "{err}"
        );
    }

    #[test]
    fn cifar_format_parses_and_rejects_unknown_names() {
        assert_eq!(
            "Binary".parse::<CifarFormat>().unwrap(),
            CifarFormat::Binary
        );
        assert_eq!("py".parse::<CifarFormat>().unwrap(), CifarFormat::Python);
        assert!(
            "matlab"
                .parse::<CifarFormat>()
                .unwrap_err()
                .to_string()
                .contains("matlab")
        );
    }

    #[test]
    fn catalogue_points_at_the_official_files() {
        let c10 = source(DatasetId::Cifar10, CifarFormat::Python);
        assert_eq!(c10.mirrors, ["https://www.cs.toronto.edu/~kriz/"]);
        assert_eq!(c10.files[0].name, "cifar-10-python.tar.gz");
        assert_eq!(c10.files[0].md5, "c58f30108f718f92721af3b95e74349a");
        assert_eq!(c10.data_dir, Path::new("cifar-10-batches-py"));
        let c100 = source(DatasetId::Cifar100, CifarFormat::Binary);
        assert_eq!(c100.files[0].name, "cifar-100-binary.tar.gz");
        assert_eq!(c100.files[0].md5, "03b5dce01913d631647c71ecec9e9cb8");
        let Unpack::TarGz { expect } = &c100.files[0].unpack else {
            panic!("CIFAR must be unpacked")
        };
        assert!(expect.contains(&PathBuf::from("cifar-100-binary/train.bin")));
        for id in [DatasetId::Mnist, DatasetId::FashionMnist] {
            let s = source(id, CifarFormat::Binary);
            assert_eq!(s.files.len(), 4);
            assert!(
                s.files
                    .iter()
                    .all(|f| f.unpack == Unpack::Keep && f.md5.len() == 32)
            );
            assert_eq!(s.dir, Path::new(id.name()));
        }
        assert_eq!(
            source(DatasetId::Mnist, CifarFormat::Python).mirrors.len(),
            2
        );
    }
}
