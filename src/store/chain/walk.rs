//! Verifying a chain: a [`Walk`] from its start through its rows in id
//! order, stopping at the first link that does not hold. A store feeds it
//! (the sealed rows and a cut's leftovers it checks itself, before), so
//! verifying takes one pass and constant memory, however long the trail.

use std::fmt;

use super::key::AuditKey;
use super::link::{Field, Head, Mac};

/// What is wrong at the first bad row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The rows sealed at genesis (ids up to this one) do not match the
    /// genesis MAC.
    Sealed,
    /// A row that the last cut took is still there.
    NotCut {
        /// The `audit.cut` row.
        cut: i64,
        /// The last row it took.
        through: i64,
    },
    /// The `audit.cut` row's detail does not say where it cut.
    BadCut,
    /// The row is not there; the next row has this id (`None`: no row
    /// follows, which only a head can show).
    Missing {
        /// The next row's id.
        next: i64,
    },
    /// The row has no MAC, or not one of 64 hex digits.
    NoMac,
    /// Its MAC does not follow from the previous row's and its fields.
    Mac,
    /// Its MAC holds, but differs from the head given.
    HeadDiffers,
    /// The head given names this row, but the chain ends before it.
    HeadMissing {
        /// The chain's last row.
        last: i64,
    },
}

/// The first link that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The first bad row's id (for [`Problem::Sealed`], the last sealed
    /// id).
    pub row: i64,
    /// What is wrong with it.
    pub problem: Problem,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = self.row;
        match &self.problem {
            Problem::Sealed if row == 0 => write!(
                f,
                "the genesis MAC does not match (no rows were sealed at genesis): the chain record was changed"
            ),
            Problem::Sealed => write!(
                f,
                "the rows sealed at genesis (ids up to {row}) do not match the genesis MAC: one of them was changed, added or removed"
            ),
            Problem::NotCut { cut, through } => write!(
                f,
                "row {row} should not exist: the last cut (row {cut}) took every row up to {through}"
            ),
            Problem::BadCut => write!(f, "row {row}: the cut it records does not say where it cut"),
            Problem::Missing { next } => write!(f, "row {row} is missing (the next row is {next})"),
            Problem::NoMac => write!(f, "row {row} has no MAC"),
            Problem::Mac => write!(
                f,
                "row {row}: its MAC does not match: the row was changed, moved or inserted, or the chain was recomputed with another key"
            ),
            Problem::HeadDiffers => write!(
                f,
                "row {row}: its MAC differs from the head given: the chain was rewritten from here on"
            ),
            Problem::HeadMissing { last } => write!(
                f,
                "row {row}, the head given, is missing: the chain ends at row {last}, so its newest rows were deleted"
            ),
        }
    }
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Where it starts: the genesis, or the last cut.
    pub start: Head,
    /// The rows checked after the start.
    pub rows: u64,
    /// Its last link.
    pub head: Head,
    /// Whether the head given was checked (it may be older than the start,
    /// cut away since: then it cannot be).
    pub head_checked: bool,
}

/// Verifying one chain: its start, then each row in id order.
pub struct Walk<'k> {
    key: &'k AuditKey,
    start: Head,
    prev: Head,
    rows: u64,
    head: Option<Head>,
    head_checked: bool,
}

impl<'k> Walk<'k> {
    /// A walk from `start` (already checked by the store), holding the rows
    /// against `head` when given.
    pub fn new(key: &'k AuditKey, start: Head, head: Option<Head>) -> Result<Walk<'k>, Broken> {
        let mut walk = Walk {
            key,
            start,
            prev: start,
            rows: 0,
            head,
            head_checked: false,
        };
        walk.hold_to_head(start)?;
        Ok(walk)
    }

    /// The next row: its id, its stored fields in [`super::link::COLUMNS`]
    /// order, and its MAC as stored.
    pub fn row(&mut self, id: i64, fields: &[Field], mac: Option<&str>) -> Result<(), Broken> {
        let expected = self.prev.id + 1;
        if id != expected {
            return Err(Broken {
                row: expected,
                problem: Problem::Missing { next: id },
            });
        }
        let Some(mac) = mac.and_then(Mac::from_hex) else {
            return Err(Broken {
                row: id,
                problem: Problem::NoMac,
            });
        };
        if !self.key.link(&self.prev.mac, fields).matches(&mac) {
            return Err(Broken {
                row: id,
                problem: Problem::Mac,
            });
        }
        self.prev = Head { id, mac };
        self.rows += 1;
        self.hold_to_head(self.prev)
    }

    /// The end of the rows.
    pub fn finish(self) -> Result<Verified, Broken> {
        if let Some(head) = self.head {
            if head.id > self.prev.id {
                return Err(Broken {
                    row: head.id,
                    problem: Problem::HeadMissing { last: self.prev.id },
                });
            }
        }
        Ok(Verified {
            start: self.start,
            rows: self.rows,
            head: self.prev,
            head_checked: self.head_checked,
        })
    }

    fn hold_to_head(&mut self, link: Head) -> Result<(), Broken> {
        match self.head {
            Some(head) if head.id == link.id => {
                self.head_checked = true;
                if head.mac.matches(&link.mac) {
                    Ok(())
                } else {
                    Err(Broken {
                        row: link.id,
                        problem: Problem::HeadDiffers,
                    })
                }
            }
            _ => Ok(()),
        }
    }
}
