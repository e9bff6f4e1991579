//! The write-ahead log format of [`FsStore`](super::FsStore): records,
//! their encoding, and the scan that reads a log back after a crash.
//! No I/O here; the store owns the files (see its module docs).
//!
//! ## A log file
//!
//! `<base>/.~wal.<generation>`: the 8-byte [`FILE_MAGIC`] and the file's
//! 8-byte salt, random for each file ([`FILE_HEADER`] bytes in all), then
//! records back to back. Each record is one write (a document, a binary
//! value or a deletion) of one key, in the order the store applied them:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | record magic: the salt's first 4 bytes |
//! | 4 | 4 | CRC-32C (Castagnoli) of the salt's last 4 bytes, then bytes 8 .. end of record, little-endian |
//! | 8 | 8 | sequence number within the file (0, 1, 2, ...), little-endian |
//! | 16 | 8 | sequence number of the first record of its batch, little-endian |
//! | 24 | 4 | body length, little-endian |
//! | 28 | 1 | kind: 1 document, 2 binary value, 3 deletion |
//! | 29 | 1 | media type length (binary values; 0 otherwise) |
//! | 30 | 2 | key length, little-endian |
//! | 32 | body | key, media type, value bytes |
//!
//! A batch is the records written by one write and made durable by one
//! fsync; no write of a batch is acknowledged before that fsync returns,
//! and the next batch is written only after it.
//!
//! The salt keeps a record from being forged: the values in a log are
//! clients' bytes (a binary upload can hold anything), and a record inside
//! a value, found while a torn tail is searched for later batches, would
//! make the store refuse to open (or, with many candidates, make the search
//! slow). Without the file's salt a value cannot hold a record that starts
//! with the file's record magic and checks out, so the search finds real
//! records only. Version 1 files (magic ending in 1, no salt, record magic
//! `SFR1`, checksum of bytes 8 .. end), written by earlier releases, are
//! still read.
//!
//! ## Reading a log back ([`scan`])
//!
//! Records are read while each is whole, checks out (magic, checksum, the
//! next sequence number, a valid key) and fits in the file. What follows
//! the last good record decides what the log was:
//!
//! * nothing: a clean end;
//! * bytes in which no good record of a later batch starts: a torn tail,
//!   the batch that was being written when the process or the machine
//!   died (after a power loss, any of its parts may be missing). None of
//!   its writes was acknowledged, so it is dropped;
//! * a good record of a later batch further on: the damaged record's batch
//!   was complete and fsynced before that one was written, so the damage
//!   is in acknowledged data (a bad disk, a stray write), and acknowledged
//!   writes follow it. Dropping them silently would lose data, so the
//!   store refuses to open and names the file and offset instead.

use super::{validate_key, MAX_MEDIA_TYPE_LEN};

/// The first bytes of every log file (the last byte is the format version).
pub(crate) const FILE_MAGIC: &[u8; 8] = b"SFWAL\x00\x00\x02";
/// Bytes before the first record: the magic and the salt.
pub(crate) const FILE_HEADER: usize = 16;
/// The magic of version 1 files, which have no salt.
const FILE_MAGIC_V1: &[u8; 8] = b"SFWAL\x00\x00\x01";

/// How the records of one file are framed: the record magic and the
/// checksum's seed, both from the file's salt (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Framing {
    magic: [u8; 4],
    seed: Option<[u8; 4]>,
}

impl Framing {
    /// Version 1: a fixed record magic, no seed.
    const V1: Framing = Framing {
        magic: *b"SFR1",
        seed: None,
    };

    /// The framing of a file with this salt.
    pub(crate) fn of(salt: &[u8; 8]) -> Framing {
        let [a, b, c, d, e, f, g, h] = *salt;
        Framing {
            magic: [a, b, c, d],
            seed: Some([e, f, g, h]),
        }
    }

    fn checksum(&self, bytes: &[u8]) -> u32 {
        match self.seed {
            Some(seed) => !crc32c_update(crc32c_update(!0, &seed), bytes),
            None => crc32c(bytes),
        }
    }
}

