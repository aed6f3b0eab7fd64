"""Deterministic synthetic card traffic: profiles, transactions and injected fraud patterns (numpy, vectorised)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spine.dataset import FRAUD_PATTERNS, OUTPUTS

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S
_DAY0_US = 1_735_689_600 * US_PER_S  # 2025-01-01T00:00:00Z; the synthetic day is seed-derived from here
FRAUD_SHARE = 0.03

# (country, currency, weight as issuer and as merchant location)
_COUNTRIES = (
    ("GB", "GBP", 0.55), ("IE", "EUR", 0.06), ("FR", "EUR", 0.08), ("DE", "EUR", 0.08), ("ES", "EUR", 0.05),
    ("NL", "EUR", 0.04), ("IT", "EUR", 0.04), ("US", "USD", 0.07), ("CH", "CHF", 0.02), ("SE", "SEK", 0.01),
)
# (mcc, kind used in names, weight, share of high-risk merchants)
_MCCS = (
    ("5411", "Grocers", 0.20, 0.02), ("5812", "Kitchen", 0.16, 0.03), ("5999", "Store", 0.12, 0.05),
    ("4111", "Transit", 0.08, 0.02), ("5541", "Fuel", 0.08, 0.03), ("5732", "Electronics", 0.08, 0.10),
    ("5691", "Outfitters", 0.09, 0.04), ("7011", "Hotel", 0.06, 0.05), ("5944", "Jewellers", 0.04, 0.25),
    ("4814", "Telecom", 0.04, 0.08), ("5967", "Direct", 0.03, 0.40), ("7995", "Gaming", 0.02, 0.45),
)
_ADJECTIVES = ("Red", "Blue", "Golden", "Silver", "North", "Royal", "Urban", "Green", "Swift", "Bright", "Old", "Grand")
_NOUNS = ("Oak", "Harbour", "Market", "Lantern", "Bridge", "Garden", "Anchor", "Crown", "Falcon", "Mill", "Stone",
          "River")
_RISK_TIERS = ("low", "medium", "high")
_CARD_TYPES = (("credit", 0.45), ("debit", 0.50), ("prepaid", 0.05))
_CHANNELS = (("pos", 0.35), ("contactless", 0.30), ("ecom", 0.30), ("in_app", 0.05))
# Share of the day's traffic per UTC hour: quiet nights, busy lunchtimes and evenings.
_HOURLY = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5.5, 6, 7, 6.5, 5.5, 5, 5.5, 6.5, 7, 6.5, 5, 4, 3, 1.8])


def sizes(events: int) -> tuple[int, int]:
    """Cards and merchants: sublinear in the number of events, a few of each at least."""
    return max(8, round(4 * events**0.75)), max(5, round(2 * events**0.5))


def day_start_us(seed: int) -> int:
    """The synthetic day of a seed: one of the 365 days of 2025, as µs since the epoch."""
    return _DAY0_US + (seed % 365) * US_PER_DAY


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64, so distinct inputs give distinct ids."""
    x = values.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _salt(rng: np.random.Generator) -> np.uint64:
    return np.uint64(rng.integers(0, np.iinfo(np.uint64).max, dtype=np.uint64, endpoint=True))


def _strings(codes: np.ndarray) -> pa.Array:
    """Fixed-width ASCII rows (an ``n x w`` uint8 matrix) as a string array, without a Python loop."""
    n, width = codes.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(codes.tobytes())])


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def ids(prefix: str, index: np.ndarray, salt: np.uint64) -> pa.Array:
    """``prefix`` + 16 hex digits of a bijective mix of ``index + salt``: unique, seed-dependent, unordered."""
    values = _mix(index.astype(np.uint64) + salt)
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    codes = np.empty((len(values), len(head) + 16), dtype=np.uint8)
    codes[:, : len(head)] = head
    for digit in range(16):
        codes[:, len(head) + digit] = _HEX[((values >> np.uint64(60 - 4 * digit)) & np.uint64(0xF)).astype(np.intp)]
    return _strings(codes)


def _choice(rng: np.random.Generator, weights: np.ndarray | list[float], size: int) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum())


def _pick(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(index, pa.int32()))


