#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// 8-byte header + 3 frames of 32 bytes (20-byte payloads) fit; the 4th rolls.
const SEG: u64 = 128;

fn cfg(full: FullPolicy, max_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        segment_bytes: SEG,
        max_bytes,
        fsync: FsyncPolicy::Never,
        full,
    }
}

fn small() -> SpoolConfig {
    cfg(FullPolicy::Block, 1024 * 1024)
}

/// A 20-byte record naming `i`.
fn rec(i: u64) -> Vec<u8> {
    format!("record-{i:013}").into_bytes()
}

fn all(sp: &Spool) -> Vec<(SeqNo, Vec<u8>)> {
    sp.peek_from(None, usize::MAX).unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn last_segment(dir: &Path) -> PathBuf {
    segment_files(dir).pop().unwrap()
}

fn truncate_by(path: &Path, cut: u64) {
    let len = fs::metadata(path).unwrap().len();
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len - cut).unwrap();
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn append_read_ack_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut sp = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(sp.append(b"a").unwrap(), 1);
    assert_eq!(sp.append(b"").unwrap(), 2);
    assert_eq!(sp.append(b"ccc").unwrap(), 3);
    assert_eq!(
        all(&sp),
        vec![(1, b"a".to_vec()), (2, vec![]), (3, b"ccc".to_vec())]
    );
    assert_eq!(sp.peek_from(None, 2).unwrap().len(), 2);
    assert_eq!(sp.peek_from(Some(1), 1).unwrap(), vec![(2, vec![])]);
    assert!(sp.peek_from(Some(3), 10).unwrap().is_empty());
    assert!(sp.peek_from(None, 0).unwrap().is_empty());
    sp.ack(2).unwrap();
    sp.ack(1).unwrap(); // behind the position: no-op
    assert_eq!(all(&sp), vec![(3, b"ccc".to_vec())]);
    // Records at or below the ack position are never returned.
    assert_eq!(
        sp.peek_from(Some(0), 10).unwrap(),
        vec![(3, b"ccc".to_vec())]
    );
    let st = sp.stats();
    assert_eq!((st.records, st.acked, st.next_seq), (1, 2, 4));
    assert!(matches!(
        sp.ack(4),
        Err(SpoolError::AckBeyondEnd { upto: 4, last: 3 })
    ));
}

#[test]
fn every_append_fsync_round_trip_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = SpoolConfig {
        fsync: FsyncPolicy::EveryAppend,
        ..small()
    };
    let mut sp = Spool::open(dir.path(), c).unwrap();
    for i in 1..=5 {
        assert_eq!(sp.append(&rec(i)).unwrap(), i);
    }
    sp.ack(2).unwrap();
    drop(sp);
    let sp = Spool::open(dir.path(), c).unwrap();
    assert_eq!(all(&sp), (3..=5).map(|i| (i, rec(i))).collect::<Vec<_>>());
}

#[test]
fn segments_roll_and_acked_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut sp = Spool::open(dir.path(), small()).unwrap();
    for i in 1..=10 {
        sp.append(&rec(i)).unwrap();
    }
    let names: Vec<String> = segment_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00000000000000000001.seg",
            "00000000000000000004.seg",
            "00000000000000000007.seg",
            "00000000000000000010.seg"
        ]
    );
    for p in segment_files(dir.path()) {
        assert!(fs::metadata(p).unwrap().len() <= SEG);
    }
    assert_eq!(sp.stats().bytes, 4 * 8 + 10 * 32);
    sp.ack(2).unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        4,
        "segment 1 still holds 3"
    );
    sp.ack(3).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 3);
    sp.ack(10).unwrap();
    assert!(segment_files(dir.path()).is_empty());
    let st = sp.stats();
    assert_eq!((st.records, st.bytes, st.segments), (0, 0, 0));
    assert_eq!(sp.append(b"x").unwrap(), 11);
    assert_eq!(
        last_segment(dir.path()).file_name().unwrap(),
        "00000000000000000011.seg"
    );
    drop(sp);
    // Sequence numbers continue even when every segment was deleted.
    let mut sp = Spool::open(dir.path(), small()).unwrap();
    sp.ack(11).unwrap();
    drop(sp);
    let mut sp = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(sp.append(b"y").unwrap(), 12);
}

