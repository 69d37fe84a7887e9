//! Deterministic tar and gzip writing.
//!
//! Every header is a POSIX ustar header filled field by field: the path (directories with a
//! trailing `/`), permission bits, numeric uid and gid, the one fixed mtime, the size and the
//! type; user and group names, device numbers, atime and ctime are never written. A path
//! or link target that does not fit ustar's fields (or is not ASCII) gets a PAX extended
//! header (`path=`, `linkpath=` records only) with a fixed name, so even long names come out
//! byte for byte the same. Gzip streams carry no file name, mtime 0, OS byte 255 ("unknown")
//! and compression level [`GZIP_LEVEL`], so the compressed bytes depend only on the tar.

use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use tar::{EntryType, Header};

/// The gzip level of every layer Slipway writes. Changing it changes every digest.
pub const GZIP_LEVEL: u32 = 6;

/// The name of every PAX extended header entry.
const PAX_NAME: &[u8] = b"././@PaxHeader";

/// A gzip encoder with Slipway's fixed header and level.
pub fn gzip<W: Write>(w: W) -> GzEncoder<W> {
    GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(w, Compression::new(GZIP_LEVEL))
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of this many bytes.
    File(u64),
    /// A directory.
    Dir,
    /// A symbolic link (the target is passed separately).
    Symlink,
}

