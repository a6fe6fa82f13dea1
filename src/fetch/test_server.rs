//! A small HTTP/1.1 file server on 127.0.0.1 for the download tests: range requests, and
//! files that break the connection part way on their first request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Served {
    pub bytes: Vec<u8>,
    /// On the first request, send the headers for the whole file and only this many bytes.
    pub drop_first_after: Option<usize>,
}

pub struct Server {
    pub base: String,
    /// Every request seen: (path, Range header).
    pub requests: Arc<Mutex<Vec<(String, Option<String>)>>>,
}

pub fn serve(files: HashMap<String, Served>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let requests: Arc<Mutex<Vec<(String, Option<String>)>>> = Arc::default();
    let seen = requests.clone();
    std::thread::spawn(move || {
        let mut first = HashMap::<String, bool>::new();
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let mut range = None;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("range") {
                        range = Some(value.trim().to_string());
                    }
                }
            }
            seen.lock().unwrap().push((path.clone(), range.clone()));
            let mut out = stream;
            let Some(file) = files.get(&path) else {
                let _ = out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            let from: usize = range.as_deref().and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.trim_end_matches('-').parse().ok()).unwrap_or(0).min(file.bytes.len());
            let body = &file.bytes[from..];
            let head = if range.is_some() {
                format!("HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n", body.len(), file.bytes.len().saturating_sub(1), file.bytes.len())
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            };
            let _ = out.write_all(head.as_bytes());
            let is_first = !first.insert(path.clone(), true).unwrap_or(false);
            let send = match file.drop_first_after {
                Some(n) if is_first => &body[..n.min(body.len())],
                _ => body,
            };
            let _ = out.write_all(send);
            let _ = out.flush();
        }
    });
    Server { base, requests }
}