#[test]
fn restart_replays_exactly_the_unacked_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut sp = Spool::open(dir.path(), small()).unwrap();
    for i in 1..=10 {
        sp.append(&rec(i)).unwrap();
    }
    sp.ack(4).unwrap();
    drop(sp);
    let mut sp = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(all(&sp), (5..=10).map(|i| (i, rec(i))).collect::<Vec<_>>());
    assert_eq!(sp.stats().records, 6);
    assert_eq!(sp.append(&rec(11)).unwrap(), 11);
    drop(sp);
    let sp = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(all(&sp), (5..=11).map(|i| (i, rec(i))).collect::<Vec<_>>());
    let st = sp.stats();
    assert_eq!((st.torn_records, st.state_repairs), (0, 0));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _sp = Spool::open(dir.path(), small()).unwrap();
    assert!(matches!(
        Spool::open(dir.path(), small()),
        Err(SpoolError::Locked(_))
    ));
}

#[test]
fn bad_config_and_oversized_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (seg, max) in [(10, 1000), (128, 200), (MAX_SEGMENT_BYTES + 1, u64::MAX)] {
        let c = SpoolConfig {
            segment_bytes: seg,
            max_bytes: max,
            ..SpoolConfig::default()
        };
        assert!(matches!(
            Spool::open(dir.path(), c),
            Err(SpoolError::Config(_))
        ));
    }
    let mut sp = Spool::open(dir.path(), small()).unwrap();
    assert_eq!(small().max_record_bytes(), SEG - 20);
    assert!(matches!(
        sp.append(&[0u8; SEG as usize - 19]),
        Err(SpoolError::RecordTooLarge { len: 109, max: 108 })
    ));
    assert_eq!(sp.append(&[0u8; SEG as usize - 20]).unwrap(), 1);
    assert_eq!(sp.append(&[1u8; SEG as usize - 20]).unwrap(), 2);
    assert_eq!(sp.stats().segments, 2);
}

mod torn_tail {
    use super::*;

    /// Appends 1..=5, damages the tail with `damage`, reopens.
    fn reopen_after(damage: impl FnOnce(&Path)) -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::open(dir.path(), small()).unwrap();
        for i in 1..=5 {
            sp.append(&rec(i)).unwrap();
        }
        sp.ack(1).unwrap();
        drop(sp);
        damage(&last_segment(dir.path()));
        let sp = Spool::open(dir.path(), small()).unwrap();
        (dir, sp)
    }

    #[test]
    fn truncated_mid_payload() {
        let (_d, mut sp) = reopen_after(|p| truncate_by(p, 5));
        assert_eq!(all(&sp), (2..=4).map(|i| (i, rec(i))).collect::<Vec<_>>());
        let st = sp.stats();
        assert_eq!((st.torn_records, st.torn_bytes), (1, 27));
        assert_eq!(
            sp.append(b"new").unwrap(),
            5,
            "the torn record's number is reused"
        );
    }

    #[test]
    fn truncated_mid_header() {
        let (_d, sp) = reopen_after(|p| truncate_by(p, 32 - 7));
        assert_eq!(all(&sp), (2..=4).map(|i| (i, rec(i))).collect::<Vec<_>>());
        assert_eq!(sp.stats().torn_bytes, 7);
    }

    #[test]
    fn garbage_after_the_last_record() {
        let (_d, mut sp) = reopen_after(|p| append_bytes(p, b"\xff\xff\xff\x7fgarbage garbage"));
        assert_eq!(all(&sp), (2..=5).map(|i| (i, rec(i))).collect::<Vec<_>>());
        assert_eq!(sp.stats().torn_records, 1);
        assert_eq!(sp.append(b"new").unwrap(), 6);
    }

    #[test]
    fn zeroed_tail() {
        let (_d, sp) = reopen_after(|p| append_bytes(p, &[0u8; 40]));
        assert_eq!(all(&sp).len(), 4);
        assert_eq!(sp.stats().torn_bytes, 40);
    }

    #[test]
    fn flipped_payload_byte() {
        let (_d, sp) = reopen_after(|p| {
            let mut bytes = fs::read(p).unwrap();
            let n = bytes.len();
            bytes[n - 1] ^= 1;
            fs::write(p, bytes).unwrap();
        });
        assert_eq!(all(&sp), (2..=4).map(|i| (i, rec(i))).collect::<Vec<_>>());
        assert_eq!(sp.stats().torn_records, 1);
    }

    #[test]
    fn repair_is_persistent() {
        let (d, sp) = reopen_after(|p| truncate_by(p, 5));
        drop(sp);
        let sp = Spool::open(d.path(), small()).unwrap();
        assert_eq!(sp.stats().torn_records, 0);
        assert_eq!(all(&sp).len(), 3);
    }
}

