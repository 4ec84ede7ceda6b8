//! Cutting a byte stream into lines for the ring and the bus, with a bound
//! on a line's length: a longer line comes out as several pieces, each but
//! the last marked as continued, whose concatenation is the line. Nothing is
//! cut off. The log file does not go through here: it gets the raw bytes.

/// Longest line (or piece of a longer line) handed to the ring and the bus.
pub(crate) const MAX_LINE_BYTES: usize = 8 * 1024;

/// The state of one stream between reads: the start of a line whose end
/// has not arrived yet (never more than [`MAX_LINE_BYTES`]).
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    partial: Vec<u8>,
    /// Newline positions of the chunk being fed, reused between chunks.
    ends: Vec<usize>,
}

impl Splitter {
    /// Calls `piece(bytes, continued)` for every line or piece that `chunk`
    /// completes, in order; `pieces_hint` first learns about how many there
    /// will be (exact unless a line is longer than [`MAX_LINE_BYTES`]). A
    /// final `\r` of a line is dropped.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        pieces_hint: impl FnOnce(usize),
        mut piece: impl FnMut(&[u8], bool),
    ) {
        self.ends.clear();
        self.ends.extend(memchr::memchr_iter(b'\n', chunk));
        pieces_hint(self.ends.len());
        let mut start = 0;
        let mut ends = std::mem::take(&mut self.ends);
        for &end in &ends {
            if self.partial.is_empty() {
                emit_line(&chunk[start..end], &mut piece);
            } else {
                self.partial.extend_from_slice(&chunk[start..end]);
                emit_line(&self.partial, &mut piece);
                self.partial.clear();
            }
            start = end + 1;
        }
        ends.clear();
        self.ends = ends;
        self.keep_partial(&chunk[start..], &mut piece);
    }

    /// Like [`feed`](Self::feed), for a reader that wants most lines only
    /// counted: the whole lines between `chunk`'s first and last newline
    /// come out as one `run(bytes, lines)` (each line with its `\n`, and a
    /// `\r` before it kept) instead of one `piece` call each, which is what
    /// a flood costs per line. The line the first newline ends, and the
    /// pieces of an overlong start of the next, still go to `piece`.
    ///
    /// Returns false, having taken nothing, when `chunk` has no newline or
    /// a line in the run is longer than [`MAX_LINE_BYTES`] (a run's lines
    /// are never pieces): the caller then feeds it through `feed`.
    pub(crate) fn feed_runs(
        &mut self,
        chunk: &[u8],
        mut piece: impl FnMut(&[u8], bool),
        run: impl FnOnce(&[u8], usize),
    ) -> bool {
        let (Some(first), Some(last)) =
            (memchr::memchr(b'\n', chunk), memchr::memrchr(b'\n', chunk))
        else {
            return false;
        };
        if !lines_fit(&chunk[first..=last]) {
            return false;
        }
        if self.partial.is_empty() {
            emit_line(&chunk[..first], &mut piece);
        } else {
            self.partial.extend_from_slice(&chunk[..first]);
            emit_line(&self.partial, &mut piece);
            self.partial.clear();
        }
        if last > first {
            let lines = &chunk[first + 1..=last];
            // A vectorised count: no work per line.
            run(lines, memchr::memchr_iter(b'\n', lines).count());
        }
        self.keep_partial(&chunk[last + 1..], &mut piece);
        true
    }

    /// Keeps `rest`, the start of the next line, less any whole pieces it
    /// already holds (the rare line longer than the limit; copied whole,
    /// since pieces are cut from one buffer).
    fn keep_partial(&mut self, rest: &[u8], piece: &mut impl FnMut(&[u8], bool)) {
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE_BYTES {
            let keep = emit_pieces(&self.partial, piece).len();
            let cut = self.partial.len() - keep;
            self.partial.drain(..cut);
        }
    }

    /// At end of stream: the last line, if it had no newline.
    pub(crate) fn finish(&mut self, mut piece: impl FnMut(&[u8], bool)) {
        if !self.partial.is_empty() {
            emit_line(&self.partial, &mut piece);
            self.partial.clear();
        }
    }
}

