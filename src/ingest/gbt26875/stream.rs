//! Frames out of a TCP byte stream: TCP splits and glues frames, and a line may carry
//! garbage. The decoder scans for `@@`, trusts the length field, and checks for `##` where
//! the length says the frame ends; what does not frame is skipped a byte at a time and
//! counted. It holds at most one longest frame of bytes beyond what was last pushed.

use super::frame::{adu_len, serial_of, END, HEADER, MAX_ADU, OVERHEAD, START};

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// The bytes of one framed frame (`@@` … `##`, length as announced), checksum unchecked.
    Frame(Vec<u8>),
    /// A header announcing an ADU over 1024 bytes (to deny by its serial); skipped.
    TooLong {
        /// Its serial.
        serial: u16,
        /// The length it announced.
        len: usize,
    },
}

/// A stream decoder for one connection.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` begin.
    pos: usize,
    garbage: u64,
}

impl Decoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Bytes skipped as not part of any frame so far.
    pub const fn garbage(&self) -> u64 {
        self.garbage
    }

    /// Bytes held, waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Adds bytes as read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn skip(&mut self, n: usize) {
        let n = n.min(self.buffered());
        self.pos += n;
        self.garbage += n as u64;
    }

    /// The next chunk, or `None` until more bytes come.
    pub fn next_chunk(&mut self) -> Option<Chunk> {
        loop {
            let rest = &self.buf[self.pos..];
            // Up to the next `@@` (a lone `@` at the end may start one).
            match rest.windows(2).position(|w| w == START) {
                Some(0) => {}
                Some(i) => self.skip(i),
                None => {
                    let keep = usize::from(rest.last() == Some(&START[0]));
                    self.skip(rest.len() - keep);
                    return None;
                }
            }
            let rest = &self.buf[self.pos..];
            let len = adu_len(rest)?;
            if len > MAX_ADU {
                // `@@@`: most likely a stray `@` before a frame, not a frame to deny.
                let stray = rest.get(2) == Some(&START[0]);
                let serial = serial_of(rest).unwrap_or(0);
                self.skip(1);
                if stray {
                    continue;
                }
                return Some(Chunk::TooLong { serial, len });
            }
            let total = OVERHEAD + len;
            if rest.len() < total {
                return None;
            }
            if rest[HEADER + len + 1..total] != END {
                // Not a frame start after all (an `@@` inside garbage, or a frame cut short
                // by the sender): look for the next one.
                self.skip(1);
                continue;
            }
            let frame = rest[..total].to_vec();
            self.pos += total;
            return Some(Chunk::Frame(frame));
        }
    }
}