/// Metadata of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// A tar stream written with deterministic headers.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    /// Write a tar stream to `out`.
    pub fn new(out: W) -> Self {
        TarWriter { out, written: 0 }
    }

    /// Append an entry; `path` is relative, `/`-separated, without a trailing `/`; `data`
    /// must yield exactly the file's size (a shorter stream is an error).
    pub fn append(
        &mut self,
        path: &str,
        kind: Kind,
        meta: Meta,
        link_target: Option<&str>,
        data: Option<&mut dyn Read>,
    ) -> io::Result<()> {
        let name = match kind {
            Kind::Dir => format!("{path}/"),
            _ => path.to_string(),
        };
        let mut h = Header::new_ustar();
        let mut pax: Vec<(&str, &str)> = Vec::new();
        if !set_name(&mut h, name.as_bytes()) {
            pax.push(("path", &name));
        }
        if let Some(target) = link_target {
            if target.is_ascii() && target.len() <= 100 {
                if let Some(u) = h.as_ustar_mut() {
                    u.linkname = [0; 100];
                    u.linkname[..target.len()].copy_from_slice(target.as_bytes());
                }
            } else {
                pax.push(("linkpath", target));
            }
        }
        if !pax.is_empty() {
            self.pax(&pax, meta)?;
            // The ustar name holds a truncated stand-in, as other writers do.
            let cut = truncate(name.as_bytes(), 100);
            if let Some(u) = h.as_ustar_mut() {
                u.name = [0; 100];
                u.name[..cut.len()].copy_from_slice(cut);
                u.prefix = [0; 155];
            }
        }
        h.set_entry_type(match kind {
            Kind::File(_) => EntryType::Regular,
            Kind::Dir => EntryType::Directory,
            Kind::Symlink => EntryType::Symlink,
        });
        h.set_mode(meta.mode & 0o7777);
        h.set_uid(meta.uid.into());
        h.set_gid(meta.gid.into());
        h.set_mtime(meta.mtime);
        let size = match kind {
            Kind::File(n) => n,
            _ => 0,
        };
        h.set_size(size);
        h.set_cksum();
        self.write(h.as_bytes())?;
        if let (Kind::File(n), Some(data)) = (kind, data) {
            let copied = io::copy(&mut data.take(n), &mut self.out)?;
            self.written += copied;
            if copied != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{path}: expected {n} bytes, read {copied} (did the file change during the build?)"),
                ));
            }
            self.pad()?;
        } else if size > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: file entry without data"),
            ));
        }
        Ok(())
    }

    fn pax(&mut self, records: &[(&str, &str)], meta: Meta) -> io::Result<()> {
        let mut body = Vec::new();
        for (k, v) in records {
            // "LEN key=value\n", where LEN counts itself.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}={v}\n").as_bytes());
        }
        let mut h = Header::new_ustar();
        set_name(&mut h, PAX_NAME);
        h.set_entry_type(EntryType::XHeader);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(meta.mtime);
        h.set_size(body.len() as u64);
        h.set_cksum();
        self.write(h.as_bytes())?;
        self.write(&body)?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let rem = (self.written % 512) as usize;
        if rem != 0 {
            self.write(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    /// Write the end-of-archive marker (two zero blocks) and return the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write(&[0u8; 1024])?;
        Ok(self.out)
    }
}

/// Put an ASCII name into the ustar `name` (and `prefix`) fields; false when it does not fit.
fn set_name(h: &mut Header, name: &[u8]) -> bool {
    if !name.is_ascii() {
        return false;
    }
    let Some(u) = h.as_ustar_mut() else {
        return false;
    };
    if name.len() <= 100 {
        u.name[..name.len()].copy_from_slice(name);
        return true;
    }
    // Split at a `/` so that the prefix has at most 155 bytes and the rest at most 100.
    // A directory's trailing `/` may not be the split point.
    let body = name.strip_suffix(b"/").unwrap_or(name);
    for (i, &b) in body.iter().enumerate().rev() {
        if b != b'/' {
            continue;
        }
        let (prefix, rest) = (&name[..i], &name[i + 1..]);
        if rest.len() > 100 {
            return false;
        }
        if prefix.len() <= 155 && !prefix.is_empty() && !rest.is_empty() {
            u.prefix[..prefix.len()].copy_from_slice(prefix);
            u.name[..rest.len()].copy_from_slice(rest);
            return true;
        }
    }
    false
}

fn truncate(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut end = max;
    while end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &bytes[..end]
}

/// A reader of a layer blob: gzip-compressed (by its magic bytes) or plain tar.
pub fn decompressed<'a, R: Read + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let head = io::Cursor::new(magic[..n].to_vec()).chain(r);
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(head)))
    } else if n >= 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "zstd-compressed layers are not supported yet",
        ))
    } else {
        Ok(Box::new(head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> Vec<(String, String, u32, u64)> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    e.link_name()
                        .expect("link")
                        .map(|l| l.display().to_string())
                        .unwrap_or_default(),
                    h.mode().expect("mode"),
                    h.mtime().expect("mtime"),
                )
            })
            .collect()
    }

    #[test]
    fn long_names_use_pax_and_read_back() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
        let target = "t".repeat(150);
        let meta = Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 7,
        };
        let mut w = TarWriter::new(Vec::new());
        w.append("a/b", Kind::Dir, meta, None, None).expect("dir");
        let mut data: &[u8] = b"hi";
        w.append(&long, Kind::File(2), meta, None, Some(&mut data))
            .expect("file");
        w.append("l", Kind::Symlink, meta, Some(&target), None)
            .expect("link");
        let mid = format!("{}/{}", "p".repeat(150), "n".repeat(90));
        let mut data: &[u8] = b"";
        w.append(&mid, Kind::File(0), meta, None, Some(&mut data))
            .expect("split");
        let bytes = w.finish().expect("finish");
        assert_eq!(bytes.len() % 512, 0);
        let got = entries(&bytes);
        assert_eq!(got[0].0, "a/b/");
        assert_eq!(got[1].0, long);
        assert_eq!(got[2].1, target);
        assert_eq!(got[3].0, mid);
        assert!(got.iter().all(|e| e.2 == 0o755 && e.3 == 7));
        // The same input gives the same bytes.
        let mut again = TarWriter::new(Vec::new());
        again
            .append("a/b", Kind::Dir, meta, None, None)
            .expect("dir");
        assert_eq!(again.finish().expect("finish")[..512], bytes[..512]);
    }

    proptest::proptest! {
        /// Any path and link target (long, nested, non-ASCII) reads back exactly, through
        /// ustar fields, a prefix split or PAX records.
        #[test]
        fn any_name_reads_back(
            segs in proptest::collection::vec("[a-zA-Z0-9._é-]{1,60}", 1..8),
            target in "[a-z/é]{1,180}",
        ) {
            let path = segs.join("/");
            let meta = Meta { mode: 0o644, uid: 0, gid: 0, mtime: 1 };
            let mut w = TarWriter::new(Vec::new());
            let mut data: &[u8] = b"x";
            w.append(&path, Kind::File(1), meta, None, Some(&mut data)).expect("file");
            w.append(&format!("{path}.d"), Kind::Dir, meta, None, None).expect("dir");
            w.append("l", Kind::Symlink, meta, Some(&target), None).expect("link");
            let got = entries(&w.finish().expect("finish"));
            proptest::prop_assert_eq!(&got[0].0, &path);
            proptest::prop_assert_eq!(&got[1].0, &format!("{path}.d/"));
            proptest::prop_assert_eq!(&got[2].1, &target);
        }
    }

    #[test]
    fn short_data_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        let mut data: &[u8] = b"abc";
        let meta = Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        let e = w
            .append("f", Kind::File(10), meta, None, Some(&mut data))
            .expect_err("short");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn gzip_header_is_fixed() {
        let mut g = gzip(Vec::new());
        g.write_all(b"x").expect("write");
        let out = g.finish().expect("finish");
        // ID1 ID2 CM FLG MTIME(4) XFL OS
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }
}
