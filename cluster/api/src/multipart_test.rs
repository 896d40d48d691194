use super::*;

/// Every event of `body` pushed in pieces of `piece` bytes, the error if one came, and whether
/// the decoder saw the closing delimiter.
fn decode(body: &[u8], piece: usize) -> (Vec<MultipartEvent>, Option<String>) {
    let mut decoder = MultipartDecoder::new("XyZ").unwrap();
    let mut events = Vec::new();
    for chunk in body.chunks(piece.max(1)) {
        decoder.push(chunk);
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(e) => return (events, Some(e.to_string())),
            }
        }
    }
    (events, decoder.finish().err().map(|e| e.to_string()))
}

/// Events with consecutive data joined, so pieces of any size compare equal.
fn joined(events: Vec<MultipartEvent>) -> Vec<MultipartEvent> {
    let mut out: Vec<MultipartEvent> = Vec::new();
    for event in events {
        match (out.last_mut(), event) {
            (Some(MultipartEvent::Data(previous)), MultipartEvent::Data(more)) => {
                let mut both = previous.to_vec();
                both.extend_from_slice(&more);
                *previous = Bytes::from(both);
            }
            (_, event) => out.push(event),
        }
    }
    out
}

fn part(name: &str, filename: Option<&str>, content_type: Option<&str>) -> MultipartEvent {
    MultipartEvent::Part(PartHeaders {
        name: Some(name.to_string()),
        filename: filename.map(str::to_string),
        content_type: content_type.map(str::to_string),
    })
}

fn data(text: &str) -> MultipartEvent {
    MultipartEvent::Data(Bytes::from(text.to_string()))
}

const TWO_FILES: &str = "--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"dir%2Fa.txt\"\r\n\
Content-Type: application/octet-stream\r\n\
\r\n\
hello\r\n-- not a delimiter\r\n\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"dir\"\r\n\
Content-Type: application/x-directory\r\n\
\r\n\
\r\n\
--XyZ--\r\n\
epilogue, ignored";

#[test]
fn parts_and_data_are_the_same_whatever_the_chunking() {
    let expected = vec![
        part("file", Some("dir%2Fa.txt"), Some("application/octet-stream")),
        data("hello\r\n-- not a delimiter\r\n"),
        part("file", Some("dir"), Some("application/x-directory")),
        MultipartEvent::End,
    ];
    for piece in 1..=TWO_FILES.len() {
        let (events, error) = decode(TWO_FILES.as_bytes(), piece);
        assert_eq!(error, None, "pieces of {piece}");
        assert_eq!(joined(events), expected, "pieces of {piece}");
    }
}

#[test]
fn data_is_handed_out_as_it_arrives() {
    let mut decoder = MultipartDecoder::new("XyZ").unwrap();
    decoder.push(b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
    assert!(matches!(decoder.next_event(), Ok(Some(MultipartEvent::Part(_)))));
    assert_eq!(decoder.next_event(), Ok(None));
    let megabyte = vec![b'a'; 1 << 20];
    decoder.push(&megabyte);
    // All but what could begin a delimiter ("\r\n--XyZ" is 7 bytes).
    match decoder.next_event() {
        Ok(Some(MultipartEvent::Data(bytes))) => assert_eq!(bytes.len(), (1 << 20) - 6),
        other => panic!("{other:?}"),
    }
    assert_eq!(decoder.next_event(), Ok(None));
    assert!(decoder.buffer.len() < 16, "holds only a possible delimiter's start");
}

#[test]
fn bad_bodies_are_refused_with_a_reason() {
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "no boundary at all",
            vec![b'a'; PREAMBLE_MAX + 100],
            "no multipart boundary within",
        ),
        (
            "short and no boundary",
            b"just some text".to_vec(),
            "no multipart boundary in the upload",
        ),
        (
            "cut before the end",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nhalf a fi".to_vec(),
            "ended before its closing",
        ),
        (
            "endless headers",
            [b"--XyZ\r\nX: ".as_slice(), &vec![b'h'; PART_HEADERS_MAX + 10]].concat(),
            "headers of a multipart part are longer",
        ),
        (
            "garbage after a delimiter",
            b"--XyZgarbage\r\n".to_vec(),
            "neither a line break",
        ),
        ("only the opening", b"--XyZ\r\n".to_vec(), "ended before its closing"),
    ];
    for (what, body, message) in cases {
        for piece in [1, 7, 4096, body.len()] {
            let (_, error) = decode(&body, piece);
            let error = error.unwrap_or_else(|| panic!("{what}: accepted"));
            assert!(error.contains(message), "{what} (pieces of {piece}): {error}");
        }
    }
}

#[test]
fn a_preamble_and_bare_line_feeds_are_accepted() {
    let body = "this is a preamble\r\n--XyZ\nContent-Disposition: form-data; name=f\n\nx\r\n--XyZ--";
    let (events, error) = decode(body.as_bytes(), 3);
    assert_eq!(error, None);
    assert_eq!(
        joined(events),
        vec![part("f", None, None), data("x"), MultipartEvent::End]
    );
}

#[test]
fn disposition_parameters_as_clients_send_them() {
    let cases = [
        (
            "form-data; name=\"file\"; filename=\"a b.txt\"",
            (Some("file"), Some("a b.txt")),
        ),
        (
            "form-data; name=file; filename=plain.txt",
            (Some("file"), Some("plain.txt")),
        ),
        (
            "form-data; name=\"file\"; filename=\"q\\\"uote;d.txt\"",
            (Some("file"), Some("q\"uote;d.txt")),
        ),
        (
            "form-data; name=\"file\"; filename=\"fallback\"; filename*=UTF-8''%E2%82%AC.txt",
            (Some("file"), Some("€.txt")),
        ),
        ("form-data; NAME=\"x\"", (Some("x"), None)),
        ("form-data", (None, None)),
    ];
    for (value, (name, filename)) in cases {
        let headers = parse_headers(&format!("Content-Disposition: {value}"));
        assert_eq!(headers.name.as_deref(), name, "{value}");
        assert_eq!(headers.filename.as_deref(), filename, "{value}");
    }
    let headers = parse_headers("content-type: Application/X-Directory; charset=x\r\nOther: y");
    assert_eq!(headers.essence().as_deref(), Some("application/x-directory"));
}

#[test]
fn boundaries_are_bounded() {
    assert!(MultipartDecoder::new("").is_err());
    assert!(MultipartDecoder::new(&"b".repeat(BOUNDARY_MAX + 1)).is_err());
    assert!(MultipartDecoder::new(&"b".repeat(70)).is_ok());
}