def merchant_profiles(rng: np.random.Generator, n: int) -> tuple[pa.Table, np.ndarray]:
    """The merchants and each merchant's country index (for transaction currencies)."""
    mcc = _choice(rng, [m[2] for m in _MCCS], n)
    country = _choice(rng, [c[2] for c in _COUNTRIES], n)
    high_share = np.array([m[3] for m in _MCCS])[mcc]
    u = rng.random(n)
    risk = np.where(u < high_share, 2, np.where(u < high_share + 0.22, 1, 0))
    name = pc.binary_join_element_wise(
        _pick(_ADJECTIVES, rng.integers(0, len(_ADJECTIVES), n)),
        _pick(_NOUNS, rng.integers(0, len(_NOUNS), n)),
        _pick(tuple(m[1] for m in _MCCS), mcc),
        " ",
    )
    table = pa.Table.from_arrays(
        [
            ids("mer_", np.arange(n), _salt(rng)),
            name,
            _pick(tuple(m[0] for m in _MCCS), mcc),
            _pick(tuple(c[0] for c in _COUNTRIES), country),
            _pick(_RISK_TIERS, risk),
        ],
        schema=OUTPUTS["merchant_profiles"].schema,
    )
    return table, country


def card_profiles(rng: np.random.Generator, n: int) -> pa.Table:
    country = _choice(rng, [c[2] for c in _COUNTRIES], n)
    card_type = _choice(rng, [t[1] for t in _CARD_TYPES], n)
    limit = np.round(rng.lognormal(np.log(400_000), 0.6, n), -4).astype(np.int64)
    limit = np.where(card_type == 0, np.maximum(limit, 50_000), 0)
    return pa.Table.from_arrays(
        [
            ids("card_", np.arange(n), _salt(rng)),
            _pick(tuple(c[0] for c in _COUNTRIES), country),
            _pick(tuple(t[0] for t in _CARD_TYPES), card_type),
            _pick(tuple(c[1] for c in _COUNTRIES), country),
            pa.array(limit, pa.int64()),
        ],
        schema=OUTPUTS["card_profiles"].schema,
    )


