//! (added) GB/T 26875.3-2011, the protocol of user information transmission devices
//! (用户信息传输装置) in control rooms: the frame codec ([`frame`]), the stream decoder
//! ([`stream`]) and the application data units ([`adu`]). The layout, codes and bit tables are
//! in the domain notes, section 2; this module is pure (no I/O, no clock).

pub mod adu;
pub mod frame;
pub mod map;
pub mod server;
pub mod stream;

#[cfg(test)]
mod tests;