/// The first [`FILE_HEADER`] bytes of a file with this salt.
pub(crate) fn file_header(salt: &[u8; 8]) -> [u8; FILE_HEADER] {
    let mut h = [0; FILE_HEADER];
    h[..8].copy_from_slice(FILE_MAGIC);
    h[8..].copy_from_slice(salt);
    h
}

/// Bytes before a record's body.
pub(crate) const RECORD_HEADER: usize = 32;

const KIND_DOC: u8 = 1;
const KIND_BIN: u8 = 2;
const KIND_DELETE: u8 = 3;

/// What a record does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// Store this document (replacing any value).
    Doc(&'a [u8]),
    /// Store this binary value with its media type (replacing any value).
    Bin { media: &'a str, bytes: &'a [u8] },
    /// Remove whatever the key holds.
    Delete,
}

/// One record read back from a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub key: &'a str,
    pub op: Op<'a>,
}

/// Why a record cannot be encoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLarge;

/// Append the record `seq` (of the batch starting at record `batch`)
/// writing `op` to `key` to `out`. The key must be valid and a media type
/// at most [`MAX_MEDIA_TYPE_LEN`] bytes; the body must fit in 4 GiB.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    framing: Framing,
    seq: u64,
    batch: u64,
    key: &str,
    op: Op<'_>,
) -> Result<(), TooLarge> {
    let (kind, media, value): (u8, &[u8], &[u8]) = match op {
        Op::Doc(v) => (KIND_DOC, b"", v),
        Op::Bin { media, bytes } => (KIND_BIN, media.as_bytes(), bytes),
        Op::Delete => (KIND_DELETE, b"", b""),
    };
    let key_len = u16::try_from(key.len()).map_err(|_| TooLarge)?;
    let media_len = u8::try_from(media.len()).map_err(|_| TooLarge)?;
    let body = key.len() + media.len() + value.len();
    let body_len = u32::try_from(body).map_err(|_| TooLarge)?;
    let start = out.len();
    out.reserve(RECORD_HEADER + body);
    out.extend_from_slice(&framing.magic);
    out.extend_from_slice(&[0; 4]); // checksum, filled in below
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&batch.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.push(kind);
    out.push(media_len);
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(media);
    out.extend_from_slice(value);
    let crc = framing.checksum(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// How a scanned log ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// After the last record.
    Clean,
    /// Bytes from `at` (an offset in the scanned slice) hold no good record
    /// of a later batch: a torn last batch.
    Torn { at: usize },
    /// The record at `at` is damaged and a good record of a later batch
    /// starts at `next`.
    Corrupt { at: usize, next: usize },
}

/// Read the records of a log file's contents (`file`, header included).
/// A file too short for its header, or with another magic, has no records
/// (a log whose creation was cut short) unless good records follow, which
/// is [`End::Corrupt`] at offset 0.
pub(crate) fn scan(file: &[u8]) -> (Vec<Record<'_>>, End) {
    let mut records = Vec::new();
    let salt = |f: &[u8]| -> Option<[u8; 8]> { f.get(8..FILE_HEADER)?.try_into().ok() };
    let (framing, mut at) = match (file.get(..FILE_MAGIC.len()), salt(file)) {
        (Some(m), Some(salt)) if m == FILE_MAGIC => (Framing::of(&salt), FILE_HEADER),
        (Some(m), _) if m == FILE_MAGIC_V1 => (Framing::V1, FILE_MAGIC_V1.len()),
        _ => {
            // A damaged magic: records may still follow, framed with the
            // salt the header holds, or as version 1.
            let found = salt(file)
                .and_then(|s| find_later(file, 0, Framing::of(&s), |_| true))
                .or_else(|| find_later(file, 0, Framing::V1, |_| true));
            return match found {
                Some(next) => (records, End::Corrupt { at: 0, next }),
                None if file.is_empty() => (records, End::Clean),
                None => (records, End::Torn { at: 0 }),
            };
        }
    };
    let mut seq = 0u64;
    while at < file.len() {
        match parse(file, framing, at, seq) {
            Some((record, _, next)) => {
                records.push(record);
                at = next;
                seq += 1;
            }
            None => {
                // A good record of a batch that starts after the damaged
                // record proves that record's batch was complete.
                return match find_later(file, at, framing, |batch| batch > seq) {
                    Some(next) => (records, End::Corrupt { at, next }),
                    None => (records, End::Torn { at }),
                };
            }
        }
    }
    (records, End::Clean)
}

/// The first offset from `from` where a good record starts whose batch
/// (the sequence number of its batch's first record) passes `wanted`.
fn find_later(
    file: &[u8],
    from: usize,
    framing: Framing,
    wanted: impl Fn(u64) -> bool,
) -> Option<usize> {
    let mut at = from;
    while at + RECORD_HEADER <= file.len() {
        let off = file[at..]
            .windows(framing.magic.len())
            .position(|w| w == framing.magic)?;
        at += off;
        if let Some(head) = file.get(at..at + RECORD_HEADER) {
            let seq = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
            let batch = u64::from_le_bytes(head[16..24].try_into().unwrap_or_default());
            if wanted(batch) && parse(file, framing, at, seq).is_some() {
                return Some(at);
            }
        }
        at += 1;
    }
    None
}

/// The record starting at `at` if it is whole and good and numbered `seq`,
/// its batch, and the offset after it.
fn parse(file: &[u8], framing: Framing, at: usize, seq: u64) -> Option<(Record<'_>, u64, usize)> {
    let head = file.get(at..at.checked_add(RECORD_HEADER)?)?;
    if head[..4] != framing.magic {
        return None;
    }
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let got_seq = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let batch = u64::from_le_bytes(head[16..24].try_into().ok()?);
    let body_len = u32::from_le_bytes(head[24..28].try_into().ok()?) as usize;
    let (kind, media_len) = (head[28], usize::from(head[29]));
    let key_len = usize::from(u16::from_le_bytes(head[30..32].try_into().ok()?));
    let end = (at + RECORD_HEADER).checked_add(body_len)?;
    let whole = file.get(at + 8..end)?;
    if got_seq != seq
        || batch > seq
        || framing.checksum(whole) != crc
        || key_len + media_len > body_len
    {
        return None;
    }
    let body = &file[at + RECORD_HEADER..end];
    let key = std::str::from_utf8(&body[..key_len]).ok()?;
    validate_key(key).ok()?;
    let media = std::str::from_utf8(&body[key_len..key_len + media_len]).ok()?;
    let value = &body[key_len + media_len..];
    let op = match kind {
        KIND_DOC if media.is_empty() => Op::Doc(value),
        KIND_BIN if media.len() <= MAX_MEDIA_TYPE_LEN => Op::Bin {
            media,
            bytes: value,
        },
        KIND_DELETE if media.is_empty() && value.is_empty() => Op::Delete,
        _ => return None,
    };
    Some((Record { key, op }, batch, end))
}

/// The batch of each record of a (version 2) log file's contents, up to
/// the first bad one.
#[cfg(test)]
pub(crate) fn batches(file: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut at = FILE_HEADER;
    let Some(salt) = file.get(8..FILE_HEADER).and_then(|s| s.try_into().ok()) else {
        return out;
    };
    let framing = Framing::of(&salt);
    while let Some((_, batch, next)) = parse(file, framing, at, out.len() as u64) {
        out.push(batch);
        at = next;
    }
    out
}

/// CRC-32C (Castagnoli, reflected, as in iSCSI and ext4), slicing by 8.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

/// The CRC-32C register after `data`, from `crc` (not inverted).
fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ u32::from(b)) & 0xff) as usize];
    }
    crc
}

