//! A group commit's one write: the events, the Merkle nodes they complete and the new head
//! in one statement, either under the head row's lock ([`Append`], taken by
//! [`PgLog::begin_append`], the statement and the commit sent together) or, for a node that
//! holds the whole log, without it: on condition that the head is still the one the group was
//! signed after ([`PgLog::append_after`]).

use super::{row_of, seq_i64, Head, LogRow, Node, PgError, PgLog, Sequencer};

/// Events as the columns of one `UNNEST` insert.
pub(crate) struct EventColumns<'a> {
    pub(crate) seqs: Vec<i64>,
    pub(crate) ids: Vec<&'a [u8]>,
    pub(crate) keys: Vec<&'a [u8]>,
    pub(crate) sigs: Vec<&'a [u8]>,
    pub(crate) leaves: Vec<&'a [u8]>,
    pub(crate) bodies: Vec<&'a [u8]>,
}

impl<'a> EventColumns<'a> {
    pub(crate) fn of(events: &'a [LogRow]) -> Result<Self, PgError> {
        Ok(Self {
            seqs: events.iter().map(|e| seq_i64(e.seq)).collect::<Result<_, _>>()?,
            ids: events.iter().map(|e| e.id_key.as_slice()).collect(),
            keys: events.iter().map(|e| e.key_id.as_slice()).collect(),
            sigs: events.iter().map(|e| e.signature.as_slice()).collect(),
            leaves: events.iter().map(|e| e.leaf_hash.as_slice()).collect(),
            bodies: events.iter().map(|e| e.event.as_slice()).collect(),
        })
    }
}

/// One group commit in progress, on the connection that holds the head row's lock
/// ([`super::sequencer`]) until it commits or is dropped (which rolls back).
pub struct Append<'a> {
    pub(crate) sequencer: &'a mut Sequencer,
    pub head: Head,
    pub(crate) notify: bool,
    /// The transaction is open: dropping the group rolls it back.
    pub(crate) open: bool,
}

impl Append<'_> {
    /// The events already stored under any of these id keys.
    pub fn existing(&mut self, id_keys: &[&[u8]]) -> Result<Vec<LogRow>, PgError> {
        if id_keys.is_empty() {
            return Ok(Vec::new());
        }
        self.sequencer.existing(id_keys)?.iter().map(row_of).collect()
    }

    /// Writes the group's events (seqs `head.size + 1 ..`, gapless) and the Merkle nodes they
    /// complete, moves the head, and commits, the write and the commit in one round trip. Only
    /// an `Ok` means the events are durable.
    pub fn commit(
        mut self,
        events: &[LogRow],
        nodes: &[Node],
        last_recorded_micros: i64,
        frontier: &[u8],
        node: &str,
    ) -> Result<(), PgError> {
        let head = &self.head;
        let after =
            Expected { size: head.size, last_recorded_micros: head.last_recorded_micros, frontier: &head.frontier };
        let group = Group { events, nodes, last_recorded_micros, frontier, node };
        let params = WriteParams::of(&after, &group)?;
        // The commit goes whatever the write does: after a failed write it ends the
        // transaction as a rollback.
        self.open = false;
        if !self.sequencer.write_and_commit(&params.list(self.notify))? {
            return Err(PgError::Shape("the head moved while it was locked"));
        }
        Ok(())
    }
}

impl Drop for Append<'_> {
    fn drop(&mut self) {
        if self.open {
            self.sequencer.rollback();
        }
    }
}

/// The head a group was signed after: its size, last `recorded_at` and the tree's right edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    pub size: u64,
    pub last_recorded_micros: i64,
    pub frontier: &'a [u8],
}

/// What one group commit writes.
struct Group<'a> {
    events: &'a [LogRow],
    nodes: &'a [Node],
    last_recorded_micros: i64,
    frontier: &'a [u8],
    node: &'a str,
}

impl PgLog {
    /// Writes a group signed after the head `after` (seqs `after.size + 1 ..`) in one
    /// statement that commits on its own, without a lock held across round trips: true when
    /// the head was still `after` and the group is durable; false when another node's commit
    /// moved the head first, and nothing was written. An id the log holds already fails the
    /// statement (the unique key), and nothing is written either ([`PgError::is_duplicate`]).
    pub fn append_after(
        &mut self,
        after: Expected<'_>,
        events: &[LogRow],
        nodes: &[Node],
        last_recorded_micros: i64,
        frontier: &[u8],
        node: &str,
    ) -> Result<bool, PgError> {
        let group = Group { events, nodes, last_recorded_micros, frontier, node };
        let statement = self.prepared.get(&mut self.client, write_statement(self.notify))?;
        write_after(&mut self.client, &statement, &after, &group, self.notify)
    }
}

