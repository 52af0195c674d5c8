use std::borrow::Cow;
use std::path::Path;

use proptest::prelude::*;

use super::*;

fn owned(m: &Message<'_>) -> (String, Stream, Vec<u8>, bool, u64) {
    (
        m.time.to_owned(),
        m.stream,
        m.text.to_vec(),
        m.cut,
        m.offset,
    )
}

#[test]
fn cri_lines_parse_with_any_fraction_and_zone() {
    let l = parse_cri(b"2016-10-06T00:17:09.669794202Z stdout F hello world").unwrap();
    assert_eq!(l.time, "2016-10-06T00:17:09.669794202Z");
    assert_eq!(l.stream, Stream::Stdout);
    assert!(!l.partial);
    assert_eq!(&*l.content, b"hello world");
    assert!(
        matches!(l.content, Cow::Borrowed(_)),
        "the fast path copies nothing"
    );

    let l = parse_cri(b"2016-10-06T00:17:09.6Z stderr P:x:y  two  spaces ").unwrap();
    assert!(l.partial);
    assert_eq!(&*l.content, b" two  spaces ");
    assert_eq!(l.stream, Stream::Stderr);

    let l = parse_cri(b"2024-05-02T12:15:30+02:00 stdout F").unwrap();
    assert_eq!(&*l.content, b"");
    assert_eq!(
        normalize_time(&l.time).unwrap(),
        "2024-05-02T10:15:30.000000000Z"
    );
    assert_eq!(
        normalize_time("2024-05-02T10:15:30.123-01:30").unwrap(),
        "2024-05-02T11:45:30.123000000Z"
    );
}

#[test]
fn malformed_cri_lines_are_refused_with_their_kind() {
    let cases: [(&[u8], &str); 9] = [
        (b"", "log_empty"),
        (b"   \t", "log_empty"),
        (b"2016-10-06T00:17:09.669794202Z", "log_truncated"),
        (b"2016-10-06T00:17:09.669794202Z stdout", "log_truncated"),
        (b"yesterday stdout F hi", "log_bad_timestamp"),
        (b"2016-10-06T00:17:09Z stdin F hi", "log_bad_stream"),
        (b"2016-10-06T00:17:09Z stdout X hi", "log_bad_tag"),
        (b"2016-10-06T00:17:09Z stdout  hi", "log_bad_tag"),
        (
            b"\xff\xfe\x00binary garbage \x01 stdout F",
            "log_bad_timestamp",
        ),
    ];
    for (line, kind) in cases {
        let err = parse_cri(line).unwrap_err();
        assert_eq!(
            err.kind(),
            kind,
            "{:?}: {err}",
            String::from_utf8_lossy(line)
        );
    }
    // Shaped like a time but not one: refused when the event's time is normalized.
    let l = parse_cri(b"2016-13-45T99:99:99Z stdout F hi").unwrap();
    assert_eq!(
        normalize_time(&l.time).unwrap_err().kind(),
        "log_bad_timestamp"
    );
}

#[test]
fn docker_json_lines_parse_and_partial_parts_continue() {
    let l = parse_docker_json(
        br#"{"log":"GET /index.html 200\n","stream":"stdout","time":"2024-05-02T10:15:30.123456789Z"}"#,
    )
    .unwrap();
    assert!(!l.partial);
    assert_eq!(&*l.content, b"GET /index.html 200");
    let l = parse_docker_json(
        br#"{"log":"tab\there \"quoted\" \u00e9","stream":"stderr","time":"2024-05-02T10:15:30Z","attrs":{"a":"b"}}"#,
    )
    .unwrap();
    assert!(l.partial, "no trailing newline: a part");
    assert_eq!(&*l.content, "tab\there \"quoted\" é".as_bytes());
    assert_eq!(l.stream, Stream::Stderr);
}

