//! A minimal, frugal SSE client over a raw TCP connection (HTTP/1.1, chunked), so that thousands
//! of checking clients fit beside the server on one machine.

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct SseConn {
    stream: TcpStream,
    /// Bytes as received (chunked framing included).
    raw: Vec<u8>,
    /// The decoded body not yet parsed into events.
    body: Vec<u8>,
    chunked: bool,
    /// Bytes left in the current chunk.
    left: usize,
    ended: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl SseConn {
    pub async fn connect(host: &str, port: u16, path: &str) -> Result<SseConn> {
        SseConn::connect_with(host, port, path, &[]).await
    }

    /// Opens `http://host:port/path` (for tests) with extra request headers.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Result<SseConn> {
        let rest = url.strip_prefix("http://").context("an http:// URL")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = authority.rsplit_once(':').context("a URL with a port")?;
        let path = if path.is_empty() { "/" } else { path };
        SseConn::connect_with(host, port.parse()?, path, headers).await
    }

    /// The next event with data, for tests: panics on a read error or after 20 s of silence.
    /// `None` when the stream ended.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(std::time::Duration::from_secs(20), self.next())
            .await
            .expect("the stream stalled for 20 s")
            .expect("the stream is readable")
    }

    /// Opens `path` on `host:port` with extra request headers (a session cookie).
    pub async fn connect_with(host: &str, port: u16, path: &str, headers: &[(&str, &str)]) -> Result<SseConn> {
        let mut stream =
            TcpStream::connect((host, port)).await.with_context(|| format!("connecting to {host}:{port}"))?;
        stream.set_nodelay(true)?;
        let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n{extra}\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut conn = SseConn { stream, raw: Vec::new(), body: Vec::new(), chunked: false, left: 0, ended: false };
        let end = loop {
            if let Some(end) = find(&conn.raw, b"\r\n\r\n") {
                break end;
            }
            if !conn.read_more().await? {
                bail!("connection closed in the response headers");
            }
        };
        let head = String::from_utf8_lossy(&conn.raw[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            bail!("event stream refused: {}", head.lines().next().unwrap_or(""));
        }
        conn.chunked = head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        conn.raw.drain(..end + 4);
        conn.decode();
        Ok(conn)
    }

    async fn read_more(&mut self) -> Result<bool> {
        let mut tmp = [0u8; 4096];
        let n = self.stream.read(&mut tmp).await?;
        self.raw.extend_from_slice(&tmp[..n]);
        Ok(n > 0)
    }

    /// Moves decodable bytes from `raw` to `body`, undoing chunked framing.
    fn decode(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            if self.left == 0 {
                // Skip the CRLF that ends a chunk, then read the next size line.
                while self.raw.starts_with(b"\r\n") {
                    self.raw.drain(..2);
                }
                let Some(eol) = find(&self.raw, b"\r\n") else { return };
                let size = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
                self.raw.drain(..eol + 2);
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).unwrap_or(0);
                if n == 0 {
                    self.ended = true;
                    return;
                }
                self.left = n;
            }
            if self.raw.is_empty() {
                return;
            }
            let n = self.left.min(self.raw.len());
            self.body.extend(self.raw.drain(..n));
            self.left -= n;
        }
    }

    /// The next event with data (comments and retry-only blocks are skipped). `None` at the end.
    pub async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            while let Some(pos) = find(&self.body, b"\n\n") {
                let block: Vec<u8> = self.body.drain(..pos + 2).collect();
                if let Some(ev) = parse_block(&String::from_utf8_lossy(&block)) {
                    return Ok(Some(ev));
                }
            }
            if self.ended || !self.read_more().await? {
                return Ok(None);
            }
            self.decode();
        }
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut ev = SseEvent { event: "message".into(), ..Default::default() };
    let mut has_data = false;
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("data:") {
            if has_data {
                ev.data.push('\n');
            }
            ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            has_data = true;
        } else if let Some(v) = line.strip_prefix("id:") {
            ev.id = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("event:") {
            ev.event = v.trim().to_owned();
        }
    }
    has_data.then_some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let ev = parse_block("id: 7\nevent: faculty\ndata: {\"id\":1}\n\n").unwrap();
        assert_eq!((ev.id.as_deref(), ev.event.as_str(), ev.data.as_str()), (Some("7"), "faculty", "{\"id\":1}"));
        assert_eq!(parse_block(": keep-alive\n\n"), None);
        assert_eq!(parse_block("retry: 1000\n\n"), None);
    }
}
