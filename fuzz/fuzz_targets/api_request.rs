//! `App::handle` over sequences of requests (see `ibyok_fuzz::api` for the
//! input format): every response is below 500, JSON, with the contract's
//! error shape when it is an error, and never carries a secret it should not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ibyok_fuzz::api::run(data);
});
