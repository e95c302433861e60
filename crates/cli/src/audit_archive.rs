//! Audit archives: records kept in a file before a trim removes them from the trail
//! (`licctl audit export`), and checked again with the live trail (`licctl audit verify
//! --archive`).
//!
//! An archive is a sequence of length-delimited `AuditArchivePage` messages, each holding
//! records as stored, in order. Writing checks the chain as it goes and refuses a trail that
//! does not link; the file gets its name only once it is complete and synced.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use licstore_model::audit::{record_hash, ChainCheck};
use licstore_proto::v1 as pb;
use prost::Message;
use serde::Serialize;

use crate::output::{emit, Render, Table};
use crate::Ctx;

/// Largest page read back from a file, in bytes: a page is at most
/// [`crate::audit::PAGE`] records.
const FILE_PAGE_BYTES_MAX: u64 = 64 << 20;

/// What `audit export` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportView {
    pub file: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
    /// Hex of the last record's hash.
    pub head: String,
}

impl Render for ExportView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["file", "first", "last", "records", "head"]);
        t.row([
            self.file.clone(),
            self.first_seq.to_string(),
            self.last_seq.to_string(),
            self.records.to_string(),
            self.head.chars().take(16).collect(),
        ]);
        t
    }
}

/// `licctl audit export`: writes records `from..=through` (through: the trail's last record
/// when the export starts) of the first endpoint to `out`, which must not exist.
pub async fn export(ctx: &Ctx, out: &Path, from: u64, through: Option<u64>) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!("{}: exists; an archive is never overwritten", out.display());
    }
    let part = part_path(out);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .with_context(|| format!("create {} (another export writing it?)", part.display()))?;
    // From here on the part file is this export's own, to remove if it fails.
    let written = write_pages(ctx, file, from.max(1), through).await;
    let view = match written {
        Ok(view) => view,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    // A link, not a rename: it fails rather than replace a file made meanwhile.
    let linked = std::fs::hard_link(&part, out);
    let _ = std::fs::remove_file(&part);
    linked.with_context(|| format!("name the archive {}", out.display()))?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Durability: the new name must survive a crash as well as the bytes.
    std::fs::File::open(dir)?.sync_all()?;
    emit(
        ctx.output,
        &ExportView {
            file: out.display().to_string(),
            ..view
        },
    )
}

fn part_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Fetches pages and appends them to `file`, checking the chain; syncs the file.
async fn write_pages(
    ctx: &Ctx,
    file: std::fs::File,
    from: u64,
    through: Option<u64>,
) -> anyhow::Result<ExportView> {
    let timeout = Duration::from_millis(ctx.timeout_ms.unwrap_or(30_000));
    let endpoint = ctx.endpoints.first().context("no endpoint")?.clone();
    let mut client = ctx.client_for(&[endpoint], timeout)?;
    let mut writer = BufWriter::new(file);
    let mut check: Option<ChainCheck> = None;
    let mut first_seq = 0;
    let mut next = from;
    let mut end = through;
    loop {
        let page = crate::audit::page_of(&mut client, next).await?;
        let end = *end.get_or_insert(page.tail_seq);
        let mut records = Vec::with_capacity(page.records.len());
        for entry in page.records.into_iter().take_while(|e| e.seq <= end) {
            let check = check.get_or_insert_with(|| {
                first_seq = entry.seq;
                start_of(entry.seq, &entry.raw)
            });
            check
                .next(&entry.raw)
                .map_err(|b| anyhow::anyhow!("record {} does not link: {}", b.seq, b.reason))?;
            records.push(entry.raw);
        }
        let done = records.len() < crate::audit::PAGE as usize;
        if !records.is_empty() {
            let message = pb::AuditArchivePage { records };
            writer.write_all(&message.encode_length_delimited_to_vec())?;
        }
        next = check.as_ref().map_or(next, |c| c.checked() + 1);
        if done || next > end {
            break;
        }
    }
    let check = check.context("no record to export in that range")?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    // Durability: the archive may be the only copy once the trail is trimmed.
    file.sync_all()?;
    Ok(ExportView {
        file: String::new(),
        first_seq,
        last_seq: check.checked(),
        records: check.checked() + 1 - first_seq,
        head: crate::audit::hex(&check.head()),
    })
}

/// A check that starts at the record whose bytes are `raw` at `seq`: from the start for
/// record 1, else trusting that record's link to the one before.
fn start_of(seq: u64, raw: &[u8]) -> ChainCheck {
    match licstore_model::audit::decode_record(raw) {
        Ok(record) if seq > 1 => ChainCheck::after(seq - 1, record.prev),
        _ => ChainCheck::from_start(),
    }
}

/// Archives read back and checked: the hash after each record, from `first_seq`.
#[derive(Debug, Default)]
pub struct Archived {
    /// Files, in the order read.
    pub files: Vec<String>,
    /// The first record the archives hold.
    pub first_seq: u64,
    /// The hash after each record from `first_seq` on.
    pub hashes: Vec<[u8; 32]>,
    /// Why they do not check, if they do not.
    pub broken: Option<String>,
}

