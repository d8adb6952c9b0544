#!/usr/bin/env node
// Writes seeds for fuzz/amqp_properties_fuzzer: basic properties as amqplib
// (npm) encodes them, with every header type its codec writes. Each seed is
// a mode byte 0 (wire), a frame_max byte and the encoded properties (the
// content header frame without its frame header, class id, weight, body
// size and frame end).
//
// usage: NODE_PATH=tests/interop/node_modules fuzz/seeds/amqplib_properties.js OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const defs = require('amqplib/lib/defs');

const out = process.argv[2];
const headers = {
  s_utf8: 'h\u00e9llo \u2713',
  b_bin: Buffer.from([0xff, 0xfe, 0x00, 0x41]),
  t_true: true,
  i8: -5,
  u8: {'!': 'unsignedbyte', value: 200},
  i16: -30000,
  u16: {'!': 'unsignedshort', value: 60000},
  u32: {'!': 'unsignedint', value: 4000000000},
  i64: {'!': 'int64', value: -9007199254740991},
  f32: {'!': 'float', value: 1.5},
  f64: -2.25,
  dec_neg: {'!': 'decimal', value: {places: 2, digits: (-314) >>> 0}},
  ts: {'!': 'timestamp', value: 1700000000},
  void: null,
  nested: {level1: {bin: Buffer.from([0xff, 0x00]), n: -1, list: [1, 'two', null]}},
  array: [1, 'two', Buffer.from('bytes'), {k: false}, [null]],
};
const seeds = {
  'amqplib-rich': {contentType: 'application/json', contentEncoding: 'gzip', headers,
                   deliveryMode: 2, priority: 3, correlationId: 'c', replyTo: 'r',
                   expiration: '1000', messageId: 'amqplib-1', timestamp: 1700000000,
                   type: 't', userId: 'guest', appId: 'amqplib'},
  'amqplib-headers-only': {headers: {'x-retry-attempt': 2, 'x-death': [{count: 1, reason: 'rejected'}]}},
};
for (const [name, fields] of Object.entries(seeds)) {
  const frame = defs.encodeProperties(defs.BasicProperties, 1, 0, fields);
  const props = frame.subarray(7 + 12, frame.length - 1);
  fs.writeFileSync(path.join(out, name), Buffer.concat([Buffer.from([0, 0x10]), props]));
}
