//! The GB/T 26875.3 stream decoder, frame and ADU decoders and the mapping on arbitrary bytes,
//! fed in arbitrary pieces: nothing panics, the decoder holds at most one longest frame beyond
//! what was pushed, and every frame it yields that decodes encodes back to its bytes.
#![no_main]

use firewatch::ingest::gbt26875::adu::Adu;
use firewatch::ingest::gbt26875::frame::{Frame, Profile, MAX_ADU, OVERHEAD};
use firewatch::ingest::gbt26875::map::Mapper;
use firewatch::ingest::gbt26875::stream::{Chunk, Decoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).max(1);
    let p = Profile::default();
    let mut d = Decoder::new();
    let mut m = Mapper::new();
    for piece in bytes.chunks(cut) {
        d.push(piece);
        while let Some(c) = d.next_chunk() {
            if let Chunk::Frame(raw) = c {
                if let Ok(f) = Frame::decode(&raw, &p) {
                    assert_eq!(f.encode(&p), raw);
                    if let Ok(adu) = Adu::decode(&f.adu) {
                        let _ = m.map(adu.as_ref(), &p, 1_795_000_000_000);
                    }
                }
            }
        }
        assert!(d.buffered() <= OVERHEAD + MAX_ADU + cut);
    }
});
