// SPDX-License-Identifier: Apache-2.0
// The source of vectors.json: every case of the wire protocol (PROTOCOL.md) worth pinning down,
// written from the page alone. generate.mjs turns these into JSON text and MessagePack hex.
//
// A case gives its message in one of three ways:
//   value        a JavaScript value: the JSON text is JSON.stringify(value) (compact) and the
//                MessagePack form is @msgpack/msgpack's encode(value);
//   json         raw JSON text, for what JSON.stringify cannot write (malformed text, `2.0`,
//                escapes); its MessagePack form is encoded from JSON.parse(json) unless the case
//                sets `msgpack: false` or gives `msgpack_hex` by hand;
//   msgpack_hex  hand-written MessagePack, for what the encoder would never produce (bin where
//                a str belongs, non-string keys, truncated buffers, non-minimal int widths).
// `error` is the code a server must answer with; absent for a valid message.
// `decodes: false` marks a hand-written buffer that must not decode as MessagePack at all;
// generate.mjs checks that claim against the reference decoder.

const HELLO = { type: 'hello', v: 1 };

/** A string of `n` copies of `unit`: for length bounds, which the page counts in bytes. */
const rep = (unit, n) => unit.repeat(n);

/** Event maps as they appear inside `events`: no `type` field. */
const batchEvent = (i) => ({ id: `b-${String(i).padStart(4, '0')}`, kind: 'view', item: '85123A' });

