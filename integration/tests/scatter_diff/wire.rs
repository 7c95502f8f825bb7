//! A minimal PostgreSQL frontend that keeps every byte the server sent: exact command tags,
//! RowDescription fields (type OID, length, modifier, format) and DataRow values, in text
//! (simple Query) or binary (Parse/Bind/Describe/Execute) format. Drivers hide some of these;
//! the differential test compares all of them.

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use integration::raw::{cstr, frame, startup_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest message accepted from a server (a guard against a garbled length).
const MAX_MESSAGE: usize = 64 << 20;

/// One column of a RowDescription, without the table OID and attribute number (they name the
/// table on whichever server answered, so they differ between the oracle and a shard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type length (`typlen`).
    pub type_len: i16,
    /// Type modifier (`atttypmod`, e.g. numeric(12,2)).
    pub type_mod: i32,
    /// 0 = text, 1 = binary.
    pub format: i16,
}

/// One row's values (None = NULL), as the server sent them.
pub type Row = Vec<Option<Vec<u8>>>;

/// A successful answer to one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The statement's result columns (None: NoData, a statement without rows).
    pub columns: Option<Vec<Column>>,
    /// The rows, in the order received.
    pub rows: Vec<Row>,
    /// The CommandComplete tag, e.g. `SELECT 12`.
    pub tag: String,
    /// Extended protocol only: parameter type OIDs and columns from Describe of the statement.
    pub described: Option<(Vec<u32>, Option<Vec<Column>>)>,
}

/// An ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// SQLSTATE.
    pub code: String,
    /// Primary message.
    pub message: String,
}

/// The server's answer to one statement: rows or an error.
pub type Outcome = Result<Answer, ServerError>;

/// How a bind parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamFormat {
    /// Text format for every parameter.
    Text,
    /// Binary where this client can encode the described type (int2/4/8, float8, bool, text),
    /// text for the others.
    Binary,
}

