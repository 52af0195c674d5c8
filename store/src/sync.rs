//! Copying between operator replicas: each serves the events it received itself, by its
//! local sequence, and keeps how far it has copied from each peer.

use rusqlite::{OptionalExtension, params};

use crate::Store;
use crate::error::StoreError;
use crate::insert::Origin;

impl Store {
    /// Events this replica received from agents ([`Origin::Local`]) with a sequence number
    /// above `seq`, ascending, at most `limit`, as `(seq, json)`. Events copied from peers
    /// are never among them, so a copy does not travel back.
    pub fn local_after(&self, seq: i64, limit: usize) -> Result<Vec<(i64, String)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT e.seq, b.json FROM events e JOIN bodies b ON b.seq = e.seq
                 WHERE e.seq > ?1 AND e.origin = ?2 ORDER BY e.seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![seq, Origin::Local.code(), limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The last sequence number of `peer` copied into this store; 0 before the first copy.
    pub fn peer_cursor(&self, peer: &str) -> Result<i64, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT seq FROM peers WHERE peer = ?1")?
                .query_row([peer], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        })
    }

    /// Records that `peer`'s events up to `seq` are copied.
    pub fn set_peer_cursor(&self, peer: &str, seq: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO peers (peer, seq) VALUES (?1, ?2)
                 ON CONFLICT (peer) DO UPDATE SET seq = excluded.seq",
            )?
            .execute(params![peer, seq])?;
            Ok(())
        })
    }
}
