//! One GB/T 26875.3 frame (Table 1): `@@`, serial, version, time label, source and
//! destination address, ADU length, command, ADU, checksum, `##`. Multi-byte fields are
//! little-endian. What vendors do differently (time labels in BCD, an XOR checksum, a checksum
//! over the start bytes too, addresses that carry an IP address and port) is a [`Profile`].

use serde::Deserialize;
use std::fmt;

/// `@@`
pub const START: [u8; 2] = *b"@@";
/// `##`
pub const END: [u8; 2] = *b"##";
/// The longest ADU the standard allows.
pub const MAX_ADU: usize = 1024;
/// Bytes before the ADU: start 2, serial 2, version 2, time 6, addresses 12, length 2,
/// command 1.
pub const HEADER: usize = 27;
/// Bytes around the ADU: the header, the checksum and the end.
pub const OVERHEAD: usize = HEADER + 3;

/// The command byte (Table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// 1: control (clock sync, initialise, duty check).
    Control,
    /// 2: send data (uploads, heartbeats).
    Send,
    /// 3: confirm.
    Confirm,
    /// 4: request (reads).
    Request,
    /// 5: response (to a request).
    Response,
    /// 6: deny.
    Deny,
    /// 0, 7–127 reserved, 128–255 user-defined.
    Other(u8),
}

impl Command {
    /// The byte.
    pub const fn code(self) -> u8 {
        match self {
            Command::Control => 1,
            Command::Send => 2,
            Command::Confirm => 3,
            Command::Request => 4,
            Command::Response => 5,
            Command::Deny => 6,
            Command::Other(c) => c,
        }
    }

    /// From the byte.
    pub const fn from_code(c: u8) -> Command {
        match c {
            1 => Command::Control,
            2 => Command::Send,
            3 => Command::Confirm,
            4 => Command::Request,
            5 => Command::Response,
            6 => Command::Deny,
            c => Command::Other(c),
        }
    }
}

/// How a time label is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeCoding {
    /// Each field a binary number (the standard).
    #[default]
    Binary,
    /// Each field two BCD digits (some vendors).
    Bcd,
}

/// How the checksum is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    /// The low 8 bits of the sum (the standard).
    #[default]
    Sum,
    /// The XOR of the bytes (some vendors).
    Xor,
}

/// How the 6-byte addresses are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressForm {
    /// A little-endian number (the standard): `889`.
    #[default]
    Number,
    /// An IPv4 address and a little-endian port: `192.168.1.20:5000`.
    IpPort,
}

/// What a vendor's devices do differently from the standard.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Time labels in binary or BCD.
    pub time: TimeCoding,
    /// The time zone of the time labels (default China Standard Time).
    pub tz: jiff::tz::TimeZone,
    /// Sum or XOR.
    pub checksum: Checksum,
    /// Whether the checksum starts at the start bytes (offset 0) instead of the serial
    /// (offset 2, the standard).
    pub checksum_from_start: bool,
    /// How addresses are read.
    pub address: AddressForm,
    /// Resolution per analog type, over Table 6's.
    pub scales: Vec<(u8, f64)>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            time: TimeCoding::Binary,
            tz: jiff::tz::TimeZone::fixed(jiff::tz::offset(8)),
            checksum: Checksum::Sum,
            checksum_from_start: false,
            address: AddressForm::Number,
            scales: Vec::new(),
        }
    }
}

impl Profile {
    /// The checksum of `frame` (a whole frame, or everything before its checksum byte).
    pub fn checksum_of(&self, frame: &[u8], adu_len: usize) -> u8 {
        let from = if self.checksum_from_start { 0 } else { 2 };
        let bytes = frame.get(from..HEADER + adu_len).unwrap_or_default();
        match self.checksum {
            Checksum::Sum => bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)),
            Checksum::Xor => bytes.iter().fold(0u8, |a, b| a ^ b),
        }
    }

    /// The resolution of analog type `t`: the profile's, else Table 6's (1 for reserved and
    /// user-defined types).
    pub fn scale(&self, t: u8) -> f64 {
        if let Some((_, s)) = self.scales.iter().find(|(k, _)| *k == t) {
            return *s;
        }
        match t {
            2 => 0.01,
            3..=6 | 8..=11 => 0.1,
            _ => 1.0,
        }
    }
}