/// Whether every line of `bytes`, which starts and ends with a newline,
/// is at most [`MAX_LINE_BYTES`] long (without its `\n`). One backwards
/// search per [`MAX_LINE_BYTES`] of text when lines are short: from a
/// newline, the next must come within the limit, and every line up to the
/// last newline within it is shorter still.
fn lines_fit(bytes: &[u8]) -> bool {
    let end = bytes.len() - 1;
    let mut at = 0;
    while at < end {
        let reach = (at + 1 + MAX_LINE_BYTES).min(end);
        match memchr::memrchr(b'\n', &bytes[at + 1..=reach]) {
            Some(i) => at += 1 + i,
            None => return false,
        }
    }
    true
}

/// Each line of a run from [`Splitter::feed_runs`], as `feed` would have
/// given it (without its `\n`, nor a `\r` before it).
pub(crate) fn run_lines(run: &[u8]) -> impl Iterator<Item = &[u8]> {
    run.split_inclusive(|&b| b == b'\n').map(|line| {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        line.strip_suffix(b"\r").unwrap_or(line)
    })
}

/// Emits a whole line: pieces while it is too long, then its end.
fn emit_line(line: &[u8], piece: &mut impl FnMut(&[u8], bool)) {
    let rest = emit_pieces(line, piece);
    piece(rest.strip_suffix(b"\r").unwrap_or(rest), false);
}

/// Emits continued pieces from the front of `bytes` while more than
/// [`MAX_LINE_BYTES`] remain; returns the rest.
fn emit_pieces<'a>(mut bytes: &'a [u8], piece: &mut impl FnMut(&[u8], bool)) -> &'a [u8] {
    while bytes.len() > MAX_LINE_BYTES {
        let cut = char_boundary(bytes);
        piece(&bytes[..cut], true);
        bytes = &bytes[cut..];
    }
    bytes
}

