//! Unary gRPC over HTTP/2, directly on the `h2` crate, for both of the shim's ends: the Task
//! server (`server.rs`) and the events client (`publish.rs`).
//!
//! Why not tonic: one shim runs per container, and its resident memory is mostly the pages of
//! its own code that it has touched. tonic's transport (hyper, tower, axum's router, the
//! reconnecting client) was about a third of the code a shim runs between `start` and a running
//! container. The wire format is the same (see the gRPC over HTTP/2 spec): a request is a POST to
//! `/<package>.<Service>/<Method>` with `content-type: application/grpc`; each message is one
//! byte of compression flag, a big-endian u32 length and the protobuf bytes; the status travels
//! in the `grpc-status` and `grpc-message` trailers, or in the response headers of a
//! trailers-only response. Only unary calls with uncompressed messages are needed here.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

/// The content type of every gRPC request and response.
pub(crate) const GRPC: &str = "application/grpc";
/// Largest message accepted (tonic's default decoding limit).
pub(crate) const MAX_MESSAGE: usize = 4 << 20;

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Status codes, with the numbers of `google.rpc.Code`.
pub(crate) use errdefs::code;

/// A gRPC status: its code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grpc status {code}: {message}")]
pub(crate) struct Status {
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl Status {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn ok() -> Self {
        Self::new(code::OK, "")
    }

    /// `grpc-status` and, when there is one, the percent-encoded `grpc-message`.
    pub(crate) fn to_headers(&self, headers: &mut HeaderMap) {
        headers.insert(GRPC_STATUS, HeaderValue::from(self.code));
        if !self.message.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&percent_encode(&self.message)) {
                headers.insert(GRPC_MESSAGE, v);
            }
        }
    }

    /// The status carried by `headers` (trailers, or the headers of a trailers-only response),
    /// if they carry one.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let code = headers.get(&GRPC_STATUS)?;
        let code = std::str::from_utf8(code.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(code::INTERNAL);
        let message = headers
            .get(&GRPC_MESSAGE)
            .map(|m| percent_decode(m.as_bytes()))
            .unwrap_or_default();
        Some(Self { code, message })
    }
}

impl From<errdefs::Error> for Status {
    fn from(e: errdefs::Error) -> Self {
        Self::new(e.grpc_code(), e.message)
    }
}

/// Whether a request or response declares a gRPC body.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(GRPC.as_bytes()))
}

/// One length-prefixed, uncompressed message.
pub(crate) fn frame(msg: &impl prost::Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    // A message over 4 GiB cannot be encoded in any case; the ones here are small.
    buf.put_u32(len as u32);
    // Encoding into a buffer with room for encoded_len bytes cannot fail.
    let _ = msg.encode(&mut buf);
    buf.freeze()
}

/// The one message of a unary call's body.
pub(crate) fn unframe(body: &[u8]) -> Result<&[u8], Status> {
    let Some((head, rest)) = body.split_first_chunk::<5>() else {
        return Err(Status::new(
            code::INVALID_ARGUMENT,
            "a unary call needs exactly one message",
        ));
    };
    if head[0] != 0 {
        return Err(Status::new(
            code::UNIMPLEMENTED,
            "compressed messages are not supported",
        ));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if rest.len() != len {
        return Err(Status::new(
            code::INVALID_ARGUMENT,
            format!(
                "message length {len} does not match the {} bytes received",
                rest.len()
            ),
        ));
    }
    Ok(rest)
}

/// Decodes the one message of a unary call's body.
pub(crate) fn decode<M: prost::Message + Default>(body: &[u8]) -> Result<M, Status> {
    M::decode(unframe(body)?)
        .map_err(|e| Status::new(code::INVALID_ARGUMENT, format!("decode request: {e}")))
}

/// Reads a whole body, releasing its flow-control capacity as it goes. More than
/// `5 + MAX_MESSAGE` bytes is ResourceExhausted.
pub(crate) async fn read_body(body: &mut h2::RecvStream) -> Result<Bytes, Status> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk =
            chunk.map_err(|e| Status::new(code::INTERNAL, format!("read request body: {e}")))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.len() + chunk.len() > 5 + MAX_MESSAGE {
            return Err(Status::new(
                code::RESOURCE_EXHAUSTED,
                format!("message larger than {MAX_MESSAGE} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The gRPC spec's percent-encoding of `grpc-message`: every byte outside 0x20..=0x7e, and `%`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn percent_decode(s: &[u8]) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let msg = prost_types::Timestamp {
            seconds: 7,
            nanos: 9,
        };
        let framed = frame(&msg);
        assert_eq!(framed[0], 0);
        assert_eq!(
            u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize,
            framed.len() - 5
        );
        assert_eq!(decode::<prost_types::Timestamp>(&framed), Ok(msg));
        // An empty message (google.protobuf.Empty) is five bytes.
        assert_eq!(&frame(&())[..], &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn bad_frames_are_refused_with_their_codes() {
        assert_eq!(
            unframe(&[0, 0, 0]).unwrap_err().code,
            code::INVALID_ARGUMENT
        );
        assert_eq!(
            unframe(&[1, 0, 0, 0, 1, 8]).unwrap_err().code,
            code::UNIMPLEMENTED
        );
        assert_eq!(
            unframe(&[0, 0, 0, 0, 2, 8]).unwrap_err().code,
            code::INVALID_ARGUMENT
        );
        // Two messages in a unary body.
        assert_eq!(
            unframe(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err().code,
            code::INVALID_ARGUMENT
        );
        assert_eq!(
            decode::<prost_types::Timestamp>(&[0, 0, 0, 0, 1, 0xff])
                .unwrap_err()
                .code,
            code::INVALID_ARGUMENT
        );
    }

    #[test]
    fn status_travels_in_headers_percent_encoded() {
        let st = Status::new(5, "task \"x\" not found: 100% gone\n é");
        let mut h = HeaderMap::new();
        st.to_headers(&mut h);
        assert_eq!(h["grpc-status"], "5");
        assert_eq!(
            h["grpc-message"],
            "task \"x\" not found: 100%25 gone%0A %C3%A9"
        );
        assert_eq!(Status::from_headers(&h), Some(st));
        assert_eq!(Status::from_headers(&HeaderMap::new()), None);
        let mut ok = HeaderMap::new();
        Status::ok().to_headers(&mut ok);
        assert_eq!(ok.len(), 1);
        assert_eq!(Status::from_headers(&ok), Some(Status::ok()));
    }

    #[test]
    fn stray_percent_signs_survive_decoding() {
        assert_eq!(percent_decode(b"50%"), "50%");
        assert_eq!(percent_decode(b"5%zz"), "5%zz");
        assert_eq!(percent_decode(b"%41%4"), "A%4");
    }
}
