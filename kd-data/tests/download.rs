//! The downloader against a small HTTP/1.1 server on the loopback interface: full downloads,
//! interrupted and resumed transfers, servers without `Range`, bad md5s, HTTP errors, idempotent
//! calls and hostile archives. Every server stops by itself and every test takes well under 2 s.

use kd_augment::rng::Rng;
use kd_data::DataError;
use kd_data::download::{
    DatasetId, DownloadOptions, DownloadReport, FileAction, FileSpec, Progress, Source, Unpack,
    download, download_source,
};
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The test server

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    range: Option<String>,
}

/// What the server answers.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close the connection after this many body bytes although `Content-Length` promised more.
    cut_after: Option<usize>,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: b"no".to_vec(),
            cut_after: None,
        }
    }

    /// The whole of `bytes` with 200, whatever the request asked for.
    fn whole(bytes: &[u8]) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: bytes.to_vec(),
            cut_after: None,
        }
    }

    /// `bytes`, honouring a `Range: bytes=N-` request with 206 (or 416 past the end).
    fn ranged(bytes: &[u8], seen: &Seen) -> Reply {
        let len = bytes.len();
        let Some(start) = seen.range.as_deref().and_then(range_start) else {
            return Reply::whole(bytes);
        };
        if start >= len {
            let mut reply = Reply::status(416);
            reply
                .headers
                .push(("Content-Range".into(), format!("bytes */{len}")));
            return reply;
        }
        let range = format!("bytes {start}-{}/{len}", len - 1);
        Reply {
            status: 206,
            headers: vec![("Content-Range".into(), range)],
            body: bytes[start..].to_vec(),
            cut_after: None,
        }
    }

    /// This reply, cut after half of its body.
    fn cut_in_half(mut self) -> Reply {
        self.cut_after = Some(self.body.len() / 2);
        self
    }
}

fn range_start(range: &str) -> Option<usize> {
    range
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

type Handler = Box<dyn Fn(&Seen, usize) -> Reply + Send>;

/// Serves one request per connection on 127.0.0.1 until dropped, or for 10 s at most.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// `handler` gets each request and its index (0 for the first).
    fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        let handler: Handler = Box::new(handler);
        let thread = std::thread::spawn(move || serve(listener, handler, seen2, stop2));
        Server {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URL `http://127.0.0.1:PORT/dir/`.
    fn url(&self, dir: &str) -> String {
        format!("http://127.0.0.1:{}/{dir}/", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: TcpListener,
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let index = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(request.clone());
                    seen.len() - 1
                };
                write_reply(stream, handler(&request, index));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(_) => return,
        }
    }
}

fn read_request(mut stream: &TcpStream) -> Option<Seen> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.lines().next()?.split(' ').nth(1)?.to_string();
    let range = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("range")
            .then(|| value.trim().to_string())
    });
    Some(Seen { path, range })
}

fn write_reply(mut stream: TcpStream, reply: Reply) {
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let sent = reply.cut_after.unwrap_or(reply.body.len());
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&reply.body[..sent]));
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A small `.tar.gz` shaped like CIFAR-10's python archive (the content is random bytes).
struct Fixture {
    bytes: Vec<u8>,
    md5: String,
    members: Vec<(PathBuf, Vec<u8>)>,
}

const ARCHIVE: &str = "fixture.tar.gz";

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn gzip(tar: Vec<u8>) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn cifar_like() -> Fixture {
    let members: Vec<(PathBuf, Vec<u8>)> = [
        ("data_batch_1", 40_000),
        ("test_batch", 20_000),
        ("batches.meta", 100),
    ]
    .iter()
    .enumerate()
    .map(|(i, (name, len))| {
        (
            Path::new("cifar-10-batches-py").join(name),
            random_bytes(i as u64, *len),
        )
    })
    .collect();
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "cifar-10-batches-py/", std::io::empty())
        .unwrap();
    for (path, data) in &members {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, path, data.as_slice()).unwrap();
    }
    let bytes = gzip(tar.into_inner().unwrap());
    Fixture {
        md5: md5_hex(&bytes),
        bytes,
        members,
    }
}