/// Where to cut a too-long `bytes`: at [`MAX_LINE_BYTES`], moved back to
/// the start of a UTF-8 character if it falls inside one, so both pieces
/// decode as the line did.
fn char_boundary(bytes: &[u8]) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    (MAX_LINE_BYTES - 3..=MAX_LINE_BYTES)
        .rev()
        .find(|&i| !is_continuation(bytes[i]))
        .unwrap_or(MAX_LINE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks`, returning the pieces as (text, continued).
    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            s.feed(chunk, |_| {}, |p, c| out.push((p.to_vec(), c)));
        }
        s.finish(|p, c| out.push((p.to_vec(), c)));
        out
    }

    #[test]
    fn lines_across_reads_come_out_whole_and_without_carriage_returns() {
        let pieces = split(&[b"one\r\ntw", b"o\n", b"", b"thr", b"ee"]);
        let texts: Vec<_> = pieces.iter().map(|(p, c)| (p.as_slice(), *c)).collect();
        assert_eq!(
            texts,
            [
                (&b"one"[..], false),
                (&b"two"[..], false),
                (&b"three"[..], false)
            ]
        );
    }

    #[test]
    fn a_megabyte_line_comes_out_in_pieces_that_concatenate_to_it() {
        let line: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
        // Fed in uneven reads, with a short line after it.
        let mut input = line.clone();
        input.extend_from_slice(b"\nshort\n");
        let chunks: Vec<&[u8]> = input.chunks(65_537).collect();
        let pieces = split(&chunks);
        let (last, _) = pieces.last().unwrap();
        assert_eq!(last, b"short");
        let long = &pieces[..pieces.len() - 1];
        assert!(long.iter().all(|(p, _)| p.len() <= MAX_LINE_BYTES));
        assert!(
            long[..long.len() - 1]
                .iter()
                .all(|(_, continued)| *continued)
        );
        assert!(!long.last().unwrap().1, "the line's last piece ends it");
        assert_eq!(long.concat_pieces(), line);
    }

    trait Concat {
        fn concat_pieces(&self) -> Vec<u8>;
    }
    impl Concat for [(Vec<u8>, bool)] {
        fn concat_pieces(&self) -> Vec<u8> {
            self.iter().flat_map(|(p, _)| p.clone()).collect()
        }
    }

    #[test]
    fn a_piece_never_ends_inside_a_utf8_character() {
        // 'é' is two bytes; an odd offset puts one across every boundary.
        let mut line = vec![b'x'];
        line.extend("é".repeat(MAX_LINE_BYTES).as_bytes());
        let mut input = line.clone();
        input.push(b'\n');
        let pieces = split(&[&input]);
        assert!(pieces.len() > 2);
        for (p, _) in &pieces {
            assert!(std::str::from_utf8(p).is_ok(), "a piece cut a character");
        }
        assert_eq!(pieces.concat_pieces(), line);
    }

    /// Feeds `chunks` through `feed_runs` (and `feed` where it declines),
    /// expanding runs into their lines.
    fn split_runs(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut pieces = Vec::new();
            let mut runs = Vec::new();
            let taken = s.feed_runs(
                chunk,
                |p, c| pieces.push((p.to_vec(), c)),
                |run, count| {
                    assert_eq!(run_lines(run).count(), count, "the run's count");
                    runs.extend(run_lines(run).map(|l| (l.to_vec(), false)));
                },
            );
            if taken {
                // The first line, the run, then the next line's pieces.
                let first = pieces.iter().position(|(_, c)| !c).unwrap();
                out.extend(pieces.drain(..=first));
                out.extend(runs);
                out.extend(pieces);
            } else {
                assert!(pieces.is_empty() && runs.is_empty(), "declined but took");
                s.feed(chunk, |_| {}, |p, c| out.push((p.to_vec(), c)));
            }
        }
        s.finish(|p, c| out.push((p.to_vec(), c)));
        out
    }

    #[test]
    fn runs_give_the_lines_one_at_a_time_gives() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..300 {
            let mut input = Vec::new();
            for _ in 0..rng.usize(0..60) {
                let len = match rng.u8(0..10) {
                    0 => rng.usize(MAX_LINE_BYTES - 2..MAX_LINE_BYTES + 3),
                    1 => rng.usize(0..3 * MAX_LINE_BYTES),
                    _ => rng.usize(0..200),
                };
                input.extend((0..len).map(|_| b"ab\r\xc3\xa9"[rng.usize(0..5)]));
                input.extend_from_slice(if rng.bool() { b"\n" } else { b"\r\n" });
            }
            input.extend((0..rng.usize(0..300)).map(|_| b'z'));
            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = rng.usize(1..=rest.len().min(40_000));
                chunks.push(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(split_runs(&chunks), split(&chunks), "round {round}");
        }
    }

    #[test]
    fn a_run_stops_at_a_line_one_byte_over_the_limit() {
        let mut ok = b"\n".to_vec();
        ok.extend(vec![b'x'; MAX_LINE_BYTES]);
        ok.push(b'\n');
        assert!(lines_fit(&ok));
        let mut over = ok.clone();
        over.insert(1, b'x');
        assert!(!lines_fit(&over));
        let mut s = Splitter::default();
        assert!(!s.feed_runs(&over, |_, _| panic!(), |_, _| panic!()));
        assert!(!s.feed_runs(b"no newline", |_, _| panic!(), |_, _| panic!()));
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_one_piece() {
        let line = vec![b'z'; MAX_LINE_BYTES];
        let mut input = line.clone();
        input.push(b'\n');
        assert_eq!(split(&[&input[..10], &input[10..]]), [(line, false)]);
    }
}
