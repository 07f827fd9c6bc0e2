//! What a payment is worth: the expected value of its tickets, in wei, the way go-livepeer's
//! `pm.Ticket.EV` counts it: `face_value × win_prob / (2^256 − 1)` per ticket, where
//! `2^256 − 1` is the win probability of a ticket that always wins.
//!
//! The values are 256-bit big-endian integers on the wire; the arithmetic here is exact on
//! little-endian 64-bit limbs, and the result is rounded down to the wei.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::Message as _;

use crate::grpc::proto;

/// What one `Livepeer-Payment` carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaymentValue {
    /// Tickets in it (one per `ticket_sender_params` entry).
    pub tickets: u64,
    /// Their expected value, in wei, rounded down.
    pub expected_value_wei: u128,
}

impl PaymentValue {
    /// Both together, saturating at the largest count and value.
    #[must_use]
    pub fn saturating_add(self, other: Self) -> Self {
        Self {
            tickets: self.tickets.saturating_add(other.tickets),
            expected_value_wei: self
                .expected_value_wei
                .saturating_add(other.expected_value_wei),
        }
    }
}

/// Why a payment's value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The header is not base64.
    #[error("Livepeer-Payment is not base64")]
    Base64,
    /// The bytes are not a `net.Payment`.
    #[error("Livepeer-Payment is not a net.Payment: {0}")]
    Protobuf(String),
    /// A payment with tickets but no ticket parameters.
    #[error("Livepeer-Payment has {0} ticket(s) but no ticket parameters")]
    NoTicketParams(usize),
    /// A face value or win probability longer than 256 bits.
    #[error("Livepeer-Payment's {0} is longer than 256 bits")]
    TooLong(&'static str),
    /// More than 2^128 − 1 wei.
    #[error("Livepeer-Payment is worth more than 2^128 wei")]
    Overflow,
}

/// The tickets in a `Livepeer-Payment` header (base64 `net.Payment`) and their expected value.
/// An empty header (offchain) is worth nothing.
pub fn payment_value(header: &str) -> Result<PaymentValue, ValueError> {
    let bytes = BASE64
        .decode(header.trim())
        .map_err(|_| ValueError::Base64)?;
    let payment = proto::Payment::decode(bytes.as_slice())
        .map_err(|e| ValueError::Protobuf(e.to_string()))?;
    let tickets = payment.ticket_sender_params.len();
    if tickets == 0 {
        return Ok(PaymentValue::default());
    }
    let params = payment
        .ticket_params
        .as_ref()
        .ok_or(ValueError::NoTicketParams(tickets))?;
    let tickets = u64::try_from(tickets).unwrap_or(u64::MAX);
    Ok(PaymentValue {
        tickets,
        expected_value_wei: expected_value(&params.face_value, &params.win_prob, tickets)?,
    })
}

/// `floor(tickets × face_value × win_prob / (2^256 − 1))` for big-endian `face_value` and
/// `win_prob`.
pub fn expected_value(
    face_value: &[u8],
    win_prob: &[u8],
    tickets: u64,
) -> Result<u128, ValueError> {
    let face = limbs(face_value).ok_or(ValueError::TooLong("face_value"))?;
    let win = limbs(win_prob).ok_or(ValueError::TooLong("win_prob"))?;
    let mut product = [0u64; 9];
    for (i, a) in face.iter().enumerate() {
        let mut carry = 0u128;
        for (j, b) in win.iter().enumerate() {
            let t = u128::from(*a) * u128::from(*b) + u128::from(product[i + j]) + carry;
            product[i + j] = t as u64;
            carry = t >> 64;
        }
        product[i + 4] = carry as u64;
    }
    let mut carry = 0u128;
    for limb in &mut product {
        let t = u128::from(*limb) * u128::from(tickets) + carry;
        *limb = t as u64;
        carry = t >> 64;
    }
    divide_by_max_win_prob(product)
}

/// `floor(x / (2^256 − 1))`: with `x = q·2^256 + r`, `x = q·(2^256 − 1) + (q + r)`, so the
/// quotient is `q` plus the quotient of `q + r`, which shrinks by 256 bits a turn.
fn divide_by_max_win_prob(mut x: [u64; 9]) -> Result<u128, ValueError> {
    let mut quotient = 0u128;
    loop {
        let high = &x[4..];
        if high.iter().all(|l| *l == 0) {
            // x < 2^256: one more only when x is exactly 2^256 − 1.
            if x[..4].iter().all(|l| *l == u64::MAX) {
                quotient = quotient.checked_add(1).ok_or(ValueError::Overflow)?;
            }
            return Ok(quotient);
        }
        if high[2..].iter().any(|l| *l != 0) {
            return Err(ValueError::Overflow);
        }
        let q = u128::from(high[0]) | (u128::from(high[1]) << 64);
        quotient = quotient.checked_add(q).ok_or(ValueError::Overflow)?;
        // x = r + q, with r the low 256 bits.
        let mut next = [0u64; 9];
        next[..4].copy_from_slice(&x[..4]);
        let mut carry = 0u128;
        for (i, add) in [high[0], high[1], 0, 0, 0].into_iter().enumerate() {
            let t = u128::from(next[i]) + u128::from(add) + carry;
            next[i] = t as u64;
            carry = t >> 64;
        }
        x = next;
    }
}

/// A big-endian integer of at most 256 bits as four little-endian limbs; `None` when longer
/// (leading zero bytes do not count).
fn limbs(big_endian: &[u8]) -> Option<[u64; 4]> {
    let start = big_endian
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(big_endian.len());
    let digits = &big_endian[start..];
    if digits.len() > 32 {
        return None;
    }
    let mut out = [0u64; 4];
    for (i, byte) in digits.iter().rev().enumerate() {
        out[i / 8] |= u64::from(*byte) << (8 * (i % 8));
    }
    Some(out)
}

