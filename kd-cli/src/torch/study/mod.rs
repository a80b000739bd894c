//! Studies: a set of ordinary runs plus an analysis over them.
//!
//! A study file is a run config (the sections of `kd train`, shared by every run) plus a
//! `[study]` section that says what varies. The runner lays the study out as a fixed, ordered list
//! of jobs (training runs, measurements), each with its own directory under the study's, and:
//!
//! - skips the jobs that are finished, and resumes a training run from its last checkpoint, so a
//!   study killed at any point finishes by being started again;
//! - with `--shard i/n` (0 ≤ i < n) runs only the jobs whose position in the list is i modulo n,
//!   so the n tasks of a cluster job array (Slurm `--array=0-(n-1)`, `--shard
//!   $SLURM_ARRAY_TASK_ID/n`) share the study with no coordination but the file system; the
//!   split depends only on the list, never on what is already done;
//! - rebuilds the analysis from whatever jobs have finished (`kd study report DIR`).

pub mod data_amount;
pub mod good_da;
pub mod kd_grid;

use super::train::Progress;
use anyhow::{Context, Result, bail};
use kd_core::config::{ConfigSource, RunConfig};
use kd_core::train::state::{EpochRow, TrainState};
use kd_core::train::{Mode, Session};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One part of a study.
pub trait Job {
    /// Its name, unique in the study (also its directory's).
    fn name(&self) -> &str;
    /// Whether it has finished.
    fn is_done(&self) -> bool;
    /// A job it needs that has not finished, if any.
    fn waits_for(&self) -> Option<String> {
        None
    }
    /// Does it (resuming whatever an earlier attempt left).
    fn run(&self, quiet: bool) -> Result<()>;
}

/// A training or distillation run of the study.
#[derive(Debug)]
pub struct TrainJob {
    /// The run's name.
    pub name: String,
    /// Train or distill.
    pub mode: Mode,
    /// Its complete config (with `run.out_dir` and `run.name` set).
    pub config: RunConfig,
}

impl TrainJob {
    /// The run directory.
    pub fn dir(&self) -> PathBuf {
        self.config.run.out_dir.join(&self.config.run.name)
    }

    /// The epochs its last checkpoint has, 0 if none.
    pub fn epochs_done(&self) -> usize {
        let state = self.dir().join("checkpoints/last.state.safetensors");
        if !state.exists() {
            return 0;
        }
        TrainState::load(&state).map_or(0, |s| s.meta.epoch)
    }
}

impl Job for TrainJob {
    fn name(&self) -> &str {
        &self.name
    }

    /// The last checkpoint has every epoch, and so has `metrics.jsonl`, the last file an epoch
    /// writes (after the state and the weights): a process killed between those writes leaves a
    /// run that is not done yet.
    fn is_done(&self) -> bool {
        let epochs = self.config.run.epochs;
        self.epochs_done() >= epochs
            && read_history(&self.dir()).is_ok_and(|rows| rows.len() >= epochs)
    }

