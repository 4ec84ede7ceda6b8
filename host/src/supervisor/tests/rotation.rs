//! Output rotation: generations, compression, reading across rotated files.
//!
//! The children print numbered lines, so what the generations hold can be
//! checked line by line: in order, none twice, none missing past the
//! oldest kept, and the oldest ones gone.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use futures::StreamExt as _;

use super::*;

/// Every byte of `files` (as `Supervisor::log_files` lists them) read back
/// through [`read_log`], the way the API serves them.
async fn read_all(files: Vec<PathBuf>) -> Vec<u8> {
    let mut all = Vec::new();
    let mut stream = std::pin::pin!(read_log(files));
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    all
}

/// The file names of `files`, without their directory.
fn names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Asserts that `text` is lines `line N` for N from some start up to
/// `last`, each once and in order; returns the first N.
fn assert_tail_of_numbered(text: &str, last: u64) -> u64 {
    let numbers: Vec<u64> = text
        .lines()
        .map(|l| {
            let n = l
                .strip_prefix("line ")
                .and_then(|r| r.split_whitespace().next());
            n.and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a numbered line: {l:?}"))
        })
        .collect();
    let first = numbers[0];
    let expected: Vec<u64> = (first..=last).collect();
    assert_eq!(numbers, expected, "lines missing, repeated or out of order");
    first
}

const PRINT: &str =
    "for i in $(seq 1 2000); do printf 'line %05d ......................\\n' $i; done";

#[tokio::test]
async fn the_log_keeps_the_configured_generations_and_drops_the_oldest() {
    let (sup, _bus, dir) = setup_with(|c| {
        c.log_max_bytes = 4096;
        c.log_generations = 2;
    });
    // 2,000 lines of 36 bytes: 72 KB, many times what three files hold.
    sup.add(spec("numbers", PRINT)).unwrap();
    sup.start("numbers").await.unwrap();
    wait_state(&sup, "numbers", ProcessState::Completed).await;
    let files = sup.log_files("numbers").unwrap();
    assert_eq!(
        names(&files),
        ["numbers.log.2", "numbers.log.1", "numbers.log"]
    );
    assert!(!dir.path().join("numbers.log.3").exists());
    for f in &files {
        assert!(std::fs::metadata(f).unwrap().len() <= 4096);
    }
    let text = String::from_utf8(read_all(files).await).unwrap();
    let first = assert_tail_of_numbered(&text, 2000);
    assert!(
        first > 1,
        "the oldest lines were removed with their generation"
    );
    // The two full generations plus the live file: over two files' worth.
    assert!(text.len() > 2 * 4096 - 36, "{} bytes kept", text.len());
}

#[tokio::test]
async fn compressed_generations_are_gzip_and_read_back_in_order() {
    let (sup, _bus, dir) = setup_with(|c| {
        c.log_max_bytes = 8192;
        c.log_generations = 4;
        c.log_compress = true;
    });
    sup.add(spec("numbers", PRINT)).unwrap();
    sup.start("numbers").await.unwrap();
    wait_state(&sup, "numbers", ProcessState::Completed).await;
    // The compressor runs on a thread of its own: wait for it to finish.
    let all_compressed = |files: &[PathBuf]| {
        files[..files.len() - 1]
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "gz"))
    };
    wait_until("every rotated generation to be compressed", || {
        let files = sup.log_files("numbers").unwrap();
        files.len() == 5 && all_compressed(&files)
    })
    .await;
    let files = sup.log_files("numbers").unwrap();
    assert_eq!(
        names(&files),
        [
            "numbers.log.4.gz",
            "numbers.log.3.gz",
            "numbers.log.2.gz",
            "numbers.log.1.gz",
            "numbers.log"
        ]
    );
    // Real gzip, readable by any gzip reader, not just ours.
    let mut plain = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&files[3]).unwrap())
        .read_to_string(&mut plain)
        .unwrap();
    assert!(plain.starts_with("line "));
    assert!(std::fs::metadata(&files[3]).unwrap().len() < plain.len() as u64 / 2);
    assert!(!dir.path().join("numbers.log.1").exists());
    let text = String::from_utf8(read_all(files).await).unwrap();
    assert!(
        text.contains(&plain),
        "generation 1 is read back where it belongs"
    );
    let first = assert_tail_of_numbered(&text, 2000);
    assert!(first > 1);
}

/// A file of `lines` lines of 100 bytes with varied content, and its SHA-256.
fn varied_file(path: &Path, lines: usize) -> String {
    use sha2::Digest as _;
    let mut bytes = Vec::with_capacity(lines * 100);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!("{i:010} {x:020x} ");
        bytes.extend_from_slice(line.as_bytes());
        let fill = 99 - line.len();
        bytes.extend((0..fill).map(|j| b'a' + ((x >> (j % 60)) % 26) as u8));
        bytes.push(b'\n');
    }
    std::fs::write(path, &bytes).unwrap();
    hex::encode(sha2::Sha256::digest(&bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_and_compressed_log_holds_every_byte_of_a_64_mib_burst() {
    let (sup, bus, dir) = setup_with(|c| {
        c.log_max_bytes = 8 << 20;
        c.log_generations = 10;
        c.log_compress = true;
    });
    let input = dir.path().join("input.txt");
    const LINES: usize = 671_089; // 64 MiB of 100-byte lines
    let expected = varied_file(&input, LINES);
    sup.add(spec("burst", &format!("cat {}", input.display())))
        .unwrap();
    sup.start("burst").await.unwrap();
    wait_state(&sup, "burst", ProcessState::Completed).await;
    let files = sup.log_files("burst").unwrap();
    assert!(files.len() >= 9, "{:?}", names(&files));
    use sha2::Digest as _;
    let all = read_all(files).await;
    assert_eq!(all.len(), LINES * 100);
    assert_eq!(hex::encode(sha2::Sha256::digest(&all)), expected);
    // The bus side: every line published or counted dropped.
    let published: u64 = of_type(&bus, "burst", "process.output")
        .iter()
        .map(|d| d["lines"].as_array().unwrap().len() as u64)
        .sum();
    let dropped: u64 = of_type(&bus, "burst", "process.output_dropped")
        .iter()
        .map(|d| d["dropped"].as_u64().unwrap())
        .sum();
    assert_eq!(published + dropped, LINES as u64, "{published} + {dropped}");
    // The ring numbered every line and holds the newest.
    let ring = sup.output("burst", 2).unwrap();
    assert_eq!(ring[1].offset, LINES as u64 - 1);
    assert!(ring[1].line.starts_with(&format!("{:010} ", LINES - 1)));
}