/// The 256-bit big-endian win probability of `probability` (0 to 1): `probability × 2^256`,
/// rounded down, and `2^256 − 1` (a ticket that always wins) from 1 up. How an orchestrator
/// (the simulator) turns a chance into ticket parameters.
pub fn win_prob_bytes(probability: f64) -> Vec<u8> {
    if probability.is_nan() || probability <= 0.0 {
        return vec![0];
    }
    if probability >= 1.0 {
        return vec![0xff; 32];
    }
    // probability = mantissa × 2^exponent, exactly, with a 53-bit mantissa.
    let bits = probability.to_bits();
    let raw_exponent = i64::try_from((bits >> 52) & 0x7ff).unwrap_or(0);
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, exponent) = if raw_exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), raw_exponent - 1075)
    };
    let shift = 256 + exponent;
    let mut out = [0u64; 4];
    if shift >= 0 {
        let shift = usize::try_from(shift).unwrap_or(0);
        let (limb, offset) = (shift / 64, shift % 64);
        if limb < 4 {
            out[limb] |= mantissa << offset;
            if offset > 0 && limb + 1 < 4 {
                out[limb + 1] |= mantissa >> (64 - offset);
            }
        }
    } else {
        let right = usize::try_from(-shift).unwrap_or(64);
        out[0] = if right < 64 { mantissa >> right } else { 0 };
    }
    let mut bytes: Vec<u8> = out.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes.drain(..first);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(value: u128) -> Vec<u8> {
        value.to_be_bytes().to_vec()
    }

    #[test]
    fn a_ticket_that_always_wins_is_worth_its_face_value() {
        assert_eq!(expected_value(&be(12_345), &[0xff; 32], 1), Ok(12_345));
        assert_eq!(expected_value(&be(12_345), &[0xff; 32], 3), Ok(37_035));
        // The largest face value there is, always winning, still divides exactly.
        assert_eq!(
            expected_value(&[0xff; 16], &[0xff; 32], 1),
            Ok(u128::MAX),
            "2^128 - 1 wei"
        );
    }

    #[test]
    fn half_a_chance_is_half_the_face_value_rounded_down() {
        // 2^255 / (2^256 - 1) is a hair over one half.
        let half = win_prob_bytes(0.5);
        assert_eq!(half.len(), 32);
        assert_eq!(half[0], 0x80);
        assert_eq!(
            expected_value(&be(2_000_000_000_000), &half, 1),
            Ok(1_000_000_000_000)
        );
        assert_eq!(expected_value(&be(3), &half, 1), Ok(1), "1.5 rounds down");
        assert_eq!(
            expected_value(&be(3), &half, 2),
            Ok(3),
            "tickets sum before rounding"
        );
        // go-livepeer's default stand-in values: a face value and chance of 1 are worth 0.
        assert_eq!(expected_value(&[1], &[1], 1_000), Ok(0));
        assert_eq!(expected_value(&[], &[0xff; 32], 1), Ok(0), "no face value");
    }

    #[test]
    fn a_chance_of_one_in_a_thousand() {
        let p = win_prob_bytes(0.001);
        // 1e15 wei face value, 1/1000 chance: 1e12 wei, give or take the float's last bit.
        let ev = expected_value(&be(1_000_000_000_000_000), &p, 1).unwrap();
        assert!((999_999_999_999..=1_000_000_000_000).contains(&ev), "{ev}");
        assert_eq!(win_prob_bytes(1.0), vec![0xff; 32]);
        assert_eq!(win_prob_bytes(7.0), vec![0xff; 32]);
        assert_eq!(win_prob_bytes(0.0), vec![0]);
        assert_eq!(win_prob_bytes(-1.0), vec![0]);
        assert_eq!(win_prob_bytes(f64::MIN_POSITIVE), vec![0], "below 2^-256");
        assert_eq!(win_prob_bytes(2f64.powi(-256)), vec![1]);
    }

    #[test]
    fn values_out_of_range_are_refused() {
        assert_eq!(
            expected_value(&[1; 33], &[1], 1),
            Err(ValueError::TooLong("face_value"))
        );
        let mut padded = vec![0; 10];
        padded.extend_from_slice(&be(5));
        assert_eq!(
            expected_value(&padded, &[0xff; 32], 1),
            Ok(5),
            "leading zeros"
        );
        assert_eq!(
            expected_value(&[0xff; 17], &[0xff; 32], 1),
            Err(ValueError::Overflow)
        );
    }

    #[test]
    fn a_payment_header_counts_its_tickets() {
        let payment = proto::Payment {
            ticket_params: Some(proto::TicketParams {
                face_value: be(1_000),
                win_prob: vec![0xff; 32],
                ..proto::TicketParams::default()
            }),
            ticket_sender_params: vec![proto::TicketSenderParams::default(); 4],
            ..proto::Payment::default()
        };
        let header = BASE64.encode(payment.encode_to_vec());
        assert_eq!(
            payment_value(&header),
            Ok(PaymentValue {
                tickets: 4,
                expected_value_wei: 4_000
            })
        );
        assert_eq!(payment_value(""), Ok(PaymentValue::default()), "offchain");
        assert_eq!(payment_value("%%%"), Err(ValueError::Base64));
        assert!(matches!(
            payment_value(&BASE64.encode([0xff, 0xff, 0xff])),
            Err(ValueError::Protobuf(_))
        ));
        let without_params = proto::Payment {
            ticket_sender_params: vec![proto::TicketSenderParams::default()],
            ..proto::Payment::default()
        };
        assert_eq!(
            payment_value(&BASE64.encode(without_params.encode_to_vec())),
            Err(ValueError::NoTicketParams(1))
        );
    }
}