#[test]
fn malformed_docker_json_lines_are_refused() {
    let cases: [(&[u8], &str); 7] = [
        (b"", "log_empty"),
        (
            br#"{"log":"x\n","stream":"stdout","time":"2024-05-02T10:1"#,
            "log_bad_json",
        ),
        (
            br#"{"stream":"stdout","time":"2024-05-02T10:15:30Z"}"#,
            "log_truncated",
        ),
        (
            br#"{"log":"x\n","time":"2024-05-02T10:15:30Z"}"#,
            "log_truncated",
        ),
        (br#"{"log":"x\n","stream":"stdout"}"#, "log_truncated"),
        (
            br#"{"log":"x\n","stream":"tty","time":"2024-05-02T10:15:30Z"}"#,
            "log_bad_stream",
        ),
        (br#"[1,2,3]"#, "log_bad_json"),
    ];
    for (line, kind) in cases {
        let err = parse_docker_json(line).unwrap_err();
        assert_eq!(
            err.kind(),
            kind,
            "{:?}: {err}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn the_format_is_told_from_the_first_line() {
    assert_eq!(
        LogFormat::detect(b"2016-10-06T00:17:09Z stdout F x"),
        Some(LogFormat::Cri)
    );
    assert_eq!(
        LogFormat::detect(br#"{"log":"x"}"#),
        Some(LogFormat::DockerJson)
    );
    assert_eq!(LogFormat::detect(b"plain text"), None);
}

#[test]
fn partial_lines_are_joined_per_stream_and_capped() {
    let mut r = Reassembler::new(10);
    let lines = [
        parse_cri(b"2024-05-02T10:15:30.1Z stdout P abc").unwrap(),
        parse_cri(b"2024-05-02T10:15:30.2Z stderr F err line").unwrap(),
        parse_cri(b"2024-05-02T10:15:30.3Z stdout P def").unwrap(),
        parse_cri(b"2024-05-02T10:15:30.4Z stdout F gh").unwrap(),
        parse_cri(b"2024-05-02T10:15:31Z stdout P 0123456").unwrap(),
        parse_cri(b"2024-05-02T10:15:31Z stdout F 789abcdef").unwrap(),
    ];
    let mut got = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(r.pending_offset().is_some(), matches!(i, 1..=3 | 5));
        if let Some(m) = r.push(l, i as u64 * 100) {
            got.push(owned(&m));
        }
    }
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].1, Stream::Stderr);
    assert_eq!(got[0].2, b"err line");
    assert_eq!(got[1].0, "2024-05-02T10:15:30.1Z", "time of the first part");
    assert_eq!(got[1].2, b"abcdefgh");
    assert!(!got[1].3);
    assert_eq!(got[1].4, 0, "offset of the first part");
    assert_eq!(got[2].2, b"0123456789", "cut at the cap");
    assert!(got[2].3);
    assert!(r.pending_offset().is_none());
}

#[test]
fn a_whole_oversize_line_is_cut_and_an_unfinished_message_can_be_ended() {
    let mut r = Reassembler::new(4);
    let l = parse_cri(b"2024-05-02T10:15:30Z stdout F abcdefgh").unwrap();
    let m = r.push(&l, 7).unwrap();
    assert_eq!((m.text, m.cut, m.original_len), (&b"abcd"[..], true, 8));
    let l = parse_cri(b"2024-05-02T10:15:30Z stdout P ab").unwrap();
    assert!(r.push(&l, 9).is_none());
    let m = r.finish(Stream::Stdout).unwrap();
    assert_eq!((m.text, m.cut, m.offset), (&b"ab"[..], true, 9));
    assert!(r.finish(Stream::Stdout).is_none());
}

#[test]
fn events_carry_the_message_the_stream_and_the_container() {
    let l = parse_cri(b"2024-05-02T12:15:30.5+02:00 stderr F caf\xc3\xa9 \xff").unwrap();
    let mut r = Reassembler::new(1024);
    let m = r.push(&l, 42).unwrap();
    let ctx = LogContext {
        file: "/var/log/pods/shop_web_u1/nginx/0.log".into(),
        origin: "abc".into(),
        ..LogContext::default()
    };
    let e = message_event(&m, &ctx, "2024-05-02T10:15:31.000000000Z").unwrap();
    assert_eq!(e.time, "2024-05-02T10:15:30.500000000Z");
    let log = e.log.unwrap();
    assert_eq!(log.message.as_deref(), Some("café \u{fffd}"));
    assert_eq!(log.stream.as_deref(), Some("stderr"));
    assert_eq!(log.offset, Some(42));
    assert_eq!(e.action, "log");
    let again = message_event(&m, &ctx, "later").unwrap();
    assert_eq!(again.id, e.id, "the same position gives the same id");
}

#[test]
fn paths_name_the_pod_the_container_and_the_restart() {
    assert_eq!(
        LogPath::parse(Path::new(
            "/var/log/pods/shop_web-7c9f8d6b5-x2kqz_0f1e2d3c-aaaa-bbbb-cccc-1234567890ab/nginx/3.log"
        )),
        Some(LogPath::Pod {
            namespace: "shop".into(),
            pod: "web-7c9f8d6b5-x2kqz".into(),
            uid: "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab".into(),
            container: "nginx".into(),
            restart: 3,
        })
    );
    let id = "4f9c2a1b".repeat(8);
    assert_eq!(
        LogPath::parse(Path::new(&format!(
            "/var/lib/docker/containers/{id}/{id}-json.log"
        ))),
        Some(LogPath::Docker { id: id.clone() })
    );
    assert_eq!(
        LogPath::parse(Path::new(&format!(
            "/var/log/containers/web-7c9f8d6b5-x2kqz_shop_nginx-{id}.log"
        ))),
        Some(LogPath::Link {
            pod: "web-7c9f8d6b5-x2kqz".into(),
            namespace: "shop".into(),
            container: "nginx".into(),
            id,
        })
    );
    for no in [
        "/var/log/pods/shop_web_u1/nginx/0.log.20240502-101530",
        "/var/log/pods/shop_web_u1/nginx/0.log.20240502-101530.gz",
        "/var/log/pods/shopweb/nginx/0.log",
        "/var/log/syslog",
        "/",
    ] {
        assert_eq!(LogPath::parse(Path::new(no)), None, "{no}");
    }
}

/// The CRI format read field by field, the plain way: what the one-pass [`parse_cri`] must
/// agree with.
fn reference_cri(line: &[u8]) -> Result<(String, Stream, bool, Vec<u8>), &'static str> {
    fn split(b: &[u8]) -> Option<(&[u8], &[u8])> {
        let i = b.iter().position(|&c| c == b' ')?;
        Some((&b[..i], &b[i + 1..]))
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err("log_empty");
    }
    let (time, rest) = split(line).ok_or("log_truncated")?;
    let time_chars = |b: &u8| b.is_ascii_digit() || b"-:.TZ+".contains(b);
    if !(20..=40).contains(&time.len())
        || !time[..4].iter().all(u8::is_ascii_digit)
        || time[4] != b'-'
        || time[10] != b'T'
        || !time.iter().all(time_chars)
    {
        return Err("log_bad_timestamp");
    }
    let (stream, rest) = split(rest).ok_or("log_truncated")?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err("log_bad_stream"),
    };
    let (tag, content) = split(rest).unwrap_or((rest, &[]));
    let partial = match tag.split(|&b| b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err("log_bad_tag"),
    };
    let time = String::from_utf8(time.to_vec()).unwrap();
    Ok((time, stream, partial, content.to_vec()))
}