/// A time label as sent: second, minute, hour, day, month, year (0–99, from 2000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeLabel(pub [u8; 6]);

impl TimeLabel {
    /// The label of `ms` (epoch milliseconds) in the profile's zone and coding.
    pub fn at(ms: i64, p: &Profile) -> TimeLabel {
        let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
            return TimeLabel::default();
        };
        let z = ts.to_zoned_datetime(p.tz.clone());
        let year = (z.year() - 2000).clamp(0, 99) as u8;
        let f = [
            z.second() as u8,
            z.minute() as u8,
            z.hour() as u8,
            z.day() as u8,
            z.month() as u8,
            year,
        ];
        TimeLabel(match p.time {
            TimeCoding::Binary => f,
            TimeCoding::Bcd => f.map(|v| ((v / 10) << 4) | (v % 10)),
        })
    }

    /// Epoch milliseconds, or `None` when the label is not a valid time (a panel whose clock
    /// was never set sends zeros or nonsense).
    pub fn millis(&self, p: &Profile) -> Option<i64> {
        let f = match p.time {
            TimeCoding::Binary => self.0,
            TimeCoding::Bcd => {
                let mut out = [0u8; 6];
                for (o, b) in out.iter_mut().zip(self.0) {
                    if b >> 4 > 9 || b & 0xF > 9 {
                        return None;
                    }
                    *o = (b >> 4) * 10 + (b & 0xF);
                }
                out
            }
        };
        let [sec, min, hour, day, month, year] = f;
        if year > 99 {
            return None;
        }
        let dt = jiff::civil::DateTime::new(
            2000 + i16::from(year),
            i8::try_from(month).ok()?,
            i8::try_from(day).ok()?,
            i8::try_from(hour).ok()?,
            i8::try_from(min).ok()?,
            i8::try_from(sec).ok()?,
            0,
        )
        .ok()?;
        Some(
            dt.to_zoned_datetime(p.tz.clone())
                .ok()?
                .timestamp()
                .as_millisecond(),
        )
    }
}

/// A 6-byte address (source or destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// The address of number `n` (little-endian).
    pub fn number(n: u64) -> Address {
        let b = n.to_le_bytes();
        Address([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// As text in the profile's form: `889`, or `192.168.1.20:5000`.
    pub fn text(&self, form: AddressForm) -> String {
        let b = self.0;
        match form {
            AddressForm::Number => {
                u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0]).to_string()
            }
            AddressForm::IpPort => format!(
                "{}.{}.{}.{}:{}",
                b[0],
                b[1],
                b[2],
                b[3],
                u16::from_le_bytes([b[4], b[5]])
            ),
        }
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Serial number: the initiator counts up, the responder echoes it.
    pub serial: u16,
    /// Version: major (1 in the standard; other values accepted), user.
    pub version: [u8; 2],
    /// When it was sent, by the sender's clock.
    pub time: TimeLabel,
    /// Who sent it.
    pub source: Address,
    /// Who it is for.
    pub destination: Address,
    /// The command byte.
    pub command: Command,
    /// The application data unit (may be empty).
    pub adu: Vec<u8>,
}

/// Why bytes that are framed as a frame are not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a frame needs.
    #[error("frame of {0} bytes is shorter than its header and length say")]
    Short(usize),
    /// No `@@` at the start.
    #[error("frame does not start with @@")]
    Start,
    /// No `##` at the end.
    #[error("frame does not end with ##")]
    End,
    /// The ADU length is over 1024.
    #[error("ADU length {0} is over 1024")]
    TooLong(usize),
    /// The checksum does not match.
    #[error("checksum {got:#04x}, expected {expected:#04x}")]
    Checksum {
        /// As sent.
        got: u8,
        /// As computed.
        expected: u8,
    },
}

