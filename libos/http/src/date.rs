//! The `Date` header field (RFC 9110, 6.6.1): an origin server with a clock sends it in
//! its answers, as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).

use alloc::sync::Arc;
use rexo_rtc::DateTime;
use rexo_tcp::Blob;

/// Bytes of an IMF-fixdate.
pub(crate) const IMF_FIXDATE_LEN: usize = 29;

/// `unix_s` seconds after 1970-01-01 00:00:00 UTC as an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`). Years past 9999 keep their last four digits.
pub(crate) fn imf_fixdate(unix_s: u64) -> [u8; IMF_FIXDATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let moment = DateTime::from_unix(unix_s);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // 1970-01-01 was a Thursday.
    out[..3].copy_from_slice(DAYS[(unix_s / 86_400 % 7) as usize]);
    put_digits(&mut out[5..7], u64::from(moment.day));
    out[8..11].copy_from_slice(MONTHS[usize::from(moment.month - 1)]);
    put_digits(&mut out[12..16], moment.year);
    put_digits(&mut out[17..19], u64::from(moment.hour));
    put_digits(&mut out[20..22], u64::from(moment.minute));
    put_digits(&mut out[23..25], u64::from(moment.second));
    out
}

/// Writes the last `out.len()` decimal digits of `value` into `out`, zero-padded.
fn put_digits(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The `Date` field line of the answers of one second, with the blank line that ends
/// a head after it, kept as a [`Blob`] (its checksum sums computed once) so that every
/// answer of that second shares it: formatted once per second, not per answer
/// ([`Response::dated`](crate::Response::dated)).
#[derive(Clone, Debug)]
pub struct DateField {
    /// The second it shows, since 1970.
    unix_s: u64,
    /// `Date: <IMF-fixdate>\r\n\r\n`.
    line: Arc<Blob>,
}

impl DateField {
    /// The field at `unix_s` seconds since 1970-01-01 00:00:00 UTC.
    pub fn new(unix_s: u64) -> DateField {
        let mut line = [0u8; 6 + IMF_FIXDATE_LEN + 4];
        line[..6].copy_from_slice(b"Date: ");
        line[6..6 + IMF_FIXDATE_LEN].copy_from_slice(&imf_fixdate(unix_s));
        line[6 + IMF_FIXDATE_LEN..].copy_from_slice(b"\r\n\r\n");
        DateField {
            unix_s,
            line: Arc::new(Blob::new(line.to_vec())),
        }
    }

    /// Moves the field on to `unix_s`; formats it anew only when the second changed.
    pub fn set(&mut self, unix_s: u64) {
        if unix_s != self.unix_s {
            *self = DateField::new(unix_s);
        }
    }

    /// `Date: <IMF-fixdate>\r\n\r\n`: the field line and the blank line after it.
    pub fn line(&self) -> &Arc<Blob> {
        &self.line
    }
}
