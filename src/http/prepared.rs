//! # Prepared answers
//!
//! A [`Prepared`] answer is a response whose header values and body are
//! [`Piece`]s: static bytes, a few owned bytes, or a range of a stored
//! document shared with the store ([`SharedDoc`]). The application
//! attaches one to a bare [`Response`] ([`Prepared::into_response`]); the
//! connection loop writes its head straight from the pieces (no
//! `http-types` header map, no formatting) and its body with one vectored
//! write, so a stored document goes from the store's memory to the socket
//! without being copied. The service answers plain document pulls this
//! way.
//!
//! Everything else about the response is unchanged: its status, and any
//! header a middleware wrapper put on the [`Response`] on its way out
//! (CORS, security headers), which the connection writes together with the
//! prepared ones, in name order, a wrapper's header replacing a prepared
//! one of the same name as `insert_header` would. Code that calls a
//! [`Handler`](super::Handler) without the HTTP layer (tests, embedders)
//! turns such a response into a plain one with [`Prepared::materialize`].

use std::ops::Range;

use http_types::Body;

use super::{Response, StatusCode};
use crate::store::SharedDoc;

/// A header value or a piece of a body.
#[derive(Clone, Debug)]
pub enum Piece {
    /// Bytes known at compile time.
    Static(&'static [u8]),
    /// A few bytes made for this answer.
    Owned(Vec<u8>),
    /// Part of a stored document, not copied.
    Shared(SharedDoc, Range<usize>),
}

impl Piece {
    /// The bytes (a `Shared` range outside its document is empty).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Piece::Static(b) => b,
            Piece::Owned(b) => b,
            Piece::Shared(d, r) => d.bytes().get(r.clone()).unwrap_or(&[]),
        }
    }

    /// Whether the bytes are a stored document's (worth a vectored write
    /// of their own rather than a copy).
    pub fn is_shared(&self) -> bool {
        matches!(self, Piece::Shared(..))
    }
}

/// A response's headers and body as pieces (module docs).
#[derive(Clone, Debug, Default)]
pub struct Prepared {
    headers: Vec<(&'static str, Piece)>,
    body: Vec<Piece>,
}

impl Prepared {
    /// An empty answer, with room for `headers` header fields and `body`
    /// body pieces.
    pub fn with_capacity(headers: usize, body: usize) -> Self {
        Prepared {
            headers: Vec::with_capacity(headers),
            body: Vec::with_capacity(body),
        }
    }

    /// Add a header field. `name` must be a lowercase token and the value
    /// visible ASCII (the connection drops a field that is not, as it does
    /// any handler header); `content-length`, `transfer-encoding` and
    /// `connection` are the connection's own and are dropped.
    pub fn header(&mut self, name: &'static str, value: Piece) -> &mut Self {
        self.headers.push((name, value));
        self
    }

    /// Append a piece to the body.
    pub fn body(&mut self, piece: Piece) -> &mut Self {
        self.body.push(piece);
        self
    }

    /// The header fields, in the order added.
    pub fn headers(&self) -> &[(&'static str, Piece)] {
        &self.headers
    }

    /// The body pieces, in order.
    pub fn body_pieces(&self) -> &[Piece] {
        &self.body
    }

    /// The body's length.
    pub fn body_len(&self) -> usize {
        self.body.iter().map(|p| p.bytes().len()).sum()
    }

    /// A bare response with this status carrying the answer.
    pub fn into_response(self, status: StatusCode) -> Response {
        let mut res = Response::new(status);
        res.ext_mut().insert(self);
        res
    }

    /// The prepared answer a response carries, taken out of it.
    pub fn take(res: &mut Response) -> Option<Prepared> {
        res.ext_mut().remove::<Prepared>()
    }

    /// `res` with its prepared answer (if any) moved into the response
    /// proper: its headers (except where `res` already has one of that
    /// name) and its body, as the connection would write them.
    pub fn materialize(mut res: Response) -> Response {
        let Some(p) = Prepared::take(&mut res) else {
            return res;
        };
        let mut body = Vec::with_capacity(p.body_len());
        for piece in &p.body {
            body.extend_from_slice(piece.bytes());
        }
        // `set_body` invents a Content-Type when there is none: undo that.
        let had_content_type = res.header("content-type").is_some();
        res.set_body(Body::from_bytes(body));
        if !had_content_type {
            res.remove_header("content-type");
        }
        for (name, value) in &p.headers {
            // The framing fields are the connection's (dropped there too).
            let framing = matches!(*name, "content-length" | "transfer-encoding" | "connection");
            if !framing && res.header(*name).is_none() {
                res.insert_header(*name, String::from_utf8_lossy(value.bytes()).as_ref());
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_materialize() {
        let doc = SharedDoc::new(b"xx{\"a\":1}yy".to_vec());
        let mut p = Prepared::with_capacity(2, 3);
        p.header("content-type", Piece::Static(b"application/json"))
            .header("etag", Piece::Owned(b"\"h\"".to_vec()));
        p.body(Piece::Static(b"["))
            .body(Piece::Shared(doc.clone(), 2..9))
            .body(Piece::Owned(b"]".to_vec()));
        assert_eq!(p.body_len(), 9);
        assert!(p.body_pieces()[1].is_shared());
        assert_eq!(Piece::Shared(doc, 5..50).bytes(), b"");
        let mut res = p.into_response(StatusCode::Ok);
        res.insert_header("etag", "\"wrapper\"");
        res.insert_header("x-other", "1");
        let mut res = Prepared::materialize(res);
        assert!(Prepared::take(&mut res).is_none());
        assert_eq!(res["content-type"].as_str(), "application/json");
        assert_eq!(
            res["etag"].as_str(),
            "\"wrapper\"",
            "the wrapper's header wins"
        );
        assert_eq!(res["x-other"].as_str(), "1");
        let body = futures_lite::future::block_on(res.body_bytes()).unwrap();
        assert_eq!(body, b"[{\"a\":1}]");
    }
}