/// A `.tar.gz` with one entry whose raw name, type and link target are written as given,
/// bypassing the tar crate's own checks (that is what an attacker's tool would do).
fn hostile_archive(name: &[u8], kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_mode(0o644);
    let data: &[u8] = if kind.is_file() { b"pwned" } else { b"" };
    header.set_size(data.len() as u64);
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    header.set_cksum();
    tar.append(&header, data).unwrap();
    gzip(tar.into_inner().unwrap())
}

/// A source of one archive served from `base`, unpacking to the members of `fx`.
fn archive_source(base: String, md5: &str, fx: &Fixture) -> Source {
    let expect = fx.members.iter().map(|(p, _)| p.clone()).collect();
    Source {
        name: "fixture".into(),
        mirrors: vec![base],
        dir: PathBuf::new(),
        data_dir: PathBuf::from("cifar-10-batches-py"),
        files: vec![FileSpec::new(ARCHIVE, md5, Unpack::TarGz { expect })],
    }
}

fn options(root: &Path) -> DownloadOptions {
    DownloadOptions {
        max_retries: 2,
        retry_delay: Duration::ZERO,
        ..DownloadOptions::new(root)
    }
}

fn assert_unpacked(root: &Path, fx: &Fixture) {
    for (path, data) in &fx.members {
        let got =
            std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            got == *data,
            "{} differs from the archive's member",
            path.display()
        );
    }
}

fn only_action(report: &DownloadReport) -> &FileAction {
    assert_eq!(report.files.len(), 1);
    &report.files[0].action
}

fn part(root: &Path) -> PathBuf {
    root.join(format!("{ARCHIVE}.part"))
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn full_download_verifies_unpacks_reports_progress_and_removes_the_archive() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, _| Reply::ranged(&served.bytes, seen));
    let dir = tempfile::tempdir().unwrap();
    let progress = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&progress);
    let opts = DownloadOptions {
        progress: Some(Box::new(move |p: Progress<'_>| {
            sink.lock()
                .unwrap()
                .push((p.file.to_string(), p.done, p.total))
        })),
        ..options(dir.path())
    };

    let report = download_source(&archive_source(server.url("data"), &fx.md5, &fx), &opts).unwrap();

    let len = fx.bytes.len() as u64;
    let url = format!("{}{ARCHIVE}", server.url("data"));
    assert_eq!(
        *only_action(&report),
        FileAction::Downloaded {
            url,
            resumed_from: 0,
            received: len,
            retries: 0
        }
    );
    assert_eq!(report.data_dir, dir.path().join("cifar-10-batches-py"));
    assert_unpacked(dir.path(), &fx);
    assert!(!dir.path().join(ARCHIVE).exists() && !part(dir.path()).exists());
    let seen = server.seen();
    assert_eq!(
        (seen.len(), seen[0].path.as_str(), seen[0].range.as_deref()),
        (1, "/data/fixture.tar.gz", None)
    );
    let progress = progress.lock().unwrap();
    assert_eq!(
        progress.last().unwrap(),
        &(ARCHIVE.to_string(), len, Some(len))
    );
    assert!(
        progress.windows(2).all(|w| w[0].1 <= w[1].1),
        "progress must not go backwards"
    );
}

#[test]
fn interrupted_transfer_is_resumed_with_a_range_request() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, i| {
        let reply = Reply::ranged(&served.bytes, seen);
        if i == 0 { reply.cut_in_half() } else { reply }
    });
    let dir = tempfile::tempdir().unwrap();

    let report = download_source(
        &archive_source(server.url("data"), &fx.md5, &fx),
        &options(dir.path()),
    )
    .unwrap();

    let half = fx.bytes.len() / 2;
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].range.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );
    let FileAction::Downloaded {
        received,
        retries,
        resumed_from,
        ..
    } = only_action(&report)
    else {
        panic!("{report}")
    };
    assert_eq!(
        (*received, *retries, *resumed_from),
        (fx.bytes.len() as u64, 1, 0)
    );
    assert_unpacked(dir.path(), &fx);
}