mod full {
    use super::*;

    /// 2 full segments of 3 records (2 * 104 bytes) + a third with one (40 bytes) = 248.
    const MAX: u64 = 2 * SEG;

    #[test]
    fn block_refuses_until_acks_make_room() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::open(dir.path(), cfg(FullPolicy::Block, MAX)).unwrap();
        for i in 1..=7 {
            assert_eq!(sp.append(&rec(i)).unwrap(), i);
        }
        let before = sp.stats();
        let err = sp.append(&rec(8)).unwrap_err();
        assert!(
            matches!(
                err,
                SpoolError::Full {
                    used: 248,
                    max: MAX,
                    needed: 32
                }
            ),
            "{err}"
        );
        assert_eq!(sp.stats(), before, "nothing written, nothing counted");
        sp.ack(3).unwrap();
        assert_eq!(sp.append(&rec(8)).unwrap(), 8);
        assert_eq!(all(&sp), (4..=8).map(|i| (i, rec(i))).collect::<Vec<_>>());
    }

    #[test]
    fn drop_newest_refuses_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::open(dir.path(), cfg(FullPolicy::DropNewest, MAX)).unwrap();
        for i in 1..=7 {
            sp.append(&rec(i)).unwrap();
        }
        for i in 8..=10 {
            assert!(matches!(sp.append(&rec(i)), Err(SpoolError::DroppedNewest)));
        }
        let st = sp.stats();
        assert_eq!((st.dropped_newest, st.records, st.next_seq), (3, 7, 8));
        assert_eq!(all(&sp), (1..=7).map(|i| (i, rec(i))).collect::<Vec<_>>());
    }

    #[test]
    fn drop_oldest_deletes_whole_segments_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::open(dir.path(), cfg(FullPolicy::DropOldest, MAX)).unwrap();
        for i in 1..=7 {
            sp.append(&rec(i)).unwrap();
        }
        sp.ack(1).unwrap();
        assert_eq!(sp.append(&rec(8)).unwrap(), 8);
        let st = sp.stats();
        assert_eq!(st.dropped_oldest, 2, "records 2 and 3; 1 was acked");
        assert!(st.bytes <= MAX);
        assert_eq!(all(&sp), (4..=8).map(|i| (i, rec(i))).collect::<Vec<_>>());
        for i in 9..=30 {
            assert_eq!(sp.append(&rec(i)).unwrap(), i);
            assert!(sp.stats().bytes <= MAX);
        }
        let got = all(&sp);
        let first = got[0].0;
        assert_eq!(got, (first..=30).map(|i| (i, rec(i))).collect::<Vec<_>>());
        assert_eq!(sp.stats().dropped_oldest, first - 2);
        drop(sp);
        // The sender's position may point into dropped records: reading resumes after it.
        let sp = Spool::open(dir.path(), cfg(FullPolicy::DropOldest, MAX)).unwrap();
        assert_eq!(all(&sp), got);
        assert_eq!(sp.peek_from(Some(2), 1).unwrap()[0].0, first);
    }

    #[test]
    fn drop_oldest_with_large_records_drops_the_open_segment_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::open(dir.path(), cfg(FullPolicy::DropOldest, MAX)).unwrap();
        let big = vec![7u8; (SEG - 20) as usize];
        for i in 1..=5 {
            assert_eq!(sp.append(&big).unwrap(), i);
            assert!(sp.stats().bytes <= MAX);
        }
        assert_eq!(sp.stats().dropped_oldest, 3);
        assert_eq!(all(&sp).len(), 2);
    }
}

mod hostile {
    use super::*;

