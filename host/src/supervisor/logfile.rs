//! The per-process log file `<log_dir>/<name>.log`: the bytes the child
//! wrote, as it wrote them, rotated by size into generations `.1` (newest)
//! to `.N` (oldest), old generations optionally gzip-compressed (`.N.gz`);
//! and reading every generation back, oldest first.
//!
//! Writes are whole chunks as read from the pipe (no per-line work), cut at
//! a line end when a rotation falls inside them, so a line only spans two
//! files when it is longer than a whole file. Compression runs on a thread
//! of its own, never in the reader that drains the pipe: a rotation only
//! renames. The compressor finds its file again by inode after compressing,
//! since further rotations may have shifted it meanwhile (or dropped it).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::Stream;
use parking_lot::Mutex;

/// Renames in any generation chain happen under this lock (rotations are
/// rare, every `max_bytes`, and the lock is held only for renames).
static CHAIN: Mutex<()> = Mutex::new(());
/// Logs whose compressor thread is running. Taken before [`CHAIN`].
static COMPRESSING: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Opens `path` for appending, creating it if missing.
fn append_to(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// How a log file rotates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogPolicy {
    /// Size at which the live file becomes generation `.1`.
    pub max_bytes: u64,
    /// Rotated generations kept (`.1` to `.N`); 0 keeps only the live file.
    pub generations: u32,
    /// Gzip rotated generations (`.N.gz`).
    pub compress: bool,
}

/// The live log file of one process, appended to by its output readers.
pub(crate) struct LogFile {
    path: PathBuf,
    /// Unbuffered: writes are whole pipe reads already, and a `tail -f` of
    /// the file sees a line as soon as it is read. Opened at the first
    /// write: a process that never writes holds no descriptor (every open
    /// descriptor of the host is copied into, and closed by, each child it
    /// spawns, so a thousand idle logs made each spawn slower).
    file: Option<File>,
    size: u64,
    policy: LogPolicy,
}