#[test]
fn part_file_from_a_previous_run_is_resumed() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, _| Reply::ranged(&served.bytes, seen));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(part(dir.path()), &fx.bytes[..1000]).unwrap();

    let report = download_source(
        &archive_source(server.url("data"), &fx.md5, &fx),
        &options(dir.path()),
    )
    .unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].range.as_deref(), Some("bytes=1000-"));
    let FileAction::Downloaded {
        received,
        resumed_from,
        ..
    } = only_action(&report)
    else {
        panic!("{report}")
    };
    assert_eq!(
        (*resumed_from, *received),
        (1000, fx.bytes.len() as u64 - 1000)
    );
    assert_unpacked(dir.path(), &fx);
}

#[test]
fn complete_part_file_answered_416_is_verified_without_a_body() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, _| Reply::ranged(&served.bytes, seen));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(part(dir.path()), &fx.bytes).unwrap();

    let report = download_source(
        &archive_source(server.url("data"), &fx.md5, &fx),
        &options(dir.path()),
    )
    .unwrap();

    assert_eq!(
        server.seen()[0].range.as_deref(),
        Some(format!("bytes={}-", fx.bytes.len()).as_str())
    );
    let FileAction::Downloaded { received, .. } = only_action(&report) else {
        panic!("{report}")
    };
    assert_eq!(*received, 0);
    assert_unpacked(dir.path(), &fx);
}

#[test]
fn server_ignoring_range_makes_the_download_restart_from_zero() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |_, _| Reply::whole(&served.bytes));
    let dir = tempfile::tempdir().unwrap();
    // Not a prefix of the file: appending the 200 body to it would fail the md5.
    std::fs::write(part(dir.path()), random_bytes(99, 1000)).unwrap();

    let report = download_source(
        &archive_source(server.url("data"), &fx.md5, &fx),
        &options(dir.path()),
    )
    .unwrap();

    assert_eq!(server.seen()[0].range.as_deref(), Some("bytes=1000-"));
    let FileAction::Downloaded {
        received,
        resumed_from,
        ..
    } = only_action(&report)
    else {
        panic!("{report}")
    };
    assert_eq!((*resumed_from, *received), (0, fx.bytes.len() as u64));
    assert_unpacked(dir.path(), &fx);
}

#[test]
fn wrong_md5_is_a_checksum_error_and_leaves_no_file_behind() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, _| Reply::ranged(&served.bytes, seen));
    let dir = tempfile::tempdir().unwrap();
    let wrong = "0123456789abcdef0123456789abcdef";

    let err = download_source(
        &archive_source(server.url("data"), wrong, &fx),
        &options(dir.path()),
    )
    .unwrap_err();

    let message = err.to_string();
    let DataError::Checksum {
        path,
        expected,
        actual,
    } = err
    else {
        panic!("expected a checksum error, got {message}")
    };
    assert_eq!(
        (path, expected.as_str(), actual.as_str()),
        (dir.path().join(ARCHIVE), wrong, fx.md5.as_str())
    );
    assert!(
        message.contains(ARCHIVE) && message.contains(wrong) && message.contains(&fx.md5),
        "{message}"
    );
    assert_eq!(server.seen().len(), 1, "a wrong md5 is not retried");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no .part, archive or unpacked file may remain"
    );
}

#[test]
fn not_found_is_a_network_error_naming_the_url_and_status() {
    let server = Server::start(|_, _| Reply::status(404));
    let dir = tempfile::tempdir().unwrap();
    let fx = cifar_like();

    let err = download_source(
        &archive_source(server.url("data"), &fx.md5, &fx),
        &options(dir.path()),
    )
    .unwrap_err();

    let DataError::Network { url, reason } = err else {
        panic!("expected a network error, got {err}")
    };
    assert_eq!(url, format!("{}{ARCHIVE}", server.url("data")));
    assert!(reason.contains("404"), "{reason}");
    assert_eq!(server.seen().len(), 1, "a 404 is not retried");
    assert!(!part(dir.path()).exists() && !dir.path().join(ARCHIVE).exists());
}

#[test]
fn server_error_is_retried() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, i| {
        if i == 0 {
            Reply::status(503)
        } else {
            Reply::ranged(&served.bytes, seen)
        }
    });
    let dir = tempfile::tempdir().unwrap();

    let report = download_source(
        &archive_source(server.url("data"), &fx.md5, &fx),
        &options(dir.path()),
    )
    .unwrap();

    let FileAction::Downloaded { retries, .. } = only_action(&report) else {
        panic!("{report}")
    };
    assert_eq!((*retries, server.seen().len()), (1, 2));
    assert_unpacked(dir.path(), &fx);
}

