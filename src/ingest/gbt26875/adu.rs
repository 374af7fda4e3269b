//! The application data unit (Table 3): a type, an object count and the objects. Every
//! upload type of the standard (1–8, 21, 24–26, 28) and every command firewatch sends (61–68,
//! 81, 84–86, 88–91) is decoded and encoded here; other types are kept as bytes.

use super::frame::TimeLabel;

/// A facility system: its type (1 fire alarm system, 11 hydrant, …) and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct System {
    /// System type.
    pub kind: u8,
    /// System address.
    pub addr: u8,
}

/// A component of a system: its type (40 smoke detector, …) and 4-byte address (vendors use
/// zone + point, or loop + point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Component {
    /// The system it belongs to.
    pub system: System,
    /// Component type.
    pub kind: u8,
    /// Component address.
    pub addr: u32,
}

/// A component's address in a read command (no component type there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Point {
    /// The system.
    pub system: System,
    /// The component address.
    pub addr: u32,
}

/// A status word with its time (types 1 and 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    /// Which component.
    pub component: Component,
    /// Status bits (section 2.3 of the domain notes).
    pub status: u16,
    /// Its description (GB 18030, up to 31 bytes, ended by a NUL).
    pub description: String,
    /// When.
    pub time: TimeLabel,
}

/// An analog value (type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Analog {
    /// Which component.
    pub component: Component,
    /// Analog type (Table 6).
    pub kind: u8,
    /// The raw value (× the type's resolution).
    pub raw: i16,
    /// When.
    pub time: TimeLabel,
}

/// An operation record (types 4 and 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The system (type 4; none for the transmitter's own, type 24).
    pub system: Option<System>,
    /// Operation flags.
    pub flags: u8,
    /// Operator number.
    pub operator: u8,
    /// When.
    pub time: TimeLabel,
}

/// One ADU.
#[derive(Debug, Clone, PartialEq)]
pub enum Adu {
    /// 1 ↑ facility system status.
    SystemStatus(Vec<(System, u16, TimeLabel)>),
    /// 2 ↑ component status.
    ComponentStatus(Vec<ComponentStatus>),
    /// 3 ↑ component analog values.
    ComponentAnalog(Vec<Analog>),
    /// 4 ↑ facility operations.
    SystemOperation(Vec<Operation>),
    /// 5 ↑ facility software versions (major, minor).
    SystemVersion(Vec<(System, u8, u8)>),
    /// 6 ↑ facility configuration.
    SystemConfig(Vec<(System, String)>),
    /// 7 ↑ component configuration.
    ComponentConfig(Vec<(Component, String)>),
    /// 8 ↑ facility time.
    SystemTime(Vec<(System, TimeLabel)>),
    /// 21 ↑ transmitter (UITD) status.
    UitdStatus(Vec<(u8, TimeLabel)>),
    /// 24 ↑ transmitter operations, the duty-check answer among them.
    UitdOperation(Vec<Operation>),
    /// 25 ↑ transmitter software version.
    UitdVersion(u8, u8),
    /// 26 ↑ transmitter configuration.
    UitdConfig(String),
    /// 28 ↑ transmitter time.
    UitdTime(TimeLabel),
    /// 61 ↓ read facility status.
    ReadSystemStatus(Vec<System>),
    /// 62 ↓ read component status.
    ReadComponentStatus(Vec<Point>),
    /// 63 ↓ read component analog values.
    ReadComponentAnalog(Vec<Point>),
    /// 64 ↓ read facility operations: how many, from when.
    ReadSystemOperations(System, u8, TimeLabel),
    /// 65 ↓ read a facility's software version.
    ReadSystemVersion(System),
    /// 66 ↓ read facility configuration.
    ReadSystemConfig(Vec<System>),
    /// 67 ↓ read component configuration.
    ReadComponentConfig(Vec<Point>),
    /// 68 ↓ read a facility's time.
    ReadSystemTime(System),
    /// 81 ↓ read the transmitter's status.
    ReadUitdStatus,
    /// 84 ↓ read the transmitter's operations: how many, from when.
    ReadUitdOperations(u8, TimeLabel),
    /// 85 ↓ read its software version.
    ReadUitdVersion,
    /// 86 ↓ read its configuration.
    ReadUitdConfig,
    /// 88 ↓ read its time.
    ReadUitdTime,
    /// 89 ↓ initialise it.
    InitUitd,
    /// 90 ↓ set its clock.
    SyncClock(TimeLabel),
    /// 91 ↓ duty check (查岗): answer within this many minutes.
    DutyCheck(u8),
    /// A reserved or user-defined type, kept as sent.
    Other(u8, Vec<u8>),
}