    fn run(&self, quiet: bool) -> Result<()> {
        let mut session = Session::prepare(&self.config, self.mode, true)?;
        // A run whose state has every epoch but whose last files were cut short: resuming trains
        // nothing and rewrites the metrics; the weights come from the restored state here.
        let trained = session.epochs_done() >= self.config.run.epochs;
        session
            .run(&mut Progress::new(quiet))
            .with_context(|| format!("run {}", self.dir().display()))?;
        if trained {
            let path = session.dir().weights("last");
            kd_core::checkpoint::save_safetensors_for_pytorch(session.student_vars(), &path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// Which jobs this process runs: position modulo `count` equal to `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl Shard {
    /// The whole study.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/n` with 0 ≤ i < n.
    pub fn parse(text: &str) -> Result<Shard> {
        let (i, n) = text
            .split_once('/')
            .with_context(|| format!("--shard '{text}': expected i/n, e.g. 0/4"))?;
        let index: usize = i
            .trim()
            .parse()
            .with_context(|| format!("--shard '{text}': '{i}' is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .with_context(|| format!("--shard '{text}': '{n}' is not a number"))?;
        if count == 0 || index >= count {
            bail!("--shard '{text}': expected 0 ≤ i < n (shards are numbered from 0)");
        }
        Ok(Shard { index, count })
    }

    /// Whether the job at `position` is this shard's.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

/// What a pass of the runner did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progressed {
    /// Jobs run to completion now.
    pub ran: Vec<String>,
    /// Jobs found finished.
    pub done: Vec<String>,
    /// Jobs of other shards.
    pub others: Vec<String>,
    /// Jobs that wait for an unfinished job, with what they wait for.
    pub waiting: Vec<(String, String)>,
}

/// Runs the shard's unfinished jobs in order. A job that waits for another is retried after the
/// rest, in case this pass finished what it needs.
pub fn run_jobs(jobs: &[Box<dyn Job>], shard: Shard, quiet: bool) -> Result<Progressed> {
    let mut out = Progressed::default();
    let mut deferred = Vec::new();
    for (position, job) in jobs.iter().enumerate() {
        if !shard.owns(position) {
            out.others.push(job.name().to_string());
        } else if job.is_done() {
            out.done.push(job.name().to_string());
        } else if job.waits_for().is_some() {
            deferred.push(job);
        } else {
            if !quiet {
                println!("\n== {} ({} of {})", job.name(), position + 1, jobs.len());
            }
            job.run(quiet)
                .with_context(|| format!("study job {}", job.name()))?;
            out.ran.push(job.name().to_string());
        }
    }
    for job in deferred {
        match job.waits_for() {
            Some(need) => out.waiting.push((job.name().to_string(), need)),
            None => {
                if !quiet {
                    println!("\n== {}", job.name());
                }
                job.run(quiet)
                    .with_context(|| format!("study job {}", job.name()))?;
                out.ran.push(job.name().to_string());
            }
        }
    }
    Ok(out)
}

/// A study file split into its `[study]` section and the run config every job starts from.
#[derive(Debug, Clone)]
pub struct StudyFile {
    /// The `[study]` table.
    pub study: toml::Table,
    /// The other sections, resolved as a run config.
    pub base: RunConfig,
    /// The other sections as written (jobs layer their own keys over them).
    pub base_text: String,
    /// Where it came from.
    pub origin: String,
}

impl StudyFile {
    /// Reads `path` with `overrides` (`--set`, applied to the base run config).
    pub fn read(path: &Path, overrides: &[String]) -> Result<StudyFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read study config {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// Parses the text of a study file.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<StudyFile> {
        let mut table: toml::Table = text
            .parse()
            .with_context(|| format!("{origin}: not valid TOML"))?;
        let study = match table.remove("study") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => bail!("{origin}: [study] must be a table"),
            None => bail!("{origin}: no [study] section (kind, name, …)"),
        };
        let base_text = toml::to_string(&table)?;
        let base = ConfigSource {
            file: Some((origin.to_string(), base_text.clone())),
            preset: None,
            overrides: overrides.to_vec(),
        }
        .resolve()?;
        Ok(StudyFile {
            study,
            base: base.clone(),
            base_text: base.to_toml(),
            origin: origin.to_string(),
        })
    }

    /// The base config with `overrides` on top (each job's own keys).
    pub fn job_config(&self, overrides: Vec<String>) -> Result<RunConfig> {
        Ok(ConfigSource {
            file: Some((self.origin.clone(), self.base_text.clone())),
            preset: None,
            overrides,
        }
        .resolve()?)
    }
}

/// A key of `[study]`, typed, with a default; the error names the key.
pub fn study_key<T: serde::de::DeserializeOwned>(
    study: &toml::Table,
    key: &str,
    default: T,
) -> Result<T> {
    match study.get(key) {
        None => Ok(default),
        Some(v) => v
            .clone()
            .try_into()
            .with_context(|| format!("study.{key} = {v}: wrong type")),
    }
}

/// Rejects `[study]` keys that `known` does not list, naming the nearest.
pub fn check_study_keys(study: &toml::Table, known: &[&str], origin: &str) -> Result<()> {
    for key in study.keys() {
        if !known.contains(&key.as_str()) {
            let hint = kd_augment::pipeline::closest(key, known)
                .map(|c| format!("; did you mean '{c}'?"))
                .unwrap_or_default();
            bail!(
                "{origin}: unknown key 'study.{key}'{hint} (valid: {})",
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// The shard `--shard` names, or the whole study.
pub fn shard_arg(args: &kd_cli::cli::StudyArgs) -> Result<Shard> {
    match &args.shard {
        Some(s) => Shard::parse(s),
        None => Ok(Shard::ALL),
    }
}

/// Writes `<dir>/study.toml` (the `[study]` section and the resolved base config), so that
/// `kd study report DIR` finds the layout again.
pub fn save_layout(dir: &Path, file: &StudyFile) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut text = String::from("[study]\n");
    text.push_str(&toml::to_string(&file.study)?);
    text.push('\n');
    text.push_str(&file.base_text);
    kd_core::train::state::write_atomic(&dir.join("study.toml"), text.as_bytes())?;
    Ok(())
}

/// Prints what a pass of the runner did.
pub fn print_pass(dir: &Path, p: &Progressed) {
    println!(
        "study {}: {} jobs run now, {} already done, {} for other shards{}",
        dir.display(),
        p.ran.len(),
        p.done.len(),
        p.others.len(),
        if p.waiting.is_empty() {
            String::new()
        } else {
            format!(
                ", {} waiting ({})",
                p.waiting.len(),
                p.waiting
                    .iter()
                    .map(|(j, n)| format!("{j} needs {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
}

/// Fails unless `layout_dir` (where a study's `study.toml` says it lives) is `dir`: the layout
/// is relative to the directory the study was started in.
pub fn check_location(layout_dir: &Path, dir: &Path) -> Result<()> {
    let same = match (
        std::fs::canonicalize(layout_dir),
        std::fs::canonicalize(dir),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        bail!(
            "{} says the study lives in {}; run `kd study report` from the directory it was started in",
            dir.join("study.toml").display(),
            layout_dir.display()
        );
    }
    Ok(())
}

/// A kind of study: its layout of jobs from a study file, and its analysis. [`run`],
/// [`run_args`] and [`report_dir`] drive every kind the same way.
pub trait Study: Sized {
    /// Lays out the study `file` describes.
    fn layout(file: StudyFile) -> Result<Self>;
    /// The study's directory.
    fn dir(&self) -> &Path;
    /// The file it was laid out from.
    fn file(&self) -> &StudyFile;
    /// Its jobs, in the order the runner (and `--shard`) sees them.
    fn job_list(study: &Rc<Self>) -> Vec<Box<dyn Job>>;
    /// Writes the analysis from whatever jobs have finished.
    fn write_report(&self) -> Result<()>;
}

/// Runs the shard's part of a study, then writes the report from what exists.
pub fn run<S: Study>(file: StudyFile, shard: Shard, quiet: bool) -> Result<()> {
    let study = Rc::new(S::layout(file)?);
    save_layout(study.dir(), study.file())?;
    let p = run_jobs(&S::job_list(&study), shard, quiet)?;
    print_pass(study.dir(), &p);
    study.write_report()
}

/// `kd study <kind>`: reads the file and the shard, then [`run`].
pub fn run_args<S: Study>(args: &kd_cli::cli::StudyArgs, quiet: bool) -> Result<()> {
    run::<S>(
        StudyFile::read(&args.config, &args.set)?,
        shard_arg(args)?,
        quiet,
    )
}

/// Rebuilds the report of the study in `dir` from its layout `file` (its `study.toml`).
fn report_from<S: Study>(dir: &Path, file: StudyFile) -> Result<()> {
    let study = S::layout(file)?;
    check_location(study.dir(), dir)?;
    study.write_report()
}

/// `kd study report DIR`: rebuilds the report of the study in `dir`, whatever its kind.
pub fn report_dir(dir: &Path) -> Result<()> {
    let file = StudyFile::read(&dir.join("study.toml"), &[])?;
    let kind: String = study_key(&file.study, "kind", String::new())?;
    match kind.as_str() {
        "good-da" => report_from::<good_da::GoodDa>(dir, file),
        "kd-grid" => report_from::<kd_grid::KdGrid>(dir, file),
        "data-amount" => report_from::<data_amount::DataAmount>(dir, file),
        other => bail!(
            "{}: study.kind = \"{other}\" (known: good-da, kd-grid, data-amount)",
            dir.join("study.toml").display()
        ),
    }
}

/// Every row of a run's `metrics.jsonl`, in order.
pub fn read_history(dir: &Path) -> Result<Vec<EpochRow>> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).with_context(|| format!("{}: bad line", path.display()))
        })
        .collect()
}

/// The last row of a run's `metrics.jsonl`.
pub fn read_last_row(dir: &Path) -> Result<Option<EpochRow>> {
    Ok(read_history(dir)?.pop())
}

/// A number as it appears in a run's name: `0.1`, `1`, `inf`.
pub fn name_number(v: f64) -> String {
    if v.is_infinite() {
        "inf".into()
    } else {
        format!("{v}")
    }
}

/// A number as a TOML value for `--set`: `0.1`, `1.0`, `inf` (always a float).
pub fn toml_number(v: f64) -> String {
    format!("{v:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct Fake {
        name: String,
        done: RefCell<bool>,
        needs: Option<std::rc::Rc<Fake>>,
    }

    impl Job for std::rc::Rc<Fake> {
        fn name(&self) -> &str {
            &self.name
        }
        fn is_done(&self) -> bool {
            *self.done.borrow()
        }
        fn waits_for(&self) -> Option<String> {
            self.needs
                .as_ref()
                .filter(|n| !n.is_done())
                .map(|n| n.name.clone())
        }
        fn run(&self, _quiet: bool) -> Result<()> {
            *self.done.borrow_mut() = true;
            Ok(())
        }
    }

    fn fake(name: &str, needs: Option<std::rc::Rc<Fake>>) -> std::rc::Rc<Fake> {
        std::rc::Rc::new(Fake {
            name: name.into(),
            done: RefCell::new(false),
            needs,
        })
    }

    #[test]
    fn shards_split_by_position_and_together_cover_everything() {
        let names: Vec<String> = (0..7).map(|i| format!("j{i}")).collect();
        let mut covered = Vec::new();
        for index in 0..3 {
            let jobs: Vec<Box<dyn Job>> = names
                .iter()
                .map(|n| Box::new(fake(n, None)) as Box<dyn Job>)
                .collect();
            let p = run_jobs(&jobs, Shard { index, count: 3 }, true).unwrap();
            assert_eq!(p.ran.len() + p.others.len(), 7);
            covered.extend(p.ran);
        }
        covered.sort();
        assert_eq!(covered, names);
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        assert!(Shard::parse("3/3").is_err() && Shard::parse("x/3").is_err());
    }

    #[test]
    fn finished_jobs_are_skipped_and_dependencies_wait() {
        let first = fake("first", None);
        let second = fake("second", Some(first.clone()));
        // The dependent job comes first in the list; it runs after the one it needs.
        let jobs: Vec<Box<dyn Job>> = vec![Box::new(second.clone()), Box::new(first.clone())];
        let p = run_jobs(&jobs, Shard::ALL, true).unwrap();
        assert_eq!(p.ran, vec!["first", "second"]);
        let p = run_jobs(&jobs, Shard::ALL, true).unwrap();
        assert!(p.ran.is_empty() && p.done.len() == 2);
        // In another shard the dependency is not run here: the job waits.
        let a = fake("a", None);
        let b = fake("b", Some(a.clone()));
        let jobs: Vec<Box<dyn Job>> = vec![Box::new(a.clone()), Box::new(b.clone())];
        let p = run_jobs(&jobs, Shard { index: 1, count: 2 }, true).unwrap();
        assert_eq!(p.waiting, vec![("b".to_string(), "a".to_string())]);
    }

    #[test]
    fn every_shipped_study_lays_out() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut kinds = Vec::new();
        for sub in std::fs::read_dir(&root).unwrap() {
            let sub = sub.unwrap().path();
            if !sub.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&sub).unwrap() {
                let f = f.unwrap().path();
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                if f.extension().is_none_or(|e| e != "toml") || !text.contains("[study]") {
                    continue;
                }
                let file = StudyFile::read(&f, &[]).unwrap();
                let kind: String = study_key(&file.study, "kind", String::new()).unwrap();
                let laid_out = match kind.as_str() {
                    "good-da" => good_da::GoodDa::new(file).map(|s| s.runs.len()),
                    "kd-grid" => kd_grid::KdGrid::new(file).map(|s| s.cells.len()),
                    "data-amount" => data_amount::DataAmount::new(file).map(|s| s.runs.len()),
                    other => panic!("{}: kind {other}", f.display()),
                };
                let runs = laid_out.unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
                assert!(runs > 0, "{}", f.display());
                kinds.push(kind);
            }
        }
        for kind in ["good-da", "kd-grid", "data-amount"] {
            assert!(kinds.iter().any(|k| k == kind), "no shipped {kind} study");
        }
    }

    #[test]
    fn study_files_split_and_check_keys() {
        let text = "[study]\nkind = \"good-da\"\nseeds = [1, 2]\n[model]\nstudent = \"resnet8\"\n";
        let f = StudyFile::parse(text, "s.toml", &["run.epochs=3".into()]).unwrap();
        assert_eq!(f.base.model.student, "resnet8");
        assert_eq!(f.base.run.epochs, 3);
        assert_eq!(
            study_key::<Vec<u64>>(&f.study, "seeds", vec![]).unwrap(),
            vec![1, 2]
        );
        let c = f.job_config(vec!["run.seed=7".into()]).unwrap();
        assert_eq!((c.run.seed, c.run.epochs), (7, 3));
        let e = check_study_keys(&f.study, &["kind", "sedes"], "s.toml").unwrap_err();
        assert!(e.to_string().contains("study.seeds"), "{e}");
        assert!(StudyFile::parse("[model]\n", "s.toml", &[]).is_err());
        let e = study_key::<Vec<u64>>(&f.study, "kind", vec![]).unwrap_err();
        assert!(format!("{e:#}").contains("study.kind"), "{e:#}");
    }
}