def _burst_sizes(rng: np.random.Generator, budget: int, low: int, high: int) -> np.ndarray:
    """Burst lengths in [low, high] whose total stays within ``budget`` rows."""
    if budget < low:
        return np.zeros(0, dtype=np.int64)
    drawn = np.minimum(rng.integers(low, high + 1, budget // low), budget)  # the first burst always fits
    return drawn[np.cumsum(drawn) <= budget]


def _burst_times(rng: np.random.Generator, lengths: np.ndarray, gap_mean_s: float, max_span_s: int) -> np.ndarray:
    """Row offsets (µs into the day) of bursts: each starts at a random time, rows a few seconds apart."""
    rows = int(lengths.sum())
    if rows == 0:
        return np.zeros(0, dtype=np.int64)
    burst = np.repeat(np.arange(len(lengths)), lengths)
    start = rng.integers(0, US_PER_DAY - max_span_s * US_PER_S, len(lengths))
    gaps = (rng.exponential(gap_mean_s, rows) * US_PER_S).astype(np.int64) + US_PER_S
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    gaps[first] = 0
    elapsed = np.cumsum(gaps)
    within = elapsed - elapsed[first][burst]
    return start[burst] + np.minimum(within, max_span_s * US_PER_S)


class _Rows:
    """Column buffers of transactions as small integer codes, concatenated once at the end."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ts", "card", "merchant", "amount", "channel",
                                                                       "pattern")}

    def add(self, **columns: np.ndarray) -> None:
        for name, values in columns.items():
            self.parts[name].append(values)

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(self.parts[name])


def card_transactions(rng: np.random.Generator, events: int, *, seed: int, cards: pa.Table,
                      merchants: pa.Table, merchant_country: np.ndarray) -> pa.Table:
    n_cards, n_merchants = cards.num_rows, merchants.num_rows
    # A few merchants see no normal traffic: a card's high-value purchase there is at a new merchant.
    n_new = max(1, n_merchants // 20)
    n_regular = n_merchants - n_new
    budget = int(events * FRAUD_SHARE)
    testing_budget, velocity_budget = int(budget * 0.4), int(budget * 0.3)
    if events >= 200:  # big enough for one burst of each kind
        testing_budget, velocity_budget = max(testing_budget, 5), max(velocity_budget, 4)
    testing = _burst_sizes(rng, testing_budget, 5, 10)
    velocity = _burst_sizes(rng, velocity_budget, 4, 8)
    n_high = max(budget - int(testing.sum()) - int(velocity.sum()), 1 if events >= 20 else 0)
    n_normal = events - n_high - int(testing.sum()) - int(velocity.sum())
    channel_p = [c[1] for c in _CHANNELS]
    ecom = [c[0] for c in _CHANNELS].index("ecom")
    rows = _Rows()

    activity = rng.gamma(0.8, 1.0, n_cards)
    popularity = rng.lognormal(0.0, 1.2, n_regular)
    hour = _choice(rng, _HOURLY, n_normal)
    rows.add(
        ts=hour.astype(np.int64) * 3600 * US_PER_S + rng.integers(0, 3600 * US_PER_S, n_normal),
        card=_choice(rng, activity, n_normal),
        merchant=_choice(rng, popularity, n_normal),
        amount=np.clip(rng.lognormal(np.log(2_200), 1.0, n_normal), 50, 2_000_000).astype(np.int64),
        channel=_choice(rng, channel_p, n_normal),
        pattern=np.zeros(n_normal, dtype=np.int64),
    )
    # card_testing: one card, one merchant, 5-10 tiny online payments within a few minutes.
    burst = np.repeat(np.arange(len(testing)), testing)
    rows.add(
        ts=_burst_times(rng, testing, 15.0, 600),
        card=rng.integers(0, n_cards, len(testing))[burst],
        merchant=rng.integers(0, n_regular, len(testing))[burst],
        amount=rng.integers(50, 300, int(testing.sum())).astype(np.int64),
        channel=np.full(int(testing.sum()), ecom),
        pattern=np.full(int(testing.sum()), 1),
    )
    # velocity_burst: one card, 4-8 ordinary-sized payments at different merchants within minutes.
    burst = np.repeat(np.arange(len(velocity)), velocity)
    rows.add(
        ts=_burst_times(rng, velocity, 60.0, 900),
        card=rng.integers(0, n_cards, len(velocity))[burst],
        merchant=rng.integers(0, n_regular, int(velocity.sum())),
        amount=np.clip(rng.lognormal(np.log(9_000), 0.5, int(velocity.sum())), 500, None).astype(np.int64),
        channel=_choice(rng, channel_p[:3], int(velocity.sum())),
        pattern=np.full(int(velocity.sum()), 2),
    )
    # high_value_new_merchant: one large payment at a merchant with no earlier traffic.
    rows.add(
        ts=rng.integers(0, US_PER_DAY, n_high),
        card=rng.integers(0, n_cards, n_high),
        merchant=n_regular + rng.integers(0, n_new, n_high),
        amount=np.clip(rng.lognormal(np.log(300_000), 0.4, n_high), 150_000, None).astype(np.int64),
        channel=rng.choice([ecom, 0], n_high),
        pattern=np.full(n_high, 3),
    )

    order = rng.permutation(events)  # raw parts are in no particular order; the stream view sorts them
    merchant = rows.column("merchant")[order]
    currency_of_country = pa.array([c[1] for c in _COUNTRIES], pa.string())
    ts = day_start_us(seed) + rows.column("ts")[order]
    return pa.Table.from_arrays(
        [
            ids("evt_", np.arange(events), _salt(rng)),
            pa.array(ts, pa.int64()).cast(OUTPUTS["card_transactions"].schema.field("ts_utc").type),
            cards.column("card_id").take(pa.array(rows.column("card")[order])),
            merchants.column("merchant_id").take(pa.array(merchant)),
            pa.array(rows.column("amount")[order], pa.int64()),
            currency_of_country.take(pa.array(merchant_country[merchant])),
            _pick(tuple(c[0] for c in _CHANNELS), rows.column("channel")[order]),
            _pick(FRAUD_PATTERNS, rows.column("pattern")[order]),
        ],
        schema=OUTPUTS["card_transactions"].schema,
    )


def generate(seed: int, events: int) -> dict[str, pa.Table]:
    """The three Oracle outputs for ``seed`` and ``events``: same arguments, same rows, always."""
    if seed < 0:
        raise ValueError(f"seed={seed!r} must be >= 0")
    if events < 1:
        raise ValueError(f"events={events!r} must be >= 1")
    # One independent stream per table, so a change in one table's draws never shifts another's.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, events]).spawn(3)]
    n_cards, n_merchants = sizes(events)
    merchants, merchant_country = merchant_profiles(streams[0], n_merchants)
    cards = card_profiles(streams[1], n_cards)
    transactions = card_transactions(streams[2], events, seed=seed, cards=cards, merchants=merchants,
                                     merchant_country=merchant_country)
    return {"card_transactions": transactions, "merchant_profiles": merchants, "card_profiles": cards}