static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 8] = *b"saltsalt";

    fn framing() -> Framing {
        Framing::of(&SALT)
    }

    /// A log of `ops` written in batches of the given sizes.
    fn log_of(ops: &[(&str, Op<'_>)], batches: &[usize]) -> Vec<u8> {
        let mut out = file_header(&SALT).to_vec();
        let mut seq = 0;
        for &n in batches {
            let batch = seq;
            for (k, op) in &ops[seq as usize..seq as usize + n] {
                encode(&mut out, framing(), seq, batch, k, *op).unwrap();
                seq += 1;
            }
        }
        out
    }

    const OPS: [(&str, Op<'static>); 4] = [
        ("a/b", Op::Doc(b"{\"v\":1}")),
        (
            "a/img",
            Op::Bin {
                media: "image/png",
                bytes: b"\x89PNG\x00",
            },
        ),
        ("a/b", Op::Delete),
        ("c", Op::Doc(b"")),
    ];

    /// Offsets of the records of `log_of(&OPS, ..)`, and its length.
    fn offsets() -> [usize; 5] {
        let mut o = [0; 5];
        for (i, slot) in o.iter_mut().enumerate() {
            *slot = log_of(&OPS[..i], &[i]).len();
        }
        o
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // The sliced and the bytewise paths agree on every length.
        let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..data.len() {
            let mut crc = !0u32;
            for &b in &data[..n] {
                crc = (crc >> 8) ^ CRC_TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize];
            }
            assert_eq!(crc32c(&data[..n]), !crc, "{n}");
        }
    }

    #[test]
    fn records_round_trip() {
        let want: Vec<Record> = OPS
            .iter()
            .map(|(key, op)| Record { key, op: *op })
            .collect();
        for batches in [&[4][..], &[1, 1, 1, 1], &[2, 2], &[1, 3]] {
            assert_eq!(scan(&log_of(&OPS, batches)), (want.clone(), End::Clean));
        }
        assert_eq!(scan(&file_header(&SALT)), (vec![], End::Clean));
        assert_eq!(scan(b""), (vec![], End::Clean));
    }

    #[test]
    fn a_torn_tail_is_dropped() {
        let o = offsets();
        let log = log_of(&OPS, &[2, 2]);
        // Cut anywhere in the last batch: its whole records are read, the
        // rest is a torn tail.
        for cut in o[2] + 1..log.len() {
            let (records, end) = scan(&log[..cut]);
            let whole = if cut >= o[3] { 3 } else { 2 };
            assert_eq!(records.len(), whole, "cut at {cut}");
            if cut == o[3] {
                assert_eq!(end, End::Clean);
            } else {
                assert_eq!(end, End::Torn { at: o[whole] }, "cut at {cut}");
            }
        }
        // Zeros or garbage after the end (a file extended but not written).
        let mut zeros = log.clone();
        zeros.extend_from_slice(&[0; 4096]);
        assert_eq!(scan(&zeros).1, End::Torn { at: log.len() });
        // After a power loss any part of the last batch may be missing: a
        // hole in its first record with its second record intact is still
        // a torn tail, not corruption.
        for at in o[2]..o[3] {
            let mut holed = log.clone();
            holed[at] ^= 0x40;
            let (records, end) = scan(&holed);
            assert_eq!(records.len(), 2, "damage at {at}");
            assert_eq!(end, End::Torn { at: o[2] }, "damage at {at}");
        }
        // A log whose creation was cut short.
        for cut in [5, 8, 12] {
            let header = file_header(&SALT);
            assert_eq!(scan(&header[..cut]), (vec![], End::Torn { at: 0 }));
        }
    }

    #[test]
    fn a_damaged_record_before_a_later_batch_is_corruption() {
        let o = offsets();
        let log = log_of(&OPS, &[2, 2]);
        // A flipped bit anywhere in the second record (checksum, header or
        // body): its batch was fsynced before the next one was written.
        for at in o[1]..o[2] {
            let mut bad = log.clone();
            bad[at] ^= 0x10;
            let (records, end) = scan(&bad);
            assert_eq!(records.len(), 1, "flip at {at}");
            assert_eq!(
                end,
                End::Corrupt {
                    at: o[1],
                    next: o[2]
                },
                "flip at {at}"
            );
        }
        // Damage in the last record looks like a torn tail (nothing follows).
        let mut bad = log.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(scan(&bad).1, End::Torn { at: o[3] });
        // A damaged file magic with good records after it.
        let mut bad = log.clone();
        bad[0] = b'X';
        assert_eq!(scan(&bad), (vec![], End::Corrupt { at: 0, next: o[0] }));
        // A record with a good checksum but out of sequence (one missing).
        let mut gap = file_header(&SALT).to_vec();
        encode(&mut gap, framing(), 0, 0, "k", Op::Delete).unwrap();
        let second = gap.len();
        encode(&mut gap, framing(), 2, 2, "k", Op::Delete).unwrap();
        let (records, end) = scan(&gap);
        assert_eq!(records.len(), 1);
        assert_eq!(
            end,
            End::Corrupt {
                at: second,
                next: second
            }
        );
    }

    #[test]
    fn records_with_invalid_contents_are_refused() {
        let mut log = file_header(&SALT).to_vec();
        // A record whose key is not a valid key but whose checksum is right.
        let start = log.len();
        encode(&mut log, framing(), 0, 0, "ok", Op::Doc(b"x")).unwrap();
        log[start + RECORD_HEADER] = b'/'; // "ok" -> "/k"
        let crc = framing().checksum(&log[start + 8..]);
        log[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(scan(&log), (vec![], End::Torn { at: start }));
        // Too large to encode.
        let long_media = "m".repeat(256);
        let bin = Op::Bin {
            media: &long_media,
            bytes: b"",
        };
        assert_eq!(
            encode(&mut Vec::new(), framing(), 0, 0, "k", bin),
            Err(TooLarge)
        );
    }

    #[test]
    fn version_1_logs_are_still_read() {
        let mut log = FILE_MAGIC_V1.to_vec();
        encode(&mut log, Framing::V1, 0, 0, "a/b", Op::Doc(b"1")).unwrap();
        let second = log.len();
        encode(&mut log, Framing::V1, 1, 1, "c", Op::Delete).unwrap();
        assert_eq!(&log[FILE_MAGIC_V1.len()..][..4], b"SFR1");
        let (records, end) = scan(&log);
        assert_eq!(end, End::Clean);
        assert_eq!(
            records,
            [
                Record {
                    key: "a/b",
                    op: Op::Doc(b"1")
                },
                Record {
                    key: "c",
                    op: Op::Delete
                }
            ]
        );
        // Damage before a later batch is still told from a torn tail.
        log[second - 1] ^= 1;
        assert_eq!(
            scan(&log).1,
            End::Corrupt {
                at: FILE_MAGIC_V1.len(),
                next: second
            }
        );
    }

    /// A binary value holding a record of a later batch, as a client who
    /// wants the store to refuse to open would upload it, written as the
    /// torn last batch of a log with `salt`; `forged` frames the record.
    fn torn_upload(salt: &[u8; 8], forged: Framing) -> (Vec<u8>, usize) {
        let mut inner = Vec::new();
        encode(&mut inner, forged, 1000, 1000, "x", Op::Delete).unwrap();
        let mut value = vec![b'-'; 64];
        value.extend_from_slice(&inner);
        value.extend_from_slice(&[b'-'; 64]);
        let mut log = file_header(salt).to_vec();
        encode(&mut log, Framing::of(salt), 0, 0, "k", Op::Doc(b"1")).unwrap();
        let torn_at = log.len();
        let bin = Op::Bin {
            media: "application/octet-stream",
            bytes: &value,
        };
        encode(&mut log, Framing::of(salt), 1, 1, "up", bin).unwrap();
        log.truncate(log.len() - 8); // the batch was cut short
        (log, torn_at)
    }

    #[test]
    fn a_record_inside_an_uploaded_value_is_not_taken_for_a_later_batch() {
        // The uploader does not know the file's salt: whatever framing it
        // guesses, the torn batch is dropped and the store opens.
        for guess in [Framing::V1, Framing::of(b"guessed!")] {
            let (log, torn_at) = torn_upload(&SALT, guess);
            assert_eq!(
                scan(&log),
                (
                    vec![Record {
                        key: "k",
                        op: Op::Doc(b"1")
                    }],
                    End::Torn { at: torn_at }
                )
            );
        }
        // Control: with the salt the record would be found (and the open
        // refused), which is what the salt prevents.
        let (log, torn_at) = torn_upload(&SALT, framing());
        assert!(matches!(scan(&log).1, End::Corrupt { at, .. } if at == torn_at));
    }
}
