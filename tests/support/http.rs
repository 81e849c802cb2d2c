//! A tiny loopback HTTP/1.1 server for download tests: serves one byte buffer at any path ending
//! in `.pt` (404 otherwise), honours `Range: bytes=N-`, and misbehaves on demand ([`Plan`]).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What to do with the `i`-th request.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// Serve the file (honouring Range unless `ignore_range`).
    Full { ignore_range: bool },
    /// Announce the full length, send `after` body bytes, then close the connection.
    Drop { after: usize },
    /// Answer with this status and no body.
    Status(u16),
    /// Serve only the first `n` bytes, with a matching Content-Length.
    Truncated(usize),
    /// Serve the whole file slowly: `chunk` bytes, then sleep `delay_ms`.
    Slow { chunk: usize, delay_ms: u64 },
}

/// (path, range start) of each request.
type Log = Arc<Mutex<Vec<(String, Option<u64>)>>>;

pub struct Server {
    port: u16,
    reqs: Log,
}

impl Server {
    pub fn start(data: Arc<Vec<u8>>, plan: impl Fn(usize, Option<u64>) -> Plan + Send + Sync + 'static) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let reqs = Arc::new(Mutex::new(Vec::new()));
        let r2 = reqs.clone();
        std::thread::spawn(move || {
            let plan = Arc::new(plan);
            for (i, s) in l.incoming().enumerate() {
                let Ok(s) = s else { continue };
                let (data, plan, r2) = (data.clone(), plan.clone(), r2.clone());
                // One thread per connection, so that concurrent clients are served concurrently.
                std::thread::spawn(move || {
                    let _ = handle(s, i, &data, &*plan, &r2);
                });
            }
        });
        Server { port, reqs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (path, range start) of every request so far.
    pub fn requests(&self) -> Vec<(String, Option<u64>)> {
        self.reqs.lock().unwrap().clone()
    }
}

fn handle(
    mut s: TcpStream,
    i: usize,
    data: &[u8],
    plan: &dyn Fn(usize, Option<u64>) -> Plan,
    reqs: &Mutex<Vec<(String, Option<u64>)>>,
) -> std::io::Result<()> {
    let mut rd = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    rd.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if rd.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range:") {
            range = v.trim().strip_prefix("bytes=").and_then(|r| r.trim_end_matches('-').parse::<u64>().ok());
        }
    }
    reqs.lock().unwrap().push((path.clone(), range));
    if !path.ends_with(".pt") {
        return s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    match plan(i, range) {
        Plan::Status(code) => {
            write!(s, "HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Plan::Slow { chunk, delay_ms } => {
            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len())?;
            for c in data.chunks(chunk) {
                s.write_all(c)?;
                std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            }
            Ok(())
        }
        Plan::Truncated(n) => {
            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n")?;
            s.write_all(&data[..n])
        }
        Plan::Drop { after } => {
            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len())?;
            s.write_all(&data[..after])?;
            s.flush()?;
            s.shutdown(std::net::Shutdown::Both)
        }
        Plan::Full { ignore_range } => match range {
            Some(start) if !ignore_range && (start as usize) < data.len() => {
                let body = &data[start as usize..];
                write!(
                    s,
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                    body.len(),
                    data.len() - 1,
                    data.len()
                )?;
                s.write_all(body)
            }
            _ => {
                write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len())?;
                s.write_all(data)
            }
        },
    }
}