/// Why an ADU cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AduError {
    /// Shorter than its type and count say.
    #[error("ADU type {kind}: {len} bytes do not hold {count} objects")]
    Short {
        /// The type.
        kind: u8,
        /// The count.
        count: u8,
        /// The bytes after type and count.
        len: usize,
    },
    /// Only a type byte, or nothing.
    #[error("ADU of {0} bytes has no object count")]
    NoCount(usize),
}

const DESCRIPTION: usize = 31;

/// Text from GB 18030 bytes, up to the first NUL (vendors leave bytes after it). Padding
/// spaces are kept, so that the bytes encode back as they came.
fn text(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    let (s, _, _) = encoding_rs::GB18030.decode(&b[..end]);
    s.into_owned()
}

/// GB 18030 bytes of `s`, cut to `max` whole characters' bytes.
fn gb(s: &str, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for ch in s.chars() {
        let mut buf = [0u8; 4];
        let (b, _, _) = encoding_rs::GB18030.encode(ch.encode_utf8(&mut buf));
        if out.len() + b.len() > max {
            break;
        }
        out.extend_from_slice(&b);
    }
    out
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> u8 {
        let v = self.b.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let s = self.b.get(self.at..self.at + n).unwrap_or_default();
        self.at += n;
        s
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn time(&mut self) -> TimeLabel {
        let mut t = [0u8; 6];
        for (o, b) in t.iter_mut().zip(self.bytes(6)) {
            *o = *b;
        }
        TimeLabel(t)
    }
    fn system(&mut self) -> System {
        System {
            kind: self.u8(),
            addr: self.u8(),
        }
    }
    fn component(&mut self) -> Component {
        Component {
            system: self.system(),
            kind: self.u8(),
            addr: self.u32(),
        }
    }
    fn point(&mut self) -> Point {
        Point {
            system: self.system(),
            addr: self.u32(),
        }
    }
}

/// Fixed object sizes per type (variable-length types 6 and 26 are checked as they are read).
const fn object_size(kind: u8) -> Option<usize> {
    Some(match kind {
        1 => 10,
        2 => 46,
        3 => 16,
        4 => 10,
        5 => 4,
        7 => 38,
        8 => 8,
        21 => 7,
        24 => 8,
        25 => 2,
        28 => 6,
        61 | 65 | 66 | 68 => 2,
        62 | 63 | 67 => 6,
        64 => 9,
        84 => 7,
        90 => 6,
        81 | 85 | 86 | 88 | 89 | 91 => 1,
        _ => return None,
    })
}

impl Adu {
    /// The type code.
    pub fn kind(&self) -> u8 {
        match self {
            Adu::SystemStatus(_) => 1,
            Adu::ComponentStatus(_) => 2,
            Adu::ComponentAnalog(_) => 3,
            Adu::SystemOperation(_) => 4,
            Adu::SystemVersion(_) => 5,
            Adu::SystemConfig(_) => 6,
            Adu::ComponentConfig(_) => 7,
            Adu::SystemTime(_) => 8,
            Adu::UitdStatus(_) => 21,
            Adu::UitdOperation(_) => 24,
            Adu::UitdVersion(..) => 25,
            Adu::UitdConfig(_) => 26,
            Adu::UitdTime(_) => 28,
            Adu::ReadSystemStatus(_) => 61,
            Adu::ReadComponentStatus(_) => 62,
            Adu::ReadComponentAnalog(_) => 63,
            Adu::ReadSystemOperations(..) => 64,
            Adu::ReadSystemVersion(_) => 65,
            Adu::ReadSystemConfig(_) => 66,
            Adu::ReadComponentConfig(_) => 67,
            Adu::ReadSystemTime(_) => 68,
            Adu::ReadUitdStatus => 81,
            Adu::ReadUitdOperations(..) => 84,
            Adu::ReadUitdVersion => 85,
            Adu::ReadUitdConfig => 86,
            Adu::ReadUitdTime => 88,
            Adu::InitUitd => 89,
            Adu::SyncClock(_) => 90,
            Adu::DutyCheck(_) => 91,
            Adu::Other(k, _) => *k,
        }
    }

    /// Decodes an ADU (`None` for an empty one: a heartbeat, a confirm).
    pub fn decode(b: &[u8]) -> Result<Option<Adu>, AduError> {
        if b.is_empty() {
            return Ok(None);
        }
        if b.len() < 2 {
            return Err(AduError::NoCount(b.len()));
        }
        let (kind, count) = (b[0], b[1]);
        let n = usize::from(count);
        let body = &b[2..];
        let short = || AduError::Short {
            kind,
            count,
            len: body.len(),
        };
        if let Some(size) = object_size(kind) {
            if body.len() < size * n {
                return Err(short());
            }
        }
        let mut r = Reader { b: body, at: 0 };
        let each = |r: &mut Reader<'_>, f: &mut dyn FnMut(&mut Reader<'_>)| {
            for _ in 0..n {
                f(r);
            }
        };
        let mut list = Vec::new();
        Ok(Some(match kind {
            1 => {
                let mut v = Vec::new();
                each(&mut r, &mut |r| v.push((r.system(), r.u16(), r.time())));
                Adu::SystemStatus(v)
            }
            2 => {
                let mut v = Vec::new();
                each(&mut r, &mut |r| {
                    v.push(ComponentStatus {
                        component: r.component(),
                        status: r.u16(),
                        description: text(r.bytes(DESCRIPTION)),
                        time: r.time(),
                    })
                });
                Adu::ComponentStatus(v)
            }
            3 => {
                let mut v = Vec::new();
                each(&mut r, &mut |r| {
                    v.push(Analog {
                        component: r.component(),
                        kind: r.u8(),
                        raw: r.u16() as i16,
                        time: r.time(),
                    })
                });
                Adu::ComponentAnalog(v)
            }
            4 | 24 => {
                let mut v = Vec::new();
                each(&mut r, &mut |r| {
                    v.push(Operation {
                        system: (kind == 4).then(|| r.system()),
                        flags: r.u8(),
                        operator: r.u8(),
                        time: r.time(),
                    })
                });
                if kind == 4 {
                    Adu::SystemOperation(v)
                } else {
                    Adu::UitdOperation(v)
                }
            }
            5 => {
                let mut v = Vec::new();
                each(&mut r, &mut |r| v.push((r.system(), r.u8(), r.u8())));
                Adu::SystemVersion(v)
            }
            6 => {
                let mut v = Vec::new();
                for _ in 0..n {
                    if r.at + 3 > body.len() {
                        return Err(short());
                    }
                    let s = r.system();
                    let len = usize::from(r.u8());
                    if r.at + len > body.len() {
                        return Err(short());
                    }
                    v.push((s, text(r.bytes(len))));
                }
                Adu::SystemConfig(v)
            }
            7 => {
                let mut v = Vec::new();
                each(&mut r, &mut |r| {
                    v.push((r.component(), text(r.bytes(DESCRIPTION))))
                });
                Adu::ComponentConfig(v)
            }
            8 => {
                let mut v = Vec::new();
                each(&mut r, &mut |r| v.push((r.system(), r.time())));
                Adu::SystemTime(v)
            }
            21 => {
                let mut v = Vec::new();
                each(&mut r, &mut |r| v.push((r.u8(), r.time())));
                Adu::UitdStatus(v)
            }
            25 => Adu::UitdVersion(r.u8(), r.u8()),
            26 => {
                let len = usize::from(*body.first().ok_or_else(short)?);
                if body.len() < 1 + len {
                    return Err(short());
                }
                Adu::UitdConfig(text(&body[1..1 + len]))
            }
            28 => Adu::UitdTime(r.time()),
            61 | 66 => {
                each(&mut r, &mut |r| list.push(r.system()));
                if kind == 61 {
                    Adu::ReadSystemStatus(list)
                } else {
                    Adu::ReadSystemConfig(list)
                }
            }
            62 | 63 | 67 => {
                let mut v = Vec::new();
                each(&mut r, &mut |r| v.push(r.point()));
                match kind {
                    62 => Adu::ReadComponentStatus(v),
                    63 => Adu::ReadComponentAnalog(v),
                    _ => Adu::ReadComponentConfig(v),
                }
            }
            64 => Adu::ReadSystemOperations(r.system(), r.u8(), r.time()),
            65 => Adu::ReadSystemVersion(r.system()),
            68 => Adu::ReadSystemTime(r.system()),
            81 => Adu::ReadUitdStatus,
            84 => Adu::ReadUitdOperations(r.u8(), r.time()),
            85 => Adu::ReadUitdVersion,
            86 => Adu::ReadUitdConfig,
            88 => Adu::ReadUitdTime,
            89 => Adu::InitUitd,
            90 => Adu::SyncClock(r.time()),
            91 => Adu::DutyCheck(r.u8()),
            k => Adu::Other(k, b[1..].to_vec()),
        }))
    }

    /// Encodes the ADU (lists of more objects than a count byte holds are cut at 255).
    pub fn encode(&self) -> Vec<u8> {
        let mut o: Vec<u8> = vec![self.kind(), 1];
        let sys = |o: &mut Vec<u8>, s: &System| o.extend([s.kind, s.addr]);
        let comp = |o: &mut Vec<u8>, c: &Component| {
            o.extend([c.system.kind, c.system.addr, c.kind]);
            o.extend(c.addr.to_le_bytes());
        };
        let point = |o: &mut Vec<u8>, p: &Point| {
            o.extend([p.system.kind, p.system.addr]);
            o.extend(p.addr.to_le_bytes());
        };
        let desc = |o: &mut Vec<u8>, s: &str| {
            let mut b = gb(s, DESCRIPTION);
            b.resize(DESCRIPTION, 0);
            o.extend(b);
        };
        let count = |o: &mut Vec<u8>, n: usize| o[1] = n.min(255) as u8;
        match self {
            Adu::SystemStatus(v) => {
                count(&mut o, v.len());
                for (s, st, t) in v.iter().take(255) {
                    sys(&mut o, s);
                    o.extend(st.to_le_bytes());
                    o.extend(t.0);
                }
            }
            Adu::ComponentStatus(v) => {
                count(&mut o, v.len());
                for c in v.iter().take(255) {
                    comp(&mut o, &c.component);
                    o.extend(c.status.to_le_bytes());
                    desc(&mut o, &c.description);
                    o.extend(c.time.0);
                }
            }
            Adu::ComponentAnalog(v) => {
                count(&mut o, v.len());
                for a in v.iter().take(255) {
                    comp(&mut o, &a.component);
                    o.push(a.kind);
                    o.extend(a.raw.to_le_bytes());
                    o.extend(a.time.0);
                }
            }
            Adu::SystemOperation(v) | Adu::UitdOperation(v) => {
                count(&mut o, v.len());
                for op in v.iter().take(255) {
                    if let Adu::SystemOperation(_) = self {
                        sys(&mut o, &op.system.unwrap_or_default());
                    }
                    o.extend([op.flags, op.operator]);
                    o.extend(op.time.0);
                }
            }
            Adu::SystemVersion(v) => {
                count(&mut o, v.len());
                for (s, major, minor) in v.iter().take(255) {
                    sys(&mut o, s);
                    o.extend([*major, *minor]);
                }
            }
            Adu::SystemConfig(v) => {
                count(&mut o, v.len());
                for (s, c) in v.iter().take(255) {
                    sys(&mut o, s);
                    let b = gb(c, 255);
                    o.push(b.len() as u8);
                    o.extend(b);
                }
            }
            Adu::ComponentConfig(v) => {
                count(&mut o, v.len());
                for (c, d) in v.iter().take(255) {
                    comp(&mut o, c);
                    desc(&mut o, d);
                }
            }
            Adu::SystemTime(v) => {
                count(&mut o, v.len());
                for (s, t) in v.iter().take(255) {
                    sys(&mut o, s);
                    o.extend(t.0);
                }
            }
            Adu::UitdStatus(v) => {
                count(&mut o, v.len());
                for (st, t) in v.iter().take(255) {
                    o.push(*st);
                    o.extend(t.0);
                }
            }
            Adu::UitdVersion(major, minor) => o.extend([*major, *minor]),
            Adu::UitdConfig(c) => {
                let b = gb(c, 255);
                o.push(b.len() as u8);
                o.extend(b);
            }
            Adu::UitdTime(t) | Adu::SyncClock(t) => o.extend(t.0),
            Adu::ReadSystemStatus(v) | Adu::ReadSystemConfig(v) => {
                count(&mut o, v.len());
                for s in v.iter().take(255) {
                    sys(&mut o, s);
                }
            }
            Adu::ReadComponentStatus(v)
            | Adu::ReadComponentAnalog(v)
            | Adu::ReadComponentConfig(v) => {
                count(&mut o, v.len());
                for p in v.iter().take(255) {
                    point(&mut o, p);
                }
            }
            Adu::ReadSystemOperations(s, n, t) => {
                sys(&mut o, s);
                o.push(*n);
                o.extend(t.0);
            }
            Adu::ReadSystemVersion(s) | Adu::ReadSystemTime(s) => sys(&mut o, s),
            Adu::ReadUitdOperations(n, t) => {
                o.push(*n);
                o.extend(t.0);
            }
            Adu::ReadUitdStatus
            | Adu::ReadUitdVersion
            | Adu::ReadUitdConfig
            | Adu::ReadUitdTime
            | Adu::InitUitd => o.push(0),
            Adu::DutyCheck(minutes) => o.push(*minutes),
            Adu::Other(_, rest) => {
                o.truncate(1);
                o.extend(rest);
            }
        }
        o
    }
}