/// A connection speaking the protocol by hand. Failures (I/O, a malformed or unexpected
/// message) are `Err(String)`: the connection is then unusable.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Connects and logs in (trust: the harness servers and a proxy without `[auth]`).
    pub async fn connect(addr: SocketAddr, user: &str, db: &str) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let mut conn = Conn {
            stream,
            buf: BytesMut::new(),
        };
        conn.send(&startup_packet(user, db)).await?;
        loop {
            let (tag, body) = conn.next_msg().await?;
            match tag {
                b'R' if body.get(..4) == Some(&[0, 0, 0, 0]) => {}
                b'R' => return Err(format!("{addr} asks for a password (auth {body:?})")),
                b'E' => return Err(format!("login to {addr}: {:?}", parse_error(&body))),
                b'Z' => return Ok(conn),
                _ => {}
            }
        }
    }

    /// Runs `sql` with the simple protocol (results in text format).
    pub async fn simple(&mut self, sql: &str) -> Result<Outcome, String> {
        let mut body = Vec::new();
        cstr(&mut body, sql);
        self.send(&frame(b'Q', &body)).await?;
        self.collect(None).await
    }

    /// Runs `COPY ... FROM STDIN` with the simple protocol (as psql does), sending `data` in
    /// CopyData messages of at most 64 kB: the command tag, or the error.
    pub async fn copy_in(
        &mut self,
        sql: &str,
        data: &[u8],
    ) -> Result<Result<String, ServerError>, String> {
        let mut body = Vec::new();
        cstr(&mut body, sql);
        self.send(&frame(b'Q', &body)).await?;
        loop {
            let (tag, body) = self.next_msg().await?;
            match tag {
                b'G' => break,
                b'E' => {
                    let error = parse_error(&body);
                    while self.next_msg().await?.0 != b'Z' {}
                    return Ok(Err(error));
                }
                b'N' | b'S' => {}
                other => return Err(format!("unexpected message {:?} for COPY", other as char)),
            }
        }
        let mut out = Vec::new();
        for chunk in data.chunks(64 << 10) {
            out.extend(frame(b'd', chunk));
        }
        out.extend(frame(b'c', b""));
        self.send(&out).await?;
        Ok(self.collect(None).await?.map(|answer| answer.tag))
    }

    /// Runs `sql` with the extended protocol: Parse + Describe statement + Sync, then Bind
    /// (`params` as described, every result column binary) + Describe portal + Execute + Sync.
    pub async fn extended(
        &mut self,
        sql: &str,
        params: &[String],
        format: ParamFormat,
    ) -> Result<Outcome, String> {
        let mut parse = Vec::new();
        cstr(&mut parse, "");
        cstr(&mut parse, sql);
        parse.extend_from_slice(&0i16.to_be_bytes());
        let mut out = frame(b'P', &parse);
        out.extend(frame(b'D', b"S\0"));
        out.extend(frame(b'S', b""));
        self.send(&out).await?;
        let described = match self.collect_describe().await? {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let bind = bind_body(params, &described.0, format)?;
        let mut out = frame(b'B', &bind);
        out.extend(frame(b'D', b"P\0"));
        out.extend(frame(b'E', b"\0\0\0\0\0"));
        out.extend(frame(b'S', b""));
        self.send(&out).await?;
        self.collect(Some(described)).await
    }

    /// Reads the answer to Parse + Describe statement + Sync.
    async fn collect_describe(
        &mut self,
    ) -> Result<Result<(Vec<u32>, Option<Vec<Column>>), ServerError>, String> {
        let mut params = None;
        let mut columns = None;
        let mut error = None;
        loop {
            let (tag, body) = self.next_msg().await?;
            match tag {
                b'1' => {}
                b't' => params = Some(parse_param_oids(&body)?),
                b'T' => columns = Some(Some(parse_row_description(&body)?)),
                b'n' => columns = Some(None),
                b'E' => error = Some(parse_error(&body)),
                b'Z' => break,
                b'N' | b'S' => {}
                other => return Err(format!("unexpected message {:?}", other as char)),
            }
        }
        if let Some(e) = error {
            return Ok(Err(e));
        }
        match (params, columns) {
            (Some(p), Some(c)) => Ok(Ok((p, c))),
            _ => Err("Describe statement: no ParameterDescription/RowDescription".into()),
        }
    }

    /// Reads one statement's answer up to ReadyForQuery.
    async fn collect(
        &mut self,
        described: Option<(Vec<u32>, Option<Vec<Column>>)>,
    ) -> Result<Outcome, String> {
        let mut columns = None;
        let mut rows = Vec::new();
        let mut tag = None;
        let mut error = None;
        loop {
            let (t, body) = self.next_msg().await?;
            match t {
                b'T' => columns = Some(parse_row_description(&body)?),
                b'D' => rows.push(parse_data_row(&body)?),
                b'C' => tag = Some(cstring(&body)?),
                b'E' => error = Some(parse_error(&body)),
                b'Z' => break,
                b'2' | b'n' | b'N' | b'S' | b'I' => {}
                other => return Err(format!("unexpected message {:?}", other as char)),
            }
        }
        if let Some(e) = error {
            return Ok(Err(e));
        }
        let tag = tag.ok_or("no CommandComplete before ReadyForQuery")?;
        Ok(Ok(Answer {
            columns,
            rows,
            tag,
            described,
        }))
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// The next message: tag and body.
    async fn next_msg(&mut self) -> Result<(u8, Vec<u8>), String> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if !(4..=MAX_MESSAGE).contains(&len) {
                    return Err(format!("bad message length {len}"));
                }
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    self.buf.advance(5);
                    let body = self.buf.split_to(len - 4).to_vec();
                    return Ok((tag, body));
                }
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
        }
    }
}