/// The one statement of a group commit (`$1`-`$15`, see [`write_after`]). The inserts read
/// the head's update, so they wait for it and happen only if it matched.
macro_rules! write_sql {
    () => {
        "WITH h AS (
             UPDATE ledger_head SET size = $10, last_recorded_micros = $11, frontier = $12
             WHERE id = 1 AND size = $13 AND last_recorded_micros = $14 AND frontier = $15 RETURNING id
         ), e AS (
             INSERT INTO log_events (seq, id_key, key_id, signature, leaf_hash, event)
             SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[])
             WHERE EXISTS (SELECT 1 FROM h)
         ), n AS (
             INSERT INTO log_nodes (level, idx, hash)
             SELECT * FROM UNNEST($7::smallint[], $8::bigint[], $9::bytea[])
             WHERE EXISTS (SELECT 1 FROM h)
         )"
    };
}

/// The write, and the wake-up on [`super::CHANNEL`] with the node's name (`$16`) as payload.
const WRITE_AND_NOTIFY: &str = concat!(write_sql!(), " SELECT pg_notify('consent_ledger_log', $16) FROM h");
const WRITE: &str = concat!(write_sql!(), " SELECT id FROM h");

/// The group commit's statement, with the wake-up where the database has `pg_notify`.
pub(crate) fn write_statement(notify: bool) -> &'static str {
    if notify {
        WRITE_AND_NOTIFY
    } else {
        WRITE
    }
}

/// The one statement of a group commit (`statement`, [`write_statement`]): the head moves
/// from `after` to the group's last seq, and only if it did (no other commit came first) are
/// the events and nodes inserted and the wake-up sent: head, events, nodes and wake-up in one
/// round trip. True when it wrote.
fn write_after(
    client: &mut impl postgres::GenericClient,
    statement: &postgres::Statement,
    after: &Expected<'_>,
    g: &Group<'_>,
    notify: bool,
) -> Result<bool, PgError> {
    let params = WriteParams::of(after, g)?;
    Ok(!client.query(statement, &params.list(notify))?.is_empty())
}

/// The parameters of [`write_statement`] for a group signed after `after`.
struct WriteParams<'a> {
    events: EventColumns<'a>,
    levels: Vec<i16>,
    idxs: Vec<i64>,
    hashes: Vec<&'a [u8]>,
    size: i64,
    after_size: i64,
    after: &'a Expected<'a>,
    group: &'a Group<'a>,
}

impl<'a> WriteParams<'a> {
    fn of(after: &'a Expected<'a>, g: &'a Group<'a>) -> Result<Self, PgError> {
        let mut expected = after.size;
        for e in g.events {
            expected += 1;
            if e.seq != expected {
                return Err(PgError::Shape("events of a commit must follow the head without gaps"));
            }
        }
        Ok(Self {
            events: EventColumns::of(g.events)?,
            levels: g.nodes.iter().map(|n| i16::from(n.level)).collect(),
            idxs: g.nodes.iter().map(|n| seq_i64(n.index)).collect::<Result<_, _>>()?,
            hashes: g.nodes.iter().map(|n| n.hash.as_slice()).collect(),
            size: seq_i64(expected)?,
            after_size: seq_i64(after.size)?,
            after,
            group: g,
        })
    }

    /// `$1`-`$15`, and `$16` (the node's name) with the wake-up.
    fn list(&self, notify: bool) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
        let EventColumns { seqs, ids, keys, sigs, leaves, bodies } = &self.events;
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![
            seqs,
            ids,
            keys,
            sigs,
            leaves,
            bodies,
            &self.levels,
            &self.idxs,
            &self.hashes,
            &self.size,
            &self.group.last_recorded_micros,
            &self.group.frontier,
            &self.after_size,
            &self.after.last_recorded_micros,
            &self.after.frontier,
        ];
        if notify {
            params.push(&self.group.node);
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wake_up_goes_on_the_channel_nodes_listen_on() {
        assert!(WRITE_AND_NOTIFY.contains(&format!("pg_notify('{}', $16)", super::super::CHANNEL)));
        assert!(WRITE_AND_NOTIFY.starts_with(WRITE.trim_end_matches(" SELECT id FROM h")));
        assert_eq!(write_statement(false), WRITE);
    }
}