#[test]
fn retries_stop_after_max_retries_and_keep_the_part_for_later() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, _| Reply::ranged(&served.bytes, seen).cut_in_half());
    let dir = tempfile::tempdir().unwrap();

    let err = download_source(
        &archive_source(server.url("data"), &fx.md5, &fx),
        &options(dir.path()),
    )
    .unwrap_err();

    let DataError::Network { reason, .. } = &err else {
        panic!("expected a network error, got {err}")
    };
    assert!(reason.contains("connection lost"), "{reason}");
    assert_eq!(
        server.seen().len(),
        3,
        "one attempt and max_retries = 2 retries"
    );
    let kept = std::fs::read(part(dir.path())).unwrap();
    assert!(
        kept.len() > fx.bytes.len() / 2 && fx.bytes.starts_with(&kept),
        "the .part must be a growing prefix"
    );
    assert!(!dir.path().join(ARCHIVE).exists());
}

#[test]
fn next_mirror_is_tried_when_the_first_fails() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, _| {
        if seen.path.starts_with("/a/") {
            Reply::status(404)
        } else {
            Reply::ranged(&served.bytes, seen)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut source = archive_source(server.url("a"), &fx.md5, &fx);
    source.mirrors.push(server.url("b"));

    let report = download_source(&source, &options(dir.path())).unwrap();

    let FileAction::Downloaded { url, .. } = only_action(&report) else {
        panic!("{report}")
    };
    assert_eq!(*url, format!("{}{ARCHIVE}", server.url("b")));
    assert_eq!(server.seen().len(), 2);
    assert_unpacked(dir.path(), &fx);
}

#[test]
fn second_call_sends_no_request() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, _| Reply::ranged(&served.bytes, seen));
    let dir = tempfile::tempdir().unwrap();
    let source = archive_source(server.url("data"), &fx.md5, &fx);
    download_source(&source, &options(dir.path())).unwrap();

    let report = download_source(&source, &options(dir.path())).unwrap();

    assert!(report.nothing_to_do(), "{report}");
    assert_eq!(*only_action(&report), FileAction::AlreadyPresent);
    assert_eq!(server.seen().len(), 1);
    assert_unpacked(dir.path(), &fx);
}

#[test]
fn kept_archive_with_the_right_md5_is_only_unpacked() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, _| Reply::ranged(&served.bytes, seen));
    let dir = tempfile::tempdir().unwrap();
    let source = archive_source(server.url("data"), &fx.md5, &fx);
    let opts = DownloadOptions {
        keep_archive: true,
        ..options(dir.path())
    };
    download_source(&source, &opts).unwrap();
    assert_eq!(std::fs::read(dir.path().join(ARCHIVE)).unwrap(), fx.bytes);
    std::fs::remove_dir_all(dir.path().join("cifar-10-batches-py")).unwrap();

    let report = download_source(&source, &options(dir.path())).unwrap();

    assert_eq!(*only_action(&report), FileAction::UnpackedExisting);
    assert_eq!(server.seen().len(), 1);
    assert_unpacked(dir.path(), &fx);
    assert!(
        dir.path().join(ARCHIVE).exists(),
        "an archive that was already there stays"
    );
}