    #[test]
    fn random_bytes_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("00000000000000000001.seg"),
            b"this is not a spool segment at all",
        )
        .unwrap();
        let err = Spool::open(dir.path(), small()).unwrap_err();
        assert!(matches!(err, SpoolError::Corrupt { .. }), "{err}");
        assert!(
            dir.path().join("00000000000000000001.seg").exists(),
            "never deletes what it does not understand"
        );
    }

    #[test]
    fn segment_zero_and_overlapping_segments_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("00000000000000000000.seg"), SEGMENT_MAGIC).unwrap();
        assert!(matches!(
            Spool::open(dir.path(), small()),
            Err(SpoolError::Corrupt { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::open(dir.path(), small()).unwrap();
        for i in 1..=3 {
            sp.append(&rec(i)).unwrap();
        }
        drop(sp);
        fs::copy(
            dir.path().join("00000000000000000001.seg"),
            dir.path().join("00000000000000000002.seg"),
        )
        .unwrap();
        assert!(matches!(
            Spool::open(dir.path(), small()),
            Err(SpoolError::Corrupt { .. })
        ));
    }

    #[test]
    fn headerless_segment_is_removed_and_other_files_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("00000000000000000005.seg"), b"VGS").unwrap();
        fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        fs::write(dir.path().join("12.seg"), b"short name").unwrap();
        fs::write(dir.path().join("ack.state.tmp"), b"stale").unwrap();
        let mut sp = Spool::open(dir.path(), small()).unwrap();
        assert!(segment_files(dir.path()).len() == 1, "only 12.seg remains");
        assert!(!dir.path().join("ack.state.tmp").exists());
        assert_eq!(sp.append(b"a").unwrap(), 1);
    }

    #[test]
    fn garbage_state_file_replays_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::open(dir.path(), small()).unwrap();
        for i in 1..=7 {
            sp.append(&rec(i)).unwrap();
        }
        sp.ack(5).unwrap();
        drop(sp);
        for garbage in [&b""[..], b"garbage", &[0xAB; STATE_BYTES_FOR_TEST]] {
            fs::write(dir.path().join("ack.state"), garbage).unwrap();
            let sp = Spool::open(dir.path(), small()).unwrap();
            assert_eq!(sp.stats().state_repairs, 1);
            // Segment 1..=3 was deleted at ack(5); 4..=7 are replayed (4 and 5 again).
            assert_eq!(all(&sp), (4..=7).map(|i| (i, rec(i))).collect::<Vec<_>>());
        }
    }

    const STATE_BYTES_FOR_TEST: usize = 24;

    #[test]
    fn state_file_beyond_the_data_keeps_numbers_monotonic() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::open(dir.path(), small()).unwrap();
        for i in 1..=4 {
            sp.append(&rec(i)).unwrap();
        }
        drop(sp);
        fs::write(dir.path().join("ack.state"), format::encode_state(100)).unwrap();
        let mut sp = Spool::open(dir.path(), small()).unwrap();
        assert!(all(&sp).is_empty());
        assert!(segment_files(dir.path()).is_empty());
        assert_eq!(sp.append(b"x").unwrap(), 101);
        drop(sp);
        // Same with only an empty (header-only) segment left behind.
        fs::remove_file(last_segment(dir.path())).unwrap();
        fs::write(dir.path().join("00000000000000000005.seg"), SEGMENT_MAGIC).unwrap();
        let mut sp = Spool::open(dir.path(), small()).unwrap();
        assert!(segment_files(dir.path()).is_empty());
        assert_eq!(sp.append(b"y").unwrap(), 101);
        drop(sp);
        let sp = Spool::open(dir.path(), small()).unwrap();
        assert_eq!(all(&sp), vec![(101, b"y".to_vec())]);
    }

    #[test]
    fn file_changed_after_open_is_an_error_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::open(dir.path(), small()).unwrap();
        sp.append(&rec(1)).unwrap();
        let p = last_segment(dir.path());
        let mut bytes = fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            sp.peek_from(None, 10),
            Err(SpoolError::Corrupt { .. })
        ));
        truncate_by(&p, 10);
        assert!(matches!(
            sp.peek_from(None, 10),
            Err(SpoolError::Corrupt { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever follows a valid header, open repairs or refuses, and reads never panic.
        #[test]
        fn arbitrary_segment_contents_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            with_magic in any::<bool>(),
            state in proptest::collection::vec(any::<u8>(), 0..30),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = if with_magic { SEGMENT_MAGIC.to_vec() } else { Vec::new() };
            bytes.extend_from_slice(&body);
            fs::write(dir.path().join("00000000000000000003.seg"), &bytes).unwrap();
            fs::write(dir.path().join("ack.state"), &state).unwrap();
            if let Ok(mut sp) = Spool::open(dir.path(), small()) {
                let got = sp.peek_from(None, usize::MAX).unwrap();
                let next = sp.append(b"after").unwrap();
                prop_assert!(got.iter().all(|(s, _)| *s < next));
            }
        }
    }
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    /// Ack up to the n-th (modulo) unacked record.
    Ack(usize),
    /// Read a batch after the n-th (modulo) unacked record, as a sender would.
    Peek(usize, usize),
    Restart,
    /// Append a record, crash while it is half written (cut `1..frame` bytes), reopen.
    RestartTorn(Vec<u8>, u64),
    /// Crash leaving junk after the last record, reopen.
    RestartGarbage(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    let payload = proptest::collection::vec(any::<u8>(), 0..60);
    prop_oneof![
        6 => payload.clone().prop_map(Op::Append),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => (any::<usize>(), 1usize..5).prop_map(|(a, m)| Op::Peek(a, m)),
        1 => Just(Op::Restart),
        1 => (payload, any::<u64>()).prop_map(|(p, c)| Op::RestartTorn(p, c)),
        1 => proptest::collection::vec(any::<u8>(), 1..40).prop_map(Op::RestartGarbage),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn behaves_like_a_queue_across_restarts_and_torn_tails(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let c = small();
        let mut sp = Spool::open(dir.path(), c).unwrap();
        let mut model: VecDeque<(SeqNo, Vec<u8>)> = VecDeque::new();
        let mut next: SeqNo = 1;
        for op in ops {
            match op {
                Op::Append(p) => {
                    prop_assert_eq!(sp.append(&p).unwrap(), next);
                    model.push_back((next, p));
                    next += 1;
                }
                Op::Ack(n) => {
                    if !model.is_empty() {
                        let k = n % model.len();
                        sp.ack(model[k].0).unwrap();
                        model.drain(..=k);
                    }
                }
                Op::Peek(n, max) => {
                    let after = if model.is_empty() { None } else { Some(model[n % model.len()].0) };
                    let got = sp.peek_from(after, max).unwrap();
                    let want: Vec<_> = model
                        .iter()
                        .filter(|(s, _)| after.is_none_or(|a| *s > a))
                        .take(max)
                        .cloned()
                        .collect();
                    prop_assert_eq!(got, want);
                }
                Op::Restart => {
                    drop(sp);
                    sp = Spool::open(dir.path(), c).unwrap();
                    prop_assert_eq!(sp.stats().torn_records, 0);
                }
                Op::RestartTorn(p, cut) => {
                    prop_assert_eq!(sp.append(&p).unwrap(), next);
                    drop(sp);
                    let frame = 12 + p.len() as u64;
                    truncate_by(&last_segment(dir.path()), 1 + cut % (frame - 1));
                    sp = Spool::open(dir.path(), c).unwrap();
                    prop_assert_eq!(sp.stats().torn_records, 1);
                    // The half-written record is gone and its number is given out again.
                }
                Op::RestartGarbage(junk) => {
                    let has_segment = !segment_files(dir.path()).is_empty();
                    drop(sp);
                    if has_segment {
                        append_bytes(&last_segment(dir.path()), &junk);
                    }
                    sp = Spool::open(dir.path(), c).unwrap();
                    prop_assert_eq!(sp.stats().torn_records, u64::from(has_segment));
                }
            }
            prop_assert_eq!(all(&sp), model.iter().cloned().collect::<Vec<_>>());
            let st = sp.stats();
            prop_assert_eq!(st.records, model.len() as u64);
            prop_assert_eq!(st.next_seq, next);
            prop_assert!(st.bytes <= c.max_bytes);
        }
    }
}
