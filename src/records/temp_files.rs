//! Records of the temporary files Pink-Page makes on servers (the files
//! are the engine's `TempFile`s): one is inserted before its file is
//! created and deleted once the file was renamed into place or removed.

use pinkpage_actors::files::temp_files::TempFile;

/// One change to the records of temporary files, applied in order.
#[derive(Debug, Clone)]
pub enum TempFileWrite {
    /// A file is about to be created; the store assigns the record's id.
    Insert(TempFile),
    /// The file with this record is gone from its temporary path.
    Delete(i64),
}

impl TempFileWrite {
    /// Its size in memory, near enough.
    pub fn weight(&self) -> usize {
        match self {
            TempFileWrite::Insert(f) => 256 + f.path.len() + f.server.len(),
            TempFileWrite::Delete(_) => 64,
        }
    }
}