impl Archived {
    /// The last record the archives hold.
    pub fn last_seq(&self) -> u64 {
        (self.first_seq + self.hashes.len() as u64).saturating_sub(1)
    }
}

/// Reads `files` in order as one run of records and checks its chain, which must start at
/// record 1 (linked to nothing): archives that start later cannot vouch for a checkpoint.
pub fn read_archives(files: &[PathBuf]) -> anyhow::Result<Archived> {
    let mut out = Archived::default();
    let mut check: Option<ChainCheck> = None;
    for path in files {
        out.files.push(path.display().to_string());
        let mut reader = std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?,
        );
        while let Some(page) = read_page(&mut reader).with_context(|| path.display().to_string())? {
            for raw in &page.records {
                let check = check.get_or_insert_with(|| {
                    out.first_seq = 1;
                    ChainCheck::from_start()
                });
                if let Err(b) = check.next(raw) {
                    let file = path.display();
                    out.broken = Some(format!("{file}: broken at record {}: {}", b.seq, b.reason));
                    return Ok(out);
                }
                out.hashes.push(record_hash(raw));
            }
        }
    }
    if out.hashes.is_empty() {
        anyhow::bail!("the archives hold no record");
    }
    Ok(out)
}

/// The next page of an archive; `None` at its end.
fn read_page(reader: &mut impl Read) -> anyhow::Result<Option<pb::AuditArchivePage>> {
    let mut len: u64 = 0;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        if reader.read(&mut byte)? == 0 {
            anyhow::ensure!(i == 0, "the file ends inside a page's length");
            return Ok(None);
        }
        len |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            anyhow::ensure!(
                len <= FILE_PAGE_BYTES_MAX,
                "a page of {len} bytes is too long"
            );
            let mut buf = vec![0; len as usize];
            reader
                .read_exact(&mut buf)
                .context("the file ends inside a page")?;
            return Ok(Some(pb::AuditArchivePage::decode(buf.as_slice())?));
        }
    }
    anyhow::bail!("a page length longer than 10 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use licstore_model::audit::{encode_record, AuditEvent, AuditRecord};

    /// Records `1..=n` linked as the trail links them.
    fn trail(n: u64) -> Vec<Vec<u8>> {
        let mut prev = [0; 32];
        (1..=n)
            .map(|seq| {
                let event = AuditEvent {
                    purpose: format!("p{seq}"),
                    ..Default::default()
                };
                let bytes = encode_record(&AuditRecord { seq, prev, event });
                prev = record_hash(&bytes);
                bytes
            })
            .collect()
    }

    fn write(dir: &Path, name: &str, pages: &[&[Vec<u8>]]) -> PathBuf {
        let path = dir.join(name);
        let mut bytes = Vec::new();
        for records in pages {
            let page = pb::AuditArchivePage {
                records: records.to_vec(),
            };
            bytes.extend(page.encode_length_delimited_to_vec());
        }
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn archives_read_back_as_one_checked_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = trail(6);
        let a = write(dir.path(), "a", &[&r[0..2], &r[2..3]]);
        let b = write(dir.path(), "b", &[&r[3..6]]);
        let read = read_archives(&[a.clone(), b.clone()]).expect("read");
        assert_eq!((read.first_seq, read.last_seq(), read.broken), (1, 6, None));
        assert_eq!(read.hashes[5], record_hash(&r[5]));
        // A later archive alone does not start at record 1, so it vouches for nothing.
        let alone = read_archives(std::slice::from_ref(&b)).expect("read");
        assert!(alone
            .broken
            .is_some_and(|w| w.contains("record 1: holds position 4")));
        // Out of order, or with a gap, the run breaks at a named record.
        let swapped = read_archives(&[b.clone(), a.clone()]).expect("read");
        assert!(swapped
            .broken
            .is_some_and(|w| w.contains("record 1: holds position 4")));
        let gap = write(dir.path(), "gap", &[&r[4..6]]);
        let gapped = read_archives(&[a, gap]).expect("read");
        assert!(gapped.broken.is_some_and(|w| w.contains("record 4")));
    }

    #[test]
    fn a_cut_or_altered_archive_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = trail(3);
        let whole = write(dir.path(), "whole", &[&r[..]]);
        let bytes = std::fs::read(&whole).expect("read");
        let cut = dir.path().join("cut");
        std::fs::write(&cut, &bytes[..bytes.len() - 5]).expect("write");
        let err = read_archives(&[cut]).expect_err("cut short");
        assert!(format!("{err:#}").contains("ends inside a page"), "{err:#}");
        let mut altered = r.clone();
        let last = altered[1].len() - 1;
        altered[1][last] ^= 1;
        let path = write(dir.path(), "altered", &[&altered[..]]);
        let read = read_archives(&[path]).expect("read");
        assert!(read.broken.is_some_and(|w| w.contains("record 3")));
    }
}
