//! Property tests across the codec: encode -> decode round trips, and no panics on any input.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use super::backend::{self, AuthRequest, ErrorFields, TransactionStatus};
use super::encode;
use super::frontend::{self, FrontendMessage, StartupMessage, Target};

/// Strings as the wire can carry them in C strings: anything without NUL.
fn cstring() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| s.replace('\0', ""))
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![Just(Target::Statement), Just(Target::Portal)]
}

/// Decodes exactly one message from `buf`, checking nothing is left over.
fn decode_one(mut buf: BytesMut) -> FrontendMessage {
    let msg = frontend::decode(&mut buf, usize::MAX).unwrap().unwrap();
    assert!(buf.is_empty());
    msg
}

/// Splits one backend-direction frame into (tag, body).
fn backend_frame(buf: &BytesMut) -> (u8, Bytes) {
    let (tag, len) = backend::frame_len(buf, usize::MAX).unwrap().unwrap();
    assert_eq!(len, buf.len());
    (tag, Bytes::copy_from_slice(&buf[5..]))
}

proptest! {
    #[test]
    fn query_round_trips(sql in cstring()) {
        let mut buf = BytesMut::new();
        encode::query(&mut buf, &sql);
        let FrontendMessage::Query(q) = decode_one(buf) else { panic!("not a query") };
        prop_assert_eq!(q.sql(), sql.as_str());
    }

    #[test]
    fn parse_round_trips(name in cstring(), query in cstring(), types in vec(any::<u32>(), 0..40)) {
        let mut buf = BytesMut::new();
        encode::parse(&mut buf, &name, &query, &types);
        let FrontendMessage::Parse(p) = decode_one(buf) else { panic!("not a parse") };
        prop_assert_eq!(&p.name, &name);
        prop_assert_eq!(p.query(), query.as_str());
        prop_assert_eq!(&p.param_types, &types);
    }

    #[test]
    fn bind_round_trips(
        portal in cstring(),
        statement in cstring(),
        renamed in cstring(),
        values in vec(proptest::option::of(vec(any::<u8>(), 0..16)), 0..20),
        format_mode in 0usize..3,
        binary in vec(any::<bool>(), 20),
        result_formats in vec(0i16..=1, 0..5),
    ) {
        let per_value: Vec<i16> = binary.iter().take(values.len()).map(|b| i16::from(*b)).collect();
        let sent: Vec<i16> = match format_mode {
            0 => vec![],
            1 => vec![per_value.first().copied().unwrap_or(1)],
            _ => per_value.clone(),
        };
        let expanded: Vec<i16> = match format_mode {
            0 => vec![0; values.len()],
            1 => vec![sent[0]; values.len()],
            _ => per_value,
        };
        let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
        let mut buf = BytesMut::new();
        encode::bind(&mut buf, &portal, &statement, &sent, &refs, &result_formats);
        let FrontendMessage::Bind(b) = decode_one(buf) else { panic!("not a bind") };
        prop_assert_eq!(&b.portal, &portal);
        prop_assert_eq!(&b.statement, &statement);
        let params = b.params().unwrap();
        prop_assert_eq!(&params.formats, &expanded);
        prop_assert_eq!(&params.values, &refs);
        prop_assert_eq!(&params.result_formats, &result_formats);

        let FrontendMessage::Bind(r) = decode_one(BytesMut::from(&b.with_statement(&renamed)[..]))
        else { panic!("not a bind") };
        prop_assert_eq!(&r.portal, &portal);
        prop_assert_eq!(&r.statement, &renamed);
        prop_assert_eq!(r.params().unwrap(), params);
    }

    #[test]
    fn describe_execute_close_round_trip(t in target(), name in cstring(), max_rows in any::<i32>()) {
        let mut buf = BytesMut::new();
        encode::describe(&mut buf, t, &name);
        let FrontendMessage::Describe(d) = decode_one(buf) else { panic!("not a describe") };
        prop_assert_eq!((d.target, d.name.as_str()), (t, name.as_str()));

        let mut buf = BytesMut::new();
        encode::close(&mut buf, t, &name);
        let FrontendMessage::Close(c) = decode_one(buf) else { panic!("not a close") };
        prop_assert_eq!((c.target, c.name.as_str()), (t, name.as_str()));

        let mut buf = BytesMut::new();
        encode::execute(&mut buf, &name, max_rows);
        let FrontendMessage::Execute(e) = decode_one(buf) else { panic!("not an execute") };
        prop_assert_eq!((e.portal.as_str(), e.max_rows), (name.as_str(), max_rows));
    }

    #[test]
    fn startup_round_trips(params in vec((cstring().prop_filter("non-empty", |s| !s.is_empty()), cstring()), 0..8)) {
        let refs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut buf = BytesMut::new();
        encode::startup_message(&mut buf, &refs);
        // Huge parameter sets exceed the startup limit; that is a correct refusal.
        if buf.len() <= super::MAX_STARTUP_PACKET {
            let msg = frontend::decode_startup(&mut buf).unwrap().unwrap();
            prop_assert_eq!(msg, StartupMessage::Startup { params, minor: 0 });
            prop_assert!(buf.is_empty());
        }
    }

    #[test]
    fn cancel_and_password_round_trip(pid in any::<i32>(), key in any::<i32>(), data in vec(any::<u8>(), 0..64)) {
        let mut buf = BytesMut::new();
        encode::cancel_request(&mut buf, pid, key);
        prop_assert_eq!(
            frontend::decode_startup(&mut buf).unwrap(),
            Some(StartupMessage::Cancel { process_id: pid, secret_key: key })
        );
        let mut buf = BytesMut::new();
        encode::password_message(&mut buf, &data);
        prop_assert_eq!(decode_one(buf), FrontendMessage::Password(Bytes::from(data)));
    }

    #[test]
    fn backend_messages_round_trip(
        name in cstring(), value in cstring(), pid in any::<i32>(), key in any::<i32>(),
        status in prop_oneof![Just(TransactionStatus::Idle), Just(TransactionStatus::InBlock), Just(TransactionStatus::Failed)],
    ) {
        let mut buf = BytesMut::new();
        encode::parameter_status(&mut buf, &name, &value);
        let (tag, body) = backend_frame(&buf);
        prop_assert_eq!(tag, b'S');
        prop_assert_eq!(backend::parse_parameter_status(&body).unwrap(), (name.clone(), value));

        let mut buf = BytesMut::new();
        encode::backend_key_data(&mut buf, pid, key);
        let (tag, body) = backend_frame(&buf);
        prop_assert_eq!(tag, b'K');
        prop_assert_eq!(backend::parse_backend_key_data(&body).unwrap(), (pid, key));

        let mut buf = BytesMut::new();
        encode::ready_for_query(&mut buf, status);
        let (tag, body) = backend_frame(&buf);
        prop_assert_eq!(tag, b'Z');
        prop_assert_eq!(backend::parse_ready_for_query(&body).unwrap(), status);

        let mut buf = BytesMut::new();
        encode::command_complete(&mut buf, &name);
        let (tag, body) = backend_frame(&buf);
        prop_assert_eq!(tag, b'C');
        prop_assert_eq!(backend::parse_command_complete(&body).unwrap(), name.as_str());
    }

    #[test]
    fn error_fields_round_trip(fields in vec((1u8..=255, cstring()), 0..10), notice in any::<bool>()) {
        let fields = ErrorFields { fields };
        let tag = if notice { b'N' } else { b'E' };
        let mut buf = BytesMut::new();
        encode::error_fields(&mut buf, tag, &fields);
        let (got_tag, body) = backend_frame(&buf);
        prop_assert_eq!(got_tag, tag);
        prop_assert_eq!(backend::parse_error_fields(&body).unwrap(), fields);
    }

    #[test]
    fn error_response_round_trips(sev in cstring(), code in cstring(), msg in cstring()) {
        let mut buf = BytesMut::new();
        encode::error_response(&mut buf, &sev, &code, &msg);
        let (_, body) = backend_frame(&buf);
        let f = backend::parse_error_fields(&body).unwrap();
        prop_assert_eq!((f.severity(), f.code(), f.message()), (sev.as_str(), code.as_str(), msg.as_str()));
    }

    #[test]
    fn auth_requests_round_trip(salt in any::<[u8; 4]>(), data in vec(any::<u8>(), 0..64), mechs in vec(cstring().prop_filter("non-empty", |s| !s.is_empty()), 0..4)) {
        let parse = |f: &dyn Fn(&mut BytesMut)| {
            let mut buf = BytesMut::new();
            f(&mut buf);
            let (tag, body) = backend_frame(&buf);
            assert_eq!(tag, b'R');
            backend::parse_auth_request(&body).unwrap()
        };
        prop_assert_eq!(parse(&|b| encode::auth_ok(b)), AuthRequest::Ok);
        prop_assert_eq!(parse(&|b| encode::auth_cleartext(b)), AuthRequest::CleartextPassword);
        prop_assert_eq!(parse(&|b| encode::auth_md5(b, salt)), AuthRequest::Md5Password { salt });
        let refs: Vec<&str> = mechs.iter().map(String::as_str).collect();
        prop_assert_eq!(parse(&|b| encode::auth_sasl(b, &refs)), AuthRequest::Sasl { mechanisms: mechs.clone() });
        prop_assert_eq!(parse(&|b| encode::auth_sasl_continue(b, &data)), AuthRequest::SaslContinue(Bytes::from(data.clone())));
        prop_assert_eq!(parse(&|b| encode::auth_sasl_final(b, &data)), AuthRequest::SaslFinal(Bytes::from(data.clone())));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256), max_len in 0usize..512) {
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(msg)) = frontend::decode(&mut buf, max_len) {
            if let FrontendMessage::Bind(b) = msg {
                let _ = b.params();
                let _ = b.with_statement("x");
            }
        }
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = frontend::decode_startup(&mut buf) {}
        let _ = backend::frame_len(&bytes, max_len);
        let _ = backend::parse_ready_for_query(&bytes);
        let _ = backend::parse_parameter_status(&bytes);
        let _ = backend::parse_backend_key_data(&bytes);
        let _ = backend::parse_command_complete(&bytes);
        let _ = backend::parse_error_fields(&bytes);
        let _ = backend::parse_auth_request(&Bytes::from(bytes));
    }

    /// Random bodies behind valid headers reach the per-message decoders, not just framing.
    #[test]
    fn arbitrary_bodies_never_panic(
        tag in prop::sample::select(b"QPBDECSHXdcfFp".to_vec()),
        body in vec(any::<u8>(), 0..128),
    ) {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[tag]);
        buf.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        buf.extend_from_slice(&body);
        if let Ok(Some(FrontendMessage::Bind(b))) = frontend::decode(&mut buf, usize::MAX) {
            let _ = b.params();
        }
        let mut start = BytesMut::new();
        start.extend_from_slice(&(body.len() as i32 + 8).to_be_bytes());
        start.extend_from_slice(&[0, 3, 0, tag & 3]);
        start.extend_from_slice(&body);
        let _ = frontend::decode_startup(&mut start);
    }
}