const c2sValid = [
  // hello
  { name: 'hello minimal', value: HELLO },
  {
    name: 'hello with every field',
    value: {
      type: 'hello', v: 1, token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1NDIifQ.c2lnbmF0dXJl',
      user: 'u42', device: 'mobile', locale: 'en-GB', tz_offset_min: 60,
    },
  },
  { name: 'hello with context fields at their bounds', value: { type: 'hello', v: 1, user: 'u42', device: 'tablet', tz_offset_min: -840, locale: rep('x', 16) } },
  { name: 'hello without consent', value: { type: 'hello', v: 1, user: 'u42', consent: false } },
  { name: 'hello of a returning anonymous visitor', value: { type: 'hello', v: 1, user: 'anon-3f9a0c41d2e87b65a0c4d1e2.9b1f0e7d2c3a4b5c6d7e8f9a0b1c2d3e' } },

  // event, one per kind with only its required fields, plus optional ones
  { name: 'event view', value: { type: 'event', id: 'e-0001', kind: 'view', item: '85123A' } },
  { name: 'event click', value: { type: 'event', id: 'e-0002', kind: 'click', item: '22423' } },
  {
    name: 'event click with surface and ts_ms',
    value: { type: 'event', id: 'e-0003', kind: 'click', item: '85123A', surface: 'home', ts_ms: 1763800000000 },
  },
  { name: 'event cart', value: { type: 'event', id: 'e-0004', kind: 'cart', item: '84029E' } },
  { name: 'event cart with quantity', value: { type: 'event', id: 'e-0005', kind: 'cart', item: '84029E', value: 2 } },
  { name: 'event purchase', value: { type: 'event', id: 'e-0006', kind: 'purchase', item: '71053' } },
  { name: 'event rating', value: { type: 'event', id: 'e-0007', kind: 'rating', item: '22752', value: 5 } },
  { name: 'event dwell', value: { type: 'event', id: 'e-0009', kind: 'dwell', item: '21730', value: 5400 } },
  { name: 'event dwell fractional milliseconds', value: { type: 'event', id: 'e-0010', kind: 'dwell', item: '21730', value: 0.5 } },
  { name: 'event search', value: { type: 'event', id: 'e-0011', kind: 'search', query: 'heart' } },
  {
    name: 'event search with escapes and non-ASCII',
    json: '{"type":"event","id":"e-0012","kind":"search","query":"caf\\u00e9 \\"mug\\"\\n","surface":"search"}',
  },
  // 128 two-byte characters: exactly 256 bytes, the upper bound (bounds count bytes).
  { name: 'event search query of 256 bytes', value: { type: 'event', id: 'e-0013', kind: 'search', query: rep('é', 128) } },
  { name: 'event impression', value: { type: 'event', id: 'e-0014', kind: 'impression', item: '84406B', surface: 'home' } },
  { name: 'event dismiss', value: { type: 'event', id: 'e-0015', kind: 'dismiss', item: '84406B' } },
  { name: 'event id of 64 bytes', value: { type: 'event', id: rep('a', 64), kind: 'view', item: '22423' } },
  { name: 'event id with every allowed punctuation', value: { type: 'event', id: 'Ab9.x_y:z@w-1', kind: 'view', item: '22423' } },

  // events
  {
    name: 'events batch of three',
    value: {
      type: 'events',
      events: [
        { id: 'b-0001', kind: 'view', item: '85123A' },
        { id: 'b-0002', kind: 'search', query: 'lantern', ts_ms: 1763800000001 },
        { id: 'b-0003', kind: 'rating', item: '71053', value: 4 },
      ],
    },
  },
  { name: 'events batch of 100', value: { type: 'events', events: Array.from({ length: 100 }, (_, i) => batchEvent(i + 100)) } },

  // subscribe / unsubscribe
  { name: 'subscribe minimal', value: { type: 'subscribe', surface: 'home' } },
  {
    name: 'subscribe with every field',
    value: { type: 'subscribe', surface: 'pdp', k: 5, category: 'kitchen', price_min: 0, price_max: 20.5 },
  },
  { name: 'subscribe k 100', value: { type: 'subscribe', surface: 'home', k: 100 } },
  { name: 'subscribe repeat never', value: { type: 'subscribe', surface: 'home', repeat: 'never' } },
  { name: 'subscribe repeat not_current', value: { type: 'subscribe', surface: 'pdp', k: 8, repeat: 'not_current' } },
  { name: 'subscribe repeat allowed', value: { type: 'subscribe', surface: 'recent', repeat: 'allowed' } },
  { name: 'subscribe compact', value: { type: 'subscribe', surface: 'home', k: 20, compact: true } },
  { name: 'subscribe compact false', value: { type: 'subscribe', surface: 'home', compact: false } },
  { name: 'subscribe surface of 32 bytes', value: { type: 'subscribe', surface: `s_-9${rep('a', 28)}`, k: 1 } },
  { name: 'unsubscribe', value: { type: 'unsubscribe', surface: 'home' } },

  // ping
  { name: 'ping', value: { type: 'ping' } },
  { name: 'ping with t', value: { type: 'ping', t: 1763800000000.25 } },

  // auth (a fresh token on a live session)
  { name: 'auth', value: { type: 'auth', token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1NDIifQ.c2lnbmF0dXJl' } },

  // Encoding variations that must decode to the same value as their JSON.
  {
    name: 'subscribe k as uint64 (non-minimal MessagePack int)',
    json: '{"type":"subscribe","surface":"home","k":5}',
    // {"type":"subscribe","surface":"home","k": uint64 5}
    msgpack_hex: '83a474797065a9737562736372696265a773757266616365a4686f6d65a16bcf0000000000000005',
  },
  {
    name: 'ping type as str8 (non-minimal MessagePack str)',
    json: '{"type":"ping"}',
    // {"type": str8 "ping"}
    msgpack_hex: '81a474797065d90470696e67',
  },
  { name: 'ping JSON with insignificant whitespace', json: ' {\n\t"type" : "ping" ,"t":1 }\r\n' },
];

const c2sInvalid = [
  // 4000 malformed: not JSON / MessagePack, or not a map
  { name: 'not a map: array', value: [{ type: 'ping' }], error: 4000 },
  { name: 'not a map: number', value: 42, error: 4000 },
  { name: 'not a map: null', value: null, error: 4000 },
  { name: 'malformed JSON: unterminated object', json: '{"type":"ping"', msgpack: false, error: 4000 },
  { name: 'malformed JSON: unquoted keys', json: '{type:"ping"}', msgpack: false, error: 4000 },
  { name: 'malformed JSON: trailing data', json: '{"type":"ping"}{}', msgpack: false, error: 4000 },
  { name: 'empty message', json: '', msgpack_hex: '', decodes: false, error: 4000 },
  // {"type":"ping"} followed by a nil: two MessagePack values in one message.
  { name: 'MessagePack trailing data', msgpack_hex: '81a474797065a470696e67c0', decodes: false, error: 4000 },
  // {"type":"subscribe","surface":"ho  — the buffer ends inside a str.
  { name: 'truncated MessagePack inside a string', msgpack_hex: '82a474797065a9737562736372696265a773757266616365a4686f', decodes: false, error: 4000 },
  // A map header of two entries followed by one.
  { name: 'truncated MessagePack map', msgpack_hex: '82a474797065a470696e67', decodes: false, error: 4000 },
  // 0xc1 is the one byte MessagePack never uses.
  { name: 'MessagePack reserved byte 0xc1', msgpack_hex: 'c1', decodes: false, error: 4000 },
  // {"type":"ping", 1:"x"}: a map whose keys are not all strings is not a message map.
  { name: 'MessagePack map with an integer key', msgpack_hex: '82a474797065a470696e6701a178', error: 4000 },

  // 4001 unknown_type
  { name: 'type missing from empty map', value: {}, error: 4001 },
  { name: 'type unknown', value: { type: 'helo', v: 1 }, error: 4001 },
  { name: 'type is case-sensitive', value: { type: 'Ping' }, error: 4001 },
  { name: 'type of a server message', value: { type: 'pong' }, error: 4001 },
  { name: 'type not a string', value: { type: 1 }, error: 4001 },
  // {"type": bin "ping"}
  { name: 'type as MessagePack bin', msgpack_hex: '81a474797065c40470696e67', error: 4001 },

  // 4002 invalid_field: unknown fields
  { name: 'unknown field on ping', value: { type: 'ping', x: 1 }, error: 4002 },
  { name: 'auth without a token', value: { type: 'auth' }, error: 4002 },
  { name: 'auth with an empty token', value: { type: 'auth', token: '' }, error: 4002 },
  { name: 'field names are case-sensitive', value: { type: 'hello', v: 1, User: 'u42' }, error: 4002 },
  {
    name: 'batched event with a type field',
    value: { type: 'events', events: [{ type: 'event', id: 'b-0900', kind: 'view', item: '85123A' }] },
    error: 4002,
  },

  // 4002 invalid_field: missing required fields
  { name: 'hello without v', value: { type: 'hello' }, error: 4002 },
  { name: 'event without id', value: { type: 'event', kind: 'view', item: '85123A' }, error: 4002 },
  { name: 'event without kind', value: { type: 'event', id: 'e-0101', item: '85123A' }, error: 4002 },
  { name: 'click without item', value: { type: 'event', id: 'e-0102', kind: 'click' }, error: 4002 },
  { name: 'rating without value', value: { type: 'event', id: 'e-0103', kind: 'rating', item: '22752' }, error: 4002 },
  { name: 'dwell without value', value: { type: 'event', id: 'e-0104', kind: 'dwell', item: '21730' }, error: 4002 },
  { name: 'search without query', value: { type: 'event', id: 'e-0105', kind: 'search' }, error: 4002 },
  { name: 'subscribe without surface', value: { type: 'subscribe', k: 5 }, error: 4002 },
  { name: 'events without events', value: { type: 'events' }, error: 4002 },

  // 4002 invalid_field: wrong types and out-of-bounds values
  { name: 'hello v as string', value: { type: 'hello', v: '1' }, error: 4002 },
  { name: 'hello consent as a string', value: { type: 'hello', v: 1, consent: 'no' }, error: 4002 },
  { name: 'hello device unknown', value: { type: 'hello', v: 1, device: 'phone' }, error: 4002 },
  { name: 'hello locale of 17 bytes', value: { type: 'hello', v: 1, locale: rep('x', 17) }, error: 4002 },
  { name: 'hello tz_offset_min 841', value: { type: 'hello', v: 1, tz_offset_min: 841 }, error: 4002 },
  { name: 'hello token of 4097 bytes', value: { type: 'hello', v: 1, token: rep('t', 4097) }, error: 4002 },
  { name: 'subscribe k as float 2.5', value: { type: 'subscribe', surface: 'home', k: 2.5 }, error: 4002 },
  {
    name: 'subscribe k as 2.0',
    json: '{"type":"subscribe","surface":"home","k":2.0}',
    // {"type":"subscribe","surface":"home","k": float64 2.0}
    msgpack_hex: '83a474797065a9737562736372696265a773757266616365a4686f6d65a16bcb4000000000000000',
    error: 4002,
  },
  { name: 'subscribe k with exponent', json: '{"type":"subscribe","surface":"home","k":1e1}', msgpack: false, error: 4002 },
  { name: 'subscribe k 0', value: { type: 'subscribe', surface: 'home', k: 0 }, error: 4002 },
  { name: 'subscribe k 101', value: { type: 'subscribe', surface: 'home', k: 101 }, error: 4002 },
  { name: 'subscribe k null', value: { type: 'subscribe', surface: 'home', k: null }, error: 4002 },
  { name: 'subscribe surface with uppercase', value: { type: 'subscribe', surface: 'Home' }, error: 4002 },
  { name: 'subscribe surface of 33 bytes', value: { type: 'subscribe', surface: rep('a', 33) }, error: 4002 },
  { name: 'subscribe surface empty', value: { type: 'subscribe', surface: '' }, error: 4002 },
  { name: 'subscribe category of 65 bytes', value: { type: 'subscribe', surface: 'home', category: rep('c', 65) }, error: 4002 },
  { name: 'subscribe price_min negative', value: { type: 'subscribe', surface: 'home', price_min: -0.01 }, error: 4002 },
  { name: 'subscribe repeat unknown', value: { type: 'subscribe', surface: 'home', repeat: 'sometimes' }, error: 4002 },
  { name: 'subscribe repeat not a string', value: { type: 'subscribe', surface: 'home', repeat: true }, error: 4002 },
  { name: 'subscribe compact not a bool', value: { type: 'subscribe', surface: 'home', compact: 'yes' }, error: 4002 },
  { name: 'subscribe compact 1', value: { type: 'subscribe', surface: 'home', compact: 1 }, error: 4002 },
  { name: 'subscribe compact null', value: { type: 'subscribe', surface: 'home', compact: null }, error: 4002 },
  { name: 'subscribe repeat in another case', value: { type: 'subscribe', surface: 'home', repeat: 'Allowed' }, error: 4002 },
  {
    name: 'subscribe surface as MessagePack bin',
    // {"type":"subscribe","surface": bin "home"}
    msgpack_hex: '82a474797065a9737562736372696265a773757266616365c404686f6d65',
    error: 4002,
  },
  // The error must carry the event's id even though the field that is wrong comes first.
  { name: 'event with an unknown field before its id', value: { type: 'event', extra: true, id: 'e-0121', kind: 'view', item: '22423' }, error: 4002 },
  { name: 'event id of 65 bytes', value: { type: 'event', id: rep('a', 65), kind: 'view', item: '22423' }, error: 4002 },
  { name: 'event id with a space', value: { type: 'event', id: 'e 0106', kind: 'view', item: '22423' }, error: 4002 },
  { name: 'event id with non-ASCII', value: { type: 'event', id: 'e-é', kind: 'view', item: '22423' }, error: 4002 },
  { name: 'event kind unknown', value: { type: 'event', id: 'e-0108', kind: 'like', item: '22423' }, error: 4002 },
  { name: 'event rating 6', value: { type: 'event', id: 'e-0110', kind: 'rating', item: '22752', value: 6 }, error: 4002 },
  { name: 'event rating 0', value: { type: 'event', id: 'e-0111', kind: 'rating', item: '22752', value: 0 }, error: 4002 },
  { name: 'event dwell negative', value: { type: 'event', id: 'e-0113', kind: 'dwell', item: '21730', value: -1 }, error: 4002 },
  { name: 'event purchase quantity 0', value: { type: 'event', id: 'e-0114', kind: 'purchase', item: '71053', value: 0 }, error: 4002 },
  { name: 'event search query empty', value: { type: 'event', id: 'e-0115', kind: 'search', query: '' }, error: 4002 },
  // 129 characters but 258 bytes: over the bound only when counted in bytes.
  { name: 'event search query of 258 bytes', value: { type: 'event', id: 'e-0116', kind: 'search', query: rep('é', 129) }, error: 4002 },
  { name: 'event ts_ms fractional', value: { type: 'event', id: 'e-0118', kind: 'view', item: '22423', ts_ms: 1763800000000.5 }, error: 4002 },
  {
    name: 'event ts_ms beyond 2^53',
    json: '{"type":"event","id":"e-0119","kind":"view","item":"22423","ts_ms":100000000000000000000}',
    msgpack: false,
    error: 4002,
  },
  { name: 'event item null', value: { type: 'event', id: 'e-0120', kind: 'view', item: null }, error: 4002 },
  { name: 'ping t null', value: { type: 'ping', t: null }, error: 4002 },
  { name: 'events empty', value: { type: 'events', events: [] }, error: 4002 },
  { name: 'events not an array', value: { type: 'events', events: { id: 'b-0901', kind: 'view', item: '85123A' } }, error: 4002 },

  // 4022 batch_too_large, 4006 unsupported_version
  { name: 'events batch of 101', value: { type: 'events', events: Array.from({ length: 101 }, (_, i) => batchEvent(i + 300)) }, error: 4022 },
  { name: 'hello v 2', value: { type: 'hello', v: 2 }, error: 4006 },
  { name: 'hello v 0', value: { type: 'hello', v: 0 }, error: 4006 },
];

const LIMITS = {
  max_message_bytes: 65536, max_batch: 100, max_subscriptions: 16, max_k: 100, events_per_sec: 200, events_burst: 400,
};

// An anonymous id as servers issue it (PROTOCOL.md, hello: Anonymous ids): a random part and
// its HMAC tag. Its tag is not verified here; the integration tests verify real ones.
const ANON_ID = 'anon-3f9a0c41d2e87b65a0c4d1e2.9b1f0e7d2c3a4b5c6d7e8f9a0b1c2d3e';

const s2c = [
  {
    name: 'welcome',
    value: { type: 'welcome', v: 1, session: 's-1f3a', user: 'u42', node: 'n1', server_time_ms: 1763800000000, limits: LIMITS },
  },
  {
    name: 'welcome for an anonymous user',
    value: { type: 'welcome', v: 1, session: 's-1f3b', user: ANON_ID, node: 'it1', server_time_ms: 1763800000123, limits: LIMITS },
  },
  { name: 'ack of one event', value: { type: 'ack', ids: ['e-0001'] } },
  { name: 'ack of a batch', value: { type: 'ack', ids: ['b-0001', 'b-0002', 'b-0003'] } },
  {
    name: 'recs on subscribe',
    value: {
      type: 'recs', surface: 'home', version: 1763800000000001,
      items: [
        { item: '22423', score: 0.91, src: 'trending', why: 'Trending on mobile', reason: { code: 'trending_context', segment: 'mobile' }, name: 'REGENCY CAKESTAND 3 TIER', category: 'kitchen', price: 12.75 },
        { item: '85123A', score: 0.5, src: 'popular', why: 'Popular in Candles & lights', reason: { code: 'popular', category: 'candles-lights', category_name: 'Candles & lights' }, name: 'WHITE HANGING HEART T-LIGHT HOLDER', category: 'candles-lights', price: 2.55 },
        { item: '22086', score: 0.25, src: 'trending', why: 'Trending in your region', reason: { code: 'trending_locale', locale: 'en-GB' }, name: "PAPER CHAIN KIT 50'S CHRISTMAS", category: 'christmas', price: 2.95 },
        { item: 'x-unknown', score: 0.125, src: 'explore', why: 'New', reason: { code: 'new_item' } },
      ],
      took_us: 41, variant: 'control',
    },
  },
  {
    name: 'recs caused by an event',
    value: {
      type: 'recs', surface: 'home', version: 1763800000000002,
      items: [
        { item: '84406B', score: 1.75, src: 'covisit', why: 'Viewed together with White Hanging Heart T-Light Holder', reason: { code: 'co_visited', item: '85123A', item_name: 'White Hanging Heart T-Light Holder' }, name: 'CREAM CUPID HEARTS COAT HANGER', category: 'home-decor', price: 2.75 },
        { item: '21730', score: 1, src: 'content', why: 'Similar to White Hanging Heart T-Light Holder', reason: { code: 'similar', item: '85123A', item_name: 'White Hanging Heart T-Light Holder', category: 'candles-lights', category_name: 'Candles & lights' }, name: 'GLASS STAR FROSTED T-LIGHT HOLDER', category: 'candles-lights', price: 4.25 },
        { item: '22720', score: 0.5, src: 'content', why: 'Because you like kitchen', reason: { code: 'category_affinity', category: 'kitchen' }, name: 'SET OF 3 CAKE TINS PANTRY DESIGN', category: 'kitchen', price: 4.95 },
        { item: '23084', score: 0.375, src: 'pinned', why: 'Featured', reason: { code: 'pinned' }, name: 'RABBIT NIGHT LIGHT', category: 'candles-lights', price: 2.08 },
        { item: '22197', score: 0.25, src: 'trending', why: 'Trending now', reason: { code: 'trending' }, name: 'POPCORN HOLDER', category: 'kitchen', price: 0.85 },
      ],
      cause: 'e-0001', took_us: 37, variant: 'control',
    },
  },
  {
    name: 'recs with an item of the session again',
    value: {
      type: 'recs', surface: 'recent', version: 1763800000000003,
      items: [
        { item: '85123A', score: 0.25, src: 'repeat', why: 'You viewed this 2 minutes ago', reason: { code: 'repeat', kind: 'view', age_s: 150 }, name: 'WHITE HANGING HEART T-LIGHT HOLDER', category: 'candles-lights', price: 2.55 },
        { item: '22423', score: 0.125, src: 'repeat', why: 'You added this to your cart 1 hour ago', reason: { code: 'repeat', kind: 'cart', age_s: 4000 }, name: 'REGENCY CAKESTAND 3 TIER', category: 'kitchen', price: 12.75 },
        { item: '22111', score: 0.1, src: 'repeat', why: 'You viewed this earlier', reason: { code: 'repeat' }, name: 'SCOTTIE DOG HOT WATER BOTTLE', category: 'textiles', price: 4.95 },
        { item: '84406B', score: 0.0625, src: 'covisit', why: 'Viewed together with White Hanging Heart T-Light Holder', reason: { code: 'co_visited', item: '85123A', item_name: 'White Hanging Heart T-Light Holder' }, name: 'CREAM CUPID HEARTS COAT HANGER', category: 'home-decor', price: 2.75 },
        { item: 'x-legacy', score: 0.05, src: 'popular', why: 'Popular' },
      ],
      cause: 'e-0003', took_us: 41, variant: 'control',
    },
  },
  {
    name: 'recs_delta whole list (compact, from nothing)',
    value: {
      type: 'recs_delta', surface: 'home', version: 1763800000000001, base: 0,
      place: [[0, '22423'], [1, '85123A'], [2, 'x-unknown']],
      scores_e4: [9100, -4100, -3750],
      r: [0, 1, 2],
      items: {
        '22423': { name: 'REGENCY CAKESTAND 3 TIER', category: 'kitchen', price: 12.75 },
        '85123A': { name: 'WHITE HANGING HEART T-LIGHT HOLDER', category: 'candles-lights', price: 2.55 },
      },
      reasons: {
        0: { src: 'trending', why: 'Trending on mobile', reason: { code: 'trending_context', segment: 'mobile' } },
        1: { src: 'popular', why: 'Popular in Candles & lights', reason: { code: 'popular', category: 'candles-lights', category_name: 'Candles & lights' } },
        2: { src: 'explore', why: 'New', reason: { code: 'new_item' } },
      },
      took_us: 41,
    },
  },
  {
    name: 'recs_delta changes',
    value: {
      type: 'recs_delta', surface: 'home', version: 1763800000000002, base: 1763800000000001,
      remove: ['x-unknown'],
      place: [[0, '84406B'], [2, '22423']],
      scores_e4: [17500, -12500, -2500],
      r: [3, 1, 0],
      items: { '84406B': { name: 'CREAM CUPID HEARTS COAT HANGER', category: 'home-decor', price: 2.75 } },
      reasons: {
        3: { src: 'covisit', why: 'Viewed together with White Hanging Heart T-Light Holder', reason: { code: 'co_visited', item: '85123A', item_name: 'White Hanging Heart T-Light Holder' } },
      },
      cause: 'e-0001', took_us: 37,
    },
  },
  {
    name: 'recs_delta with no change of order',
    value: { type: 'recs_delta', surface: 'home', version: 1763800000000003, base: 1763800000000002, scores_e4: [15000, -10000, -2500], r: [3, 1, 0], cause: 'e-0002', took_us: 30, variant: 'b' },
  },
  { name: 'recs empty list', value: { type: 'recs', surface: 'pdp', version: 7, items: [], took_us: 12, variant: 'b' } },
  {
    name: 'push',
    value: { type: 'push', id: 'p-0001', topic: 'promo', data: { title: 'Sale', pct: 20, tags: ['mugs', 'tea'], ok: true, none: null, ratio: 0.5 } },
  },
  { name: 'pong', value: { type: 'pong', server_time_ms: 1763800000456 } },
  { name: 'pong with t', value: { type: 'pong', t: 1763800000000.25, server_time_ms: 1763800000456 } },
  {
    name: 'error about an event',
    value: { type: 'error', code: 4002, name: 'invalid_field', message: 'field "item" is required for kind "click"', id: 'e-0102', fatal: false },
  },
  { name: 'error fatal', value: { type: 'error', code: 4003, name: 'too_large', message: 'message of 70000 bytes exceeds 65536', fatal: true } },
  { name: 'drain', value: { type: 'drain', reason: 'shutdown', reconnect_after_ms: 2000 } },
  { name: 'auth_ok', value: { type: 'auth_ok', exp_ms: 1763803600000 } },
  { name: 'error token expired', value: { type: 'error', code: 4011, name: 'token_expired', message: 'the token expired; reconnect with a fresh one', fatal: true } },
  {
    name: 'error anonymous id refused',
    value: {
      type: 'error', code: 4013, name: 'anonymous_id_refused',
      message: 'hello.user is not an anonymous id this server issued (unsigned): connect without hello.user to be given one',
      about: 'hello', fatal: true,
    },
  },
  {
    name: 'error about a rate-limited ping',
    value: { type: 'error', code: 4020, name: 'rate_limited', message: 'rate limit of ping messages exceeded', about: 'ping', t: 17.5, fatal: false },
  },
  {
    name: 'error about a subscribe',
    value: { type: 'error', code: 4021, name: 'too_many_subscriptions', message: 'too many subscriptions', about: 'subscribe', surface: 'pdp', fatal: false },
  },
];

export const cases = [
  ...c2sValid.map((c) => ({ dir: 'c2s', ...c })),
  ...c2sInvalid.map((c) => ({ dir: 'c2s', ...c })),
  ...s2c.map((c) => ({ dir: 's2c', ...c })),
];
