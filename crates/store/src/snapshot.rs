//! Snapshot files: a point-in-time copy of the state machine's column families.
//!
//! Layout: the magic `LICSNAP1`; a u32 little-endian length and the bincode snapshot meta;
//! records of (column-family tag u8, key length u32, key, value length u32, value); the end tag
//! `0xFF`; and the 32-byte blake3 digest of everything before it. A file is written under a
//! temporary name, synced, then renamed, so a snapshot file that has its final name is whole.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use openraft::alias::SnapshotMetaOf;
use rocksdb::{IteratorMode, DB};

use crate::keys::SM_DATA_CFS;
use crate::txn::cf_handle;
use crate::{codec, StoreError, TypeConfig};

/// Snapshot metadata as openraft defines it.
pub type SnapshotMeta = SnapshotMetaOf<TypeConfig>;

const MAGIC: &[u8; 8] = b"LICSNAP1";
const END_TAG: u8 = 0xFF;
const DIGEST_BYTES: u64 = 32;
/// Upper bound on a key or value in a snapshot record, to refuse absurd lengths early.
const MAX_FIELD_BYTES: u32 = 64 * 1024 * 1024;

/// An open snapshot file. The handle stays valid even if a newer snapshot replaces the file.
#[derive(Debug)]
pub struct SnapshotFile {
    /// Where the file was when it was opened.
    pub path: PathBuf,
    /// The open file.
    pub file: File,
}

impl SnapshotFile {
    /// Opens a snapshot file for reading.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            file: File::open(path)?,
        })
    }

    /// Size in bytes.
    pub fn len_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.file.metadata()?.len())
    }
}

/// File name of the snapshot that covers the log up to `index`; names sort by index.
pub fn file_name(index: u64) -> String {
    format!("snap-{index:020}.bin")
}

/// Writes every state-machine record visible in `snapshot` to a new file in `dir`.
pub fn write(
    db: &DB,
    snapshot: &rocksdb::Snapshot<'_>,
    meta: &SnapshotMeta,
    dir: &Path,
) -> Result<PathBuf, StoreError> {
    let tmp = dir.join(format!(".building-{}", std::process::id()));
    let mut out = HashingWriter::new(BufWriter::new(File::create(&tmp)?));
    out.write_all(MAGIC)?;
    let meta_bytes = codec::encode("snapshot meta", meta)?;
    write_len(&mut out, meta_bytes.len())?;
    out.write_all(&meta_bytes)?;
    for (tag, name) in SM_DATA_CFS.iter().enumerate() {
        let cf = cf_handle(db, name)?;
        for item in snapshot.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            out.write_all(&[tag as u8])?;
            write_len(&mut out, key.len())?;
            out.write_all(&key)?;
            write_len(&mut out, value.len())?;
            out.write_all(&value)?;
        }
    }
    out.write_all(&[END_TAG])?;
    let digest = out.hasher.finalize();
    let mut inner = out.inner;
    inner.write_all(digest.as_bytes())?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    // Durability: the file must be whole on disk before it gets its final name.
    file.sync_all()?;
    let index = meta.last_log_id.as_ref().map(|l| l.index()).unwrap_or(0);
    let path = dir.join(file_name(index));
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(path)
}

/// Checks the digest of a snapshot file and returns its meta.
pub fn verify(path: &Path) -> Result<SnapshotMeta, StoreError> {
    let bad = |reason: String| StoreError::BadSnapshot {
        path: path.display().to_string(),
        reason,
    };
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len < MAGIC.len() as u64 + 4 + 1 + DIGEST_BYTES {
        return Err(bad(format!("too short ({len} bytes)")));
    }
    let mut hasher = blake3::Hasher::new();
    let mut body = (&mut file).take(len - DIGEST_BYTES);
    std::io::copy(&mut body, &mut hasher)?;
    let mut stored = [0u8; 32];
    file.read_exact(&mut stored)?;
    if hasher.finalize().as_bytes() != &stored {
        return Err(bad("digest mismatch".into()));
    }
    file.seek(SeekFrom::Start(0))?;
    let mut reader = Records::new(BufReader::new(file), path)?;
    reader.meta.take().ok_or_else(|| bad("no meta".into()))
}

/// Reads the meta of a snapshot file without checking its digest.
pub fn read_meta(path: &Path) -> Result<SnapshotMeta, StoreError> {
    let mut reader = Records::new(BufReader::new(File::open(path)?), path)?;
    reader.meta.take().ok_or_else(|| StoreError::BadSnapshot {
        path: path.display().to_string(),
        reason: "no meta".into(),
    })
}

/// One state-machine record: column-family name, key, value.
pub type Record = (&'static str, Vec<u8>, Vec<u8>);

/// Iterates over the records of a snapshot file.
pub struct Records<R: Read> {
    reader: R,
    path: String,
    /// The meta read from the header; taken by the caller.
    pub meta: Option<SnapshotMeta>,
    done: bool,
}

impl<R: Read> Records<R> {
    /// Reads the header.
    pub fn new(mut reader: R, path: &Path) -> Result<Self, StoreError> {
        let path = path.display().to_string();
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(StoreError::BadSnapshot {
                path,
                reason: "not a licstore snapshot".into(),
            });
        }
        let meta_bytes = read_field(&mut reader, &path)?;
        let meta = codec::decode("snapshot meta", &meta_bytes)?;
        Ok(Records {
            reader,
            path,
            meta: Some(meta),
            done: false,
        })
    }

    /// The next record as (column-family name, key, value), or `None` at the end tag.
    pub fn next_record(&mut self) -> Result<Option<Record>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.reader.read_exact(&mut tag)?;
        if tag[0] == END_TAG {
            self.done = true;
            return Ok(None);
        }
        let cf =
            SM_DATA_CFS
                .get(tag[0] as usize)
                .copied()
                .ok_or_else(|| StoreError::BadSnapshot {
                    path: self.path.clone(),
                    reason: format!("unknown column family tag {}", tag[0]),
                })?;
        let key = read_field(&mut self.reader, &self.path)?;
        let value = read_field(&mut self.reader, &self.path)?;
        Ok(Some((cf, key, value)))
    }
}

fn read_field(reader: &mut impl Read, path: &str) -> Result<Vec<u8>, StoreError> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_FIELD_BYTES {
        let reason = format!("field of {len} bytes exceeds {MAX_FIELD_BYTES}");
        return Err(StoreError::BadSnapshot {
            path: path.to_string(),
            reason,
        });
    }
    let mut buf = vec![0u8; len as usize];
    reader.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_len(out: &mut impl Write, len: usize) -> Result<(), StoreError> {
    let len =
        u32::try_from(len).map_err(|_| StoreError::corrupt("snapshot record", "over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    Ok(())
}

/// Fsyncs a directory so that a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Snapshot files in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap-") && n.ends_with(".bin"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Removes all snapshot files but the newest and leftovers of interrupted writes; at start-up
/// also partly received files (at run time one may be arriving).
pub fn prune(dir: &Path, at_startup: bool) -> Result<(), StoreError> {
    let files = list(dir)?;
    for old in files.iter().rev().skip(1) {
        fs::remove_file(old)?;
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let leftover =
            |n: &str| n.starts_with(".building-") || (at_startup && n.starts_with(".incoming-"));
        if name.to_str().is_some_and(leftover) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