proptest! {
    /// Lines built from valid and invalid pieces of each field parse exactly as the
    /// field-by-field reading does, errors included.
    #[test]
    fn the_one_pass_cri_parser_agrees_with_a_field_by_field_reading(
        time in prop_oneof![
            Just("2024-05-02T10:15:30.123456789Z".to_owned()),
            Just("2024-05-02T10:15:30Z".to_owned()),
            Just("2024-05-02T12:15:30.5+02:00".to_owned()),
            "2024-05-02T[0-9TZ:.+ -]{0,30}",
            "[0-9a-zT:. -]{0,45}",
        ],
        sep in prop_oneof![Just(" "), Just(""), Just("  ")],
        stream in "(stdout|stderr|std|stdin|)",
        tag in "(P|F|P:[a-z]{0,3}|F:x:y|X|PF|)",
        rest in "( |)[a-z :]{0,12}",
    ) {
        let line = format!("{time}{sep}{stream} {tag}{rest}");
        let got = parse_cri(line.as_bytes())
            .map(|l| (l.time.into_owned(), l.stream, l.partial, l.content.into_owned()))
            .map_err(|e| e.kind());
        prop_assert_eq!(got, reference_cri(line.as_bytes()), "{:?}", line);
    }

    #[test]
    fn no_input_panics_either_parser(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_cri(&line);
        let _ = parse_docker_json(&line);
        if let Ok(l) = parse_cri(&line) {
            let _ = normalize_time(&l.time);
        }
    }

    #[test]
    fn near_valid_cri_lines_never_panic(
        time in "[0-9TZ:.+-]{0,40}",
        stream in "(stdout|stderr|std|)",
        tag in "(P|F|P:[a-z]{0,3}|X|)",
        content in ".{0,50}",
    ) {
        let line = format!("{time} {stream} {tag} {content}");
        if let Ok(l) = parse_cri(line.as_bytes()) {
            prop_assert_eq!(&*l.content, content.as_bytes());
            let _ = normalize_time(&l.time);
        }
    }

    /// Any split of messages into parts, interleaved between the streams, comes back whole
    /// and in order per stream, cut exactly at the cap.
    #[test]
    fn reassembly_matches_a_model(
        messages in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec("[a-z ]{0,12}", 1..5)), 0..20),
        cap in 1usize..40,
    ) {
        let mut lines = Vec::new();
        for (err, parts) in &messages {
            let stream = if *err { "stderr" } else { "stdout" };
            for (i, p) in parts.iter().enumerate() {
                let tag = if i + 1 == parts.len() { "F" } else { "P" };
                lines.push(format!("2024-05-02T10:15:30Z {stream} {tag} {p}"));
            }
        }
        let mut r = Reassembler::new(cap);
        let mut got: [Vec<(Vec<u8>, bool)>; 2] = Default::default();
        for (i, line) in lines.iter().enumerate() {
            let l = parse_cri(line.as_bytes()).unwrap();
            if let Some(m) = r.push(&l, i as u64) {
                got[usize::from(m.stream == Stream::Stderr)].push((m.text.to_vec(), m.cut));
            }
        }
        let mut want: [Vec<(Vec<u8>, bool)>; 2] = Default::default();
        for (err, parts) in &messages {
            let whole = parts.concat().into_bytes();
            let cut = whole.len() > cap;
            want[usize::from(*err)].push((whole[..whole.len().min(cap)].to_vec(), cut));
        }
        prop_assert_eq!(got, want);
        prop_assert!(r.pending_offset().is_none());
    }
}