/// The ADU length a header announces (bytes 24–25), once 26 bytes are there.
pub fn adu_len(bytes: &[u8]) -> Option<usize> {
    let l = bytes.get(24..26)?;
    Some(usize::from(u16::from_le_bytes([l[0], l[1]])))
}

/// The serial of a frame's header, once 4 bytes are there (to deny a bad frame by it).
pub fn serial_of(bytes: &[u8]) -> Option<u16> {
    let s = bytes.get(2..4)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// The source address of a frame's header, once 18 bytes are there (to pick the profile
/// of its device before the checksum is checked).
pub fn source_of(bytes: &[u8]) -> Option<Address> {
    let a = bytes.get(12..18)?;
    let mut out = [0u8; 6];
    out.copy_from_slice(a);
    Some(Address(out))
}

impl Frame {
    /// Decodes exactly one frame.
    pub fn decode(bytes: &[u8], p: &Profile) -> Result<Frame, FrameError> {
        if bytes.len() < OVERHEAD {
            return Err(FrameError::Short(bytes.len()));
        }
        if bytes[..2] != START {
            return Err(FrameError::Start);
        }
        let len = adu_len(bytes).ok_or(FrameError::Short(bytes.len()))?;
        if len > MAX_ADU {
            return Err(FrameError::TooLong(len));
        }
        if bytes.len() < OVERHEAD + len {
            return Err(FrameError::Short(bytes.len()));
        }
        if bytes[HEADER + len + 1..HEADER + len + 3] != END {
            return Err(FrameError::End);
        }
        let expected = p.checksum_of(bytes, len);
        let got = bytes[HEADER + len];
        if got != expected {
            return Err(FrameError::Checksum { got, expected });
        }
        let six = |at: usize| {
            let mut out = [0u8; 6];
            out.copy_from_slice(&bytes[at..at + 6]);
            out
        };
        Ok(Frame {
            serial: u16::from_le_bytes([bytes[2], bytes[3]]),
            version: [bytes[4], bytes[5]],
            time: TimeLabel(six(6)),
            source: Address(six(12)),
            destination: Address(six(18)),
            command: Command::from_code(bytes[26]),
            adu: bytes[HEADER..HEADER + len].to_vec(),
        })
    }

    /// Encodes the frame (an ADU over 1024 bytes is cut there; nothing firewatch builds is).
    pub fn encode(&self, p: &Profile) -> Vec<u8> {
        let adu = &self.adu[..self.adu.len().min(MAX_ADU)];
        let mut out = Vec::with_capacity(OVERHEAD + adu.len());
        out.extend_from_slice(&START);
        out.extend_from_slice(&self.serial.to_le_bytes());
        out.extend_from_slice(&self.version);
        out.extend_from_slice(&self.time.0);
        out.extend_from_slice(&self.source.0);
        out.extend_from_slice(&self.destination.0);
        out.extend_from_slice(&(adu.len() as u16).to_le_bytes());
        out.push(self.command.code());
        out.extend_from_slice(adu);
        out.push(p.checksum_of(&out, adu.len()));
        out.extend_from_slice(&END);
        out
    }

    /// The answer to this frame: `command` (confirm or deny) with the serial echoed and the
    /// addresses swapped, sent at `time`.
    pub fn answer(&self, command: Command, time: TimeLabel) -> Frame {
        Frame {
            serial: self.serial,
            version: self.version,
            time,
            source: self.destination,
            destination: self.source,
            command,
            adu: Vec::new(),
        }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "serial {} command {} ADU {} bytes",
            self.serial,
            self.command.code(),
            self.adu.len()
        )
    }
}