#[test]
fn kept_files_land_in_the_source_directory_unchanged() {
    let body = Arc::new(random_bytes(7, 5000));
    let served = Arc::clone(&body);
    let server = Server::start(move |seen, _| Reply::ranged(&served, seen));
    let dir = tempfile::tempdir().unwrap();
    let source = Source {
        name: "idx".into(),
        mirrors: vec![server.url("m")],
        dir: PathBuf::from("mnist"),
        data_dir: PathBuf::from("mnist"),
        files: vec![FileSpec::new(
            "train-labels-idx1-ubyte.gz",
            md5_hex(&body),
            Unpack::Keep,
        )],
    };

    download_source(&source, &options(dir.path())).unwrap();
    let again = download_source(&source, &options(dir.path())).unwrap();

    assert_eq!(
        std::fs::read(dir.path().join("mnist/train-labels-idx1-ubyte.gz")).unwrap(),
        *body
    );
    assert!(again.nothing_to_do());
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn catalogue_urls_follow_the_base_url_override() {
    let server = Server::start(|_, _| Reply::status(404));
    let dir = tempfile::tempdir().unwrap();
    let opts = DownloadOptions {
        base_url: Some(server.url("mirror")),
        ..options(dir.path())
    };

    let err = download(DatasetId::Mnist, &opts).unwrap_err();

    let DataError::Network { url, .. } = err else {
        panic!("expected a network error, got {err}")
    };
    assert_eq!(
        url,
        format!("{}train-images-idx3-ubyte.gz", server.url("mirror"))
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "the override replaces every mirror");
    assert_eq!(seen[0].path, "/mirror/train-images-idx3-ubyte.gz");
}

#[test]
fn corrupt_archive_with_matching_md5_is_a_format_error() {
    let bytes = Arc::new(random_bytes(3, 3000));
    let served = Arc::clone(&bytes);
    let server = Server::start(move |seen, _| Reply::ranged(&served, seen));
    let dir = tempfile::tempdir().unwrap();
    let fx = cifar_like();

    let err = download_source(
        &archive_source(server.url("data"), &md5_hex(&bytes), &fx),
        &options(dir.path()),
    )
    .unwrap_err();

    let DataError::Format { path, what } = err else {
        panic!("expected a format error, got {err}")
    };
    assert_eq!(path, dir.path().join(ARCHIVE));
    assert!(what.contains("tar.gz"), "{what}");
    assert!(!dir.path().join("cifar-10-batches-py").exists());
}

#[test]
fn archive_missing_an_expected_file_is_rejected() {
    let fx = Arc::new(cifar_like());
    let served = Arc::clone(&fx);
    let server = Server::start(move |seen, _| Reply::ranged(&served.bytes, seen));
    let dir = tempfile::tempdir().unwrap();
    let mut source = archive_source(server.url("data"), &fx.md5, &fx);
    source.files[0].unpack = Unpack::TarGz {
        expect: vec![PathBuf::from("cifar-10-batches-py/data_batch_5")],
    };

    let err = download_source(&source, &options(dir.path())).unwrap_err();

    let DataError::Format { path, what } = err else {
        panic!("expected a format error, got {err}")
    };
    assert_eq!(path, dir.path().join(ARCHIVE));
    assert!(what.contains("data_batch_5"), "{what}");
}

/// Serves `archive` into `<tmp>/root` and checks it is refused, naming `entry`, with nothing
/// written outside the root nor left in it but the verified archive.
fn assert_refused(archive: Vec<u8>, entry: &str, outside: &Path) {
    let archive = Arc::new(archive);
    let served = Arc::clone(&archive);
    let server = Server::start(move |seen, _| Reply::ranged(&served, seen));
    let root = outside.join("root");
    let fx = cifar_like();

    let err = download_source(
        &archive_source(server.url("data"), &md5_hex(&archive), &fx),
        &options(&root),
    )
    .unwrap_err();

    let DataError::Format { path, what } = err else {
        panic!("expected a format error, got {err}")
    };
    assert_eq!(path, root.join(ARCHIVE));
    assert!(what.contains("refusing") && what.contains(entry), "{what}");
    assert!(
        !outside.join("evil.txt").exists(),
        "the entry escaped the root"
    );
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [ARCHIVE], "only the verified archive may remain");
}

#[test]
fn archive_entry_with_dot_dot_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert_refused(
        hostile_archive(b"../evil.txt", tar::EntryType::Regular, None),
        "../evil.txt",
        tmp.path(),
    );
}

#[test]
fn archive_entry_with_absolute_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let absolute = tmp.path().join("evil.txt");
    let name = absolute.to_str().unwrap();
    assert_refused(
        hostile_archive(name.as_bytes(), tar::EntryType::Regular, None),
        name,
        tmp.path(),
    );
}

#[test]
fn archive_symlink_entry_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let link = Some(tmp.path().to_str().unwrap());
    assert_refused(
        hostile_archive(b"cifar-10-batches-py", tar::EntryType::Symlink, link),
        "cifar-10-batches-py",
        tmp.path(),
    );
}