/// A Bind body for the unnamed portal/statement: parameters encoded per `format` and the
/// described types, one result format code (binary) for every column.
fn bind_body(params: &[String], types: &[u32], format: ParamFormat) -> Result<Vec<u8>, String> {
    if params.len() != types.len() {
        return Err(format!(
            "{} parameters given, the statement has {}",
            params.len(),
            types.len()
        ));
    }
    let mut body = Vec::new();
    cstr(&mut body, "");
    cstr(&mut body, "");
    let encoded: Vec<(i16, Vec<u8>)> = params
        .iter()
        .zip(types)
        .map(|(value, oid)| match format {
            ParamFormat::Text => Ok((0, value.as_bytes().to_vec())),
            ParamFormat::Binary => encode_binary(value, *oid),
        })
        .collect::<Result<_, String>>()?;
    body.extend_from_slice(&(encoded.len() as i16).to_be_bytes());
    for (fmt, _) in &encoded {
        body.extend_from_slice(&fmt.to_be_bytes());
    }
    body.extend_from_slice(&(encoded.len() as i16).to_be_bytes());
    for (_, bytes) in &encoded {
        body.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        body.extend_from_slice(bytes);
    }
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    Ok(body)
}

/// A parameter in binary format when the type is one we encode, else in text format.
fn encode_binary(value: &str, oid: u32) -> Result<(i16, Vec<u8>), String> {
    let bad = |e: &dyn std::fmt::Display| format!("parameter {value:?} as type {oid}: {e}");
    let bytes = match oid {
        21 => value
            .parse::<i16>()
            .map_err(|e| bad(&e))?
            .to_be_bytes()
            .to_vec(),
        23 => value
            .parse::<i32>()
            .map_err(|e| bad(&e))?
            .to_be_bytes()
            .to_vec(),
        20 => value
            .parse::<i64>()
            .map_err(|e| bad(&e))?
            .to_be_bytes()
            .to_vec(),
        701 => value
            .parse::<f64>()
            .map_err(|e| bad(&e))?
            .to_be_bytes()
            .to_vec(),
        16 => vec![u8::from(matches!(value, "t" | "true"))],
        25 | 1043 => value.as_bytes().to_vec(),
        _ => return Ok((0, value.as_bytes().to_vec())),
    };
    Ok((1, bytes))
}

/// Bounds-checked reading of a message body.
struct Body<'a>(&'a [u8]);

impl Body<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!("message too short ({} < {n})", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn cstr(&mut self) -> Result<String, String> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or("unterminated string")?;
        let s = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(s)
    }
}

fn cstring(body: &[u8]) -> Result<String, String> {
    Body(body).cstr()
}

fn parse_row_description(body: &[u8]) -> Result<Vec<Column>, String> {
    let mut r = Body(body);
    let n = r.i16()?;
    (0..n)
        .map(|_| {
            let name = r.cstr()?;
            let _table_oid = r.i32()?;
            let _attnum = r.i16()?;
            Ok(Column {
                name,
                type_oid: r.i32()? as u32,
                type_len: r.i16()?,
                type_mod: r.i32()?,
                format: r.i16()?,
            })
        })
        .collect()
}

fn parse_param_oids(body: &[u8]) -> Result<Vec<u32>, String> {
    let mut r = Body(body);
    let n = r.i16()?;
    (0..n).map(|_| Ok(r.i32()? as u32)).collect()
}

fn parse_data_row(body: &[u8]) -> Result<Row, String> {
    let mut r = Body(body);
    let n = r.i16()?;
    (0..n)
        .map(|_| {
            let len = r.i32()?;
            if len < 0 {
                Ok(None)
            } else {
                Ok(Some(r.take(len as usize)?.to_vec()))
            }
        })
        .collect()
}

fn parse_error(body: &[u8]) -> ServerError {
    let field = |tag: u8| {
        body.split(|b| *b == 0)
            .find(|f| f.first() == Some(&tag))
            .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
            .unwrap_or_default()
    };
    ServerError {
        code: field(b'C'),
        message: field(b'M'),
    }
}