impl LogFile {
    /// Creates the log file's folder if missing; a folder that cannot be
    /// written in, or a path that is not a file, is an error now, at the
    /// spawn, not at the first write. The file is created at the first
    /// write: a process that never writes leaves none (readers take a
    /// missing live file as empty).
    pub(crate) fn open(path: PathBuf, policy: LogPolicy) -> io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
            // A folder we cannot write in fails the spawn, as creating the
            // file did; the file itself is made at the first write (making
            // a thousand empty files was a tenth of starting a thousand
            // idle processes).
            nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).map_err(io::Error::from)?;
        }
        let size = match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a file",
                    path.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(LogFile {
            path,
            file: None,
            size,
            policy: LogPolicy {
                max_bytes: policy.max_bytes.max(1),
                ..policy
            },
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes`, rotating first when they would take the file past
    /// its size: at the last line end that still fits, or, for a line
    /// longer than a whole file, in the middle of that line.
    pub(crate) fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = self.policy.max_bytes.saturating_sub(self.size);
            if bytes.len() as u64 <= room {
                return self.append(bytes);
            }
            let room = room as usize;
            match memchr::memrchr(b'\n', &bytes[..room]) {
                Some(i) => {
                    self.append(&bytes[..=i])?;
                    bytes = &bytes[i + 1..];
                }
                None if self.size == 0 => {
                    self.append(&bytes[..room])?;
                    bytes = &bytes[room..];
                }
                None => {}
            }
            if !bytes.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(append_to(&self.path)?),
        };
        file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// The live file becomes `.1`, every generation moves up one, the one
    /// past the limit is removed, and a new live file is opened.
    fn rotate(&mut self) -> io::Result<()> {
        {
            let _chain = CHAIN.lock();
            let limit = self.policy.generations;
            // Also generations left by an earlier, larger setting.
            let mut n = limit.max(1);
            while remove_generation(&self.path, n)? {
                n += 1;
            }
            for n in (1..limit).rev() {
                for gz in [false, true] {
                    let from = generation(&self.path, n, gz);
                    if from.exists() {
                        fs::rename(&from, generation(&self.path, n + 1, gz))?;
                    }
                }
            }
            if limit == 0 {
                fs::remove_file(&self.path)?;
            } else {
                fs::rename(&self.path, generation(&self.path, 1, false))?;
            }
        }
        self.file = Some(append_to(&self.path)?);
        self.size = 0;
        if self.policy.compress && self.policy.generations > 0 {
            start_compressor(&self.path);
        }
        Ok(())
    }
}

/// Removes generation `n` (plain and compressed); whether there was one.
fn remove_generation(path: &Path, n: u32) -> io::Result<bool> {
    let mut found = false;
    for gz in [false, true] {
        match fs::remove_file(generation(path, n, gz)) {
            Ok(()) => found = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// `app.log` → `app.log.N`, or `app.log.N.gz`.
pub(crate) fn generation(path: &Path, n: u32, gz: bool) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    if gz {
        name.push(".gz");
    }
    PathBuf::from(name)
}

/// Starts the compressor of `path` unless it is running: it then sees the
/// new generation itself (it looks again before it ends).
fn start_compressor(path: &Path) {
    let mut running = COMPRESSING.lock();
    if !running.get_or_insert_default().insert(path.to_path_buf()) {
        return;
    }
    let owned = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("log-gzip".into())
        .spawn(move || compress_all(&owned));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the log compressor; generations stay plain");
        running.get_or_insert_default().remove(path);
    }
}

/// Compresses every plain rotated generation of `path`, then ends.
fn compress_all(path: &Path) {
    loop {
        // Looked for under both locks, so a rotation either finds this
        // thread still registered or happens before the look.
        let next = {
            let mut running = COMPRESSING.lock();
            let _chain = CHAIN.lock();
            let found = (1..)
                .take_while(|&n| {
                    generation(path, n, false).exists() || generation(path, n, true).exists()
                })
                .find_map(|n| File::open(generation(path, n, false)).ok());
            if found.is_none()
                && let Some(set) = running.as_mut()
            {
                set.remove(path);
            }
            found
        };
        let Some(file) = next else { return };
        if let Err(e) = compress_one(path, file) {
            tracing::warn!(path = %path.display(), error = %e, "compressing a log generation failed; it stays plain");
            if let Some(set) = COMPRESSING.lock().as_mut() {
                set.remove(path);
            }
            return;
        }
    }
}

/// Gzips `file` (a generation of `path`) beside it, then swaps it in for
/// wherever that generation is now, found by inode.
fn compress_one(path: &Path, file: File) -> io::Result<()> {
    let inode = file.metadata()?.ino();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".gz-{inode}.tmp"));
    let tmp = PathBuf::from(tmp);
    let out = File::create(&tmp)?;
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    // Held open until the swap: while it is, its inode cannot be reused by
    // a newer generation (under fast rotation it was, and a stale copy
    // replaced a newer file).
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    io::copy(&mut reader, &mut encoder)?;
    encoder.finish()?.sync_data()?;
    let _chain = CHAIN.lock();
    let now = (1..)
        .take_while(|&n| generation(path, n, false).exists() || generation(path, n, true).exists())
        .find(|&n| fs::metadata(generation(path, n, false)).is_ok_and(|m| m.ino() == inode));
    let alive = reader.get_ref().metadata().is_ok_and(|m| m.nlink() > 0);
    match now.filter(|_| alive) {
        Some(n) => {
            fs::rename(&tmp, generation(path, n, true))?;
            fs::remove_file(generation(path, n, false))?;
        }
        // Rotated out while it was being compressed.
        None => fs::remove_file(&tmp)?,
    }
    Ok(())
}

/// The files of one log that exist, oldest generation first, the live file
/// last; a generation is `.N` or `.N.gz`.
pub(crate) fn log_generations(path: &Path) -> Vec<PathBuf> {
    let rotated: Vec<PathBuf> = (1..)
        .map_while(|n| {
            let plain = generation(path, n, false);
            let gz = generation(path, n, true);
            // Both exist only while a compressed copy is swapped in.
            match (plain.is_file(), gz.is_file()) {
                (true, _) => Some(plain),
                (false, true) => Some(gz),
                (false, false) => None,
            }
        })
        .collect();
    rotated
        .into_iter()
        .rev()
        .chain(path.is_file().then(|| path.to_path_buf()))
        .collect()
}

/// Opens one generation for reading, decompressing a `.gz` one. A plain
/// generation compressed since it was listed is read from its `.gz`.
pub(crate) fn open_generation(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let gz = path.extension().is_some_and(|e| e == "gz");
    if gz {
        let file = File::open(path)?;
        return Ok(Box::new(flate2::read::GzDecoder::new(BufReader::new(file))));
    }
    match File::open(path) {
        Ok(file) => Ok(Box::new(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut zipped = path.as_os_str().to_owned();
            zipped.push(".gz");
            let file = File::open(PathBuf::from(zipped)).map_err(|_| e)?;
            Ok(Box::new(flate2::read::GzDecoder::new(BufReader::new(file))))
        }
        Err(e) => Err(e),
    }
}

/// Every generation of a log, oldest first, as one stream of chunks read
/// (and decompressed) on the blocking pool. A generation rotated away
/// between the listing and the read is skipped.
pub fn read_log(files: Vec<PathBuf>) -> impl Stream<Item = io::Result<Bytes>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        for path in files {
            let mut reader = match open_generation(&path) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            loop {
                let mut chunk = vec![0u8; 64 * 1024];
                match reader.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        chunk.truncate(n);
                        if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                            return; // the client went away
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_bytes: u64, generations: u32) -> LogPolicy {
        LogPolicy {
            max_bytes,
            generations,
            compress: false,
        }
    }

    #[test]
    fn a_log_is_made_and_held_open_only_from_its_first_write() {
        let dir = tempfile::tempdir().unwrap();
        // A process that never writes leaves no file; readers see no
        // generation (an empty log), and the first write makes it.
        let silent = dir.path().join("logs").join("silent.log");
        let mut quiet = LogFile::open(silent.clone(), policy(1024, 2)).unwrap();
        assert!(!silent.exists());
        assert!(log_generations(&silent).is_empty());
        quiet.write(b"late\n").unwrap();
        assert_eq!(fs::read(&silent).unwrap(), b"late\n");
        let path = dir.path().join("logs").join("p.log");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"earlier run\n").unwrap();
        let mut log = LogFile::open(path.clone(), policy(1024, 2)).unwrap();
        assert!(log.file.is_none(), "no descriptor before any output");
        log.write(b"now\n").unwrap();
        assert!(log.file.is_some());
        assert_eq!(fs::read(&path).unwrap(), b"earlier run\nnow\n");
        // A folder where the file should be: refused at open, not later.
        let blocked = dir.path().join("blocked.log");
        fs::create_dir(&blocked).unwrap();
        assert!(LogFile::open(blocked, policy(1024, 2)).is_err());
    }

    #[test]
    fn a_rotation_inside_a_chunk_falls_on_a_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let mut log = LogFile::open(path.clone(), policy(10, 2)).unwrap();
        log.write(b"aaaa\nbbbb\ncccc\n").unwrap();
        assert_eq!(
            fs::read(generation(&path, 1, false)).unwrap(),
            b"aaaa\nbbbb\n"
        );
        assert_eq!(fs::read(&path).unwrap(), b"cccc\n");
    }

    #[test]
    fn a_line_longer_than_a_file_is_spread_over_files_without_losing_a_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let mut log = LogFile::open(path.clone(), policy(4, 5)).unwrap();
        log.write(b"0123456789\n").unwrap();
        let mut all = Vec::new();
        for p in log_generations(&path) {
            assert!(fs::metadata(&p).unwrap().len() <= 4);
            open_generation(&p).unwrap().read_to_end(&mut all).unwrap();
        }
        assert_eq!(all, b"0123456789\n");
    }

    #[test]
    fn no_generations_keeps_only_the_live_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let mut log = LogFile::open(path.clone(), policy(6, 0)).unwrap();
        log.write(b"one\ntwo\nsix\n").unwrap();
        assert_eq!(log_generations(&path), std::slice::from_ref(&path));
        assert_eq!(fs::read(&path).unwrap(), b"six\n");
    }
}
