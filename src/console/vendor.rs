//! The vendored third-party files match `vendor/SHA256SUMS`, which
//! `scripts/vendor-ui.sh` writes from the pinned npm packages: a hand edit
//! of a vendored file (or a file added without the script) fails here.

use std::collections::BTreeSet;
use std::path::Path;

use sha2::{Digest, Sha256};

const VENDOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/console/assets/vendor");

/// Every file under `dir`, relative to `root`, with `/` separators.
fn files_under(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read vendor dir") {
        let path = entry.expect("vendor entry").path();
        if path.is_dir() {
            files_under(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).expect("under the root");
            out.insert(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn the_vendored_files_match_their_recorded_sums() {
    let root = Path::new(VENDOR);
    let sums = std::fs::read_to_string(root.join("SHA256SUMS")).expect("vendor/SHA256SUMS");
    let mut listed = BTreeSet::new();
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (sum, name) = line.split_once("  ").expect("`<sha256>  <file>` lines");
        let bytes = std::fs::read(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let actual: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            actual, sum,
            "{name} differs from its recorded sum: run scripts/vendor-ui.sh"
        );
        listed.insert(name.to_owned());
    }
    let mut present = BTreeSet::new();
    files_under(root, root, &mut present);
    present.remove("SHA256SUMS");
    assert_eq!(
        present, listed,
        "every vendored file, and only those, is in SHA256SUMS"
    );
    assert!(
        listed.iter().any(|f| f.ends_with("LICENSE")),
        "licences are vendored"
    );
}
